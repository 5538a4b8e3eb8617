"""tj.linalg: matrix products."""
from .ops import matmul  # noqa: F401
