"""Register nose_mm modules so configs find them from the mmpretrain and mmseg scopes.

Models go into both mmpretrain's and mmseg's ``MODELS`` registries (a seg config
with ``default_scope='mmseg'`` looks in mmseg's registry and its parents, not in
mmpretrain's). Hooks go into mmengine's root ``HOOKS`` registry, which every
scope falls back to. Weight initializers (``init_cfg`` types) go into
mmpretrain's and mmseg's ``WEIGHT_INITIALIZERS`` under the name given (nose_mm's
strict ``'Pretrained'`` replaces mmengine's there).
"""
from mmengine.registry import HOOKS
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.registry import WEIGHT_INITIALIZERS as PRETRAIN_INITS
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.registry import WEIGHT_INITIALIZERS as SEG_INITS

__all__ = ['register_model', 'register_weight_init', 'HOOKS']


def register_model(cls):
    """Class decorator: register ``cls`` in mmpretrain's and mmseg's MODELS."""
    PRETRAIN_MODELS.register_module(module=cls, force=True)
    SEG_MODELS.register_module(module=cls, force=True)
    return cls


def register_weight_init(name: str):
    """Class decorator: register ``cls`` as ``name`` in mmpretrain's and mmseg's
    ``WEIGHT_INITIALIZERS`` (replacing an entry of that name there)."""

    def register(cls):
        PRETRAIN_INITS.register_module(name=name, module=cls, force=True)
        SEG_INITS.register_module(name=name, module=cls, force=True)
        return cls

    return register
