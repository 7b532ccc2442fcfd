from .dilution_checkpoint_hook import DilutionCheckpointHook  # noqa: F401
from .dilution_hook import DilutionHook, get_dilutable_modules  # noqa: F401
from .nose_selection_hook import NoseSelectionHook, broadcast_from_main  # noqa: F401
from .results_hook import ResultsHook  # noqa: F401
from .divergence_hook import DivergenceHook, TrainingDivergedError  # noqa: F401
from .random_state_hook import RandomStateHook  # noqa: F401
from .safe_checkpoint_hook import SafeCheckpointHook  # noqa: F401
