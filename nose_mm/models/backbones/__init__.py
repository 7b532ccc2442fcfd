from .base import DilutableBlockMixin, NoseBackboneMixin
from .nose_deit3 import NoseDeiT3
from .nose_swin import NoseSwinTransformer
from .nose_vit import NoseVisionTransformer
from .token_merge_mixin import TokenMergeMixin

__all__ = [
    'DilutableBlockMixin', 'NoseBackboneMixin', 'NoseVisionTransformer', 'NoseDeiT3',
    'NoseSwinTransformer', 'TokenMergeMixin'
]
