from .nose_vit import DilutableEncoderLayer, NoseVisionTransformer
from .token_merge_mixin import TokenMergeMixin

__all__ = ['DilutableEncoderLayer', 'NoseVisionTransformer', 'TokenMergeMixin']
