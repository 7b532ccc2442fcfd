"""Register nose_mm modules so configs find them from the mmpretrain and mmseg scopes.

Models go into both mmpretrain's and mmseg's ``MODELS`` registries (a seg config
with ``default_scope='mmseg'`` looks in mmseg's registry and its parents, not in
mmpretrain's). Hooks go into mmengine's root ``HOOKS`` registry, which every
scope falls back to.
"""
from mmengine.registry import HOOKS
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS as SEG_MODELS

__all__ = ['register_model', 'HOOKS']


def register_model(cls):
    """Class decorator: register ``cls`` in mmpretrain's and mmseg's MODELS."""
    PRETRAIN_MODELS.register_module(module=cls, force=True)
    SEG_MODELS.register_module(module=cls, force=True)
    return cls
