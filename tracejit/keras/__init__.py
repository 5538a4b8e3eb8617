"""tj.keras: the Keras API (layers, models, compile/fit, optimizers, losses, metrics,
initializers, callbacks) on tracejit; `fit` compiles each training step into one kernel."""
from . import (activations, backend, callbacks, initializers, layers, losses, metrics,  # noqa: F401
               models, optimizers, utils)
from .functional import Input, InputLayer  # noqa: F401
from .models import Model, Sequential  # noqa: F401
