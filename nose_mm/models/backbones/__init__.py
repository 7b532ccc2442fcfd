from .base import DilutableBlockMixin, NoseBackboneMixin
from .nose_deit3 import DilutableDeiT3Layer, NoseDeiT3
from .nose_swin import DilutableSwinBlock, NoseSwinTransformer
from .nose_vit import DilutableEncoderLayer, NoseVisionTransformer
from .token_merge_mixin import TokenMergeMixin

__all__ = [
    'DilutableBlockMixin', 'NoseBackboneMixin', 'DilutableEncoderLayer',
    'NoseVisionTransformer', 'DilutableDeiT3Layer', 'NoseDeiT3', 'DilutableSwinBlock',
    'NoseSwinTransformer', 'TokenMergeMixin'
]
