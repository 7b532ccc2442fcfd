from . import backbones  # noqa: F401
from .backbones import NoseDeiT3, NoseSwinTransformer, NoseVisionTransformer
from .checkpoint_fit import (CheckpointFitError, StrictPretrainedInit, apply_checkpoint_dilution,
                             load_state_dict_checked)
from .dilution import Dilutable, DilutableMixin, find_dilutable_modules

__all__ = [
    'NoseVisionTransformer', 'NoseDeiT3', 'NoseSwinTransformer', 'CheckpointFitError',
    'StrictPretrainedInit', 'apply_checkpoint_dilution', 'load_state_dict_checked', 'Dilutable',
    'DilutableMixin', 'find_dilutable_modules'
]
