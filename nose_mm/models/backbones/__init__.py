from .base import DilutableBlockMixin, NoseBackboneMixin
from .nose_deit3 import NoseDeiT3
from .nose_swin import NoseSwinTransformer
from .nose_vit import NoseVisionTransformer
from .nose_mae import NoseBEiT, NoseMAE  # noqa: I001  (registered after the others)
from .token_merge_mixin import TokenMergeMixin

__all__ = [
    'DilutableBlockMixin', 'NoseBackboneMixin', 'NoseVisionTransformer', 'NoseDeiT3',
    'NoseSwinTransformer', 'NoseMAE', 'NoseBEiT', 'TokenMergeMixin'
]
