"""tj.train (TF2): object-based checkpoints (`Checkpoint`, `CheckpointManager`) and reading
checkpoint files (`latest_checkpoint`, `list_variables`, `load_variable`)."""
from .checkpoint import Checkpoint, CheckpointLoadStatus  # noqa: F401
from .checkpoint_file import latest_checkpoint, list_variables, load_variable  # noqa: F401
from .checkpoint_manager import CheckpointManager  # noqa: F401
