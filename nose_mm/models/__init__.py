from . import backbones  # noqa: F401
from .backbones import NoseVisionTransformer
from .checkpoint_fit import (CheckpointFitError, StrictPretrainedInit, apply_checkpoint_dilution,
                             load_state_dict_checked)
from .dilution import Dilutable, DilutableMixin, find_dilutable_modules

__all__ = [
    'NoseVisionTransformer', 'CheckpointFitError', 'StrictPretrainedInit',
    'apply_checkpoint_dilution', 'load_state_dict_checked', 'Dilutable', 'DilutableMixin',
    'find_dilutable_modules'
]
