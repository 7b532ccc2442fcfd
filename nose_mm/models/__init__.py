from . import backbones  # noqa: F401
from .backbones import NoseDeiT3, NoseSwinTransformer, NoseVisionTransformer
from .dilution import Dilutable, DilutableMixin, find_dilutable_modules

__all__ = [
    'NoseVisionTransformer', 'NoseDeiT3', 'NoseSwinTransformer', 'Dilutable', 'DilutableMixin',
    'find_dilutable_modules'
]
