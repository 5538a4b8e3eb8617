"""The pieces generated kernel source is made of.

`np_type` names a dtype as the kernel's source spells it.
"""
import numpy as np


def np_type(dtype):
    return 'np.bool_' if dtype == np.bool_ else f'np.{dtype.name}'
