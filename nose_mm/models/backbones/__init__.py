from .nose_vit import DilutableEncoderLayer, NoseVisionTransformer

__all__ = ['DilutableEncoderLayer', 'NoseVisionTransformer']
