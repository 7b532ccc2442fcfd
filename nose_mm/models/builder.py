"""Building a config's model outside a Runner (selection, analysis, benchmarks)."""
import copy
from typing import Any, Optional

import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope
from mmengine.utils import import_modules_from_strings

from nose_mm.checkpoint.fit import load_checkpoint_strict

__all__ = ['build_model_from_cfg']


def build_model_from_cfg(cfg: Any, checkpoint: Optional[str] = None,
                         device: str = 'cpu') -> torch.nn.Module:
    """Build ``cfg.model`` as the Runner does, load a checkpoint, switch to eval mode.

    Args:
        cfg (mmengine.Config): The config.
        checkpoint (str, optional): Loaded strictly; None: ``init_weights``. Defaults to None.
        device (str): Device to move the model to. Defaults to ``'cpu'``.

    Returns:
        nn.Module: The model in eval mode.
    """
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope') or 'mmpretrain')
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    model = revert_sync_batchnorm(MODELS.build(model_cfg))
    if checkpoint is None:
        model.init_weights()
    else:
        load_checkpoint_strict(model, checkpoint)
    return model.to(device).eval()
