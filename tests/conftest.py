"""Shared test configuration: hypothesis profiles and the tests directory on sys.path.

`TRACEJIT_FUZZ=long` (or `pytest --hypothesis-profile=long`) runs the random-program tests with
many more examples than the default, bounded profile.
"""
import os
import sys

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import gradcheck`

settings.register_profile('default', max_examples=40, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile('long', max_examples=1000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get('TRACEJIT_FUZZ', 'default'))

# Tests check compiled kernels against the interpreter, so a first call compiles instead of
# interpreting while a thread compiles (test_background_compile.py covers that mode);
# subprocesses inherit the setting.
os.environ['TRACEJIT_BACKGROUND_COMPILE'] = '0'
import tracejit.config  # noqa: E402

tracejit.config.compile_in_background = False
