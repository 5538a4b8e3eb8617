"""Compatibility front ends: `tracejit.compat.v1` runs TF1 graph-and-session code."""
from . import v1  # noqa: F401
