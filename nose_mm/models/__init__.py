from . import backbones  # noqa: F401
from .backbones import NoseVisionTransformer
from .dilution import Dilutable, DilutableMixin, find_dilutable_modules

__all__ = ['NoseVisionTransformer', 'Dilutable', 'DilutableMixin', 'find_dilutable_modules']
