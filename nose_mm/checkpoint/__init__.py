"""Checkpoints: the one place nose_mm reads, writes and fits them.

* :mod:`.unpickler`: nose_mm's restricted pickle machine (what a file can build).
* :mod:`.reader`: :func:`safe_torch_load` (file checks, formats, one error
  path) and the trust opt-in scoped to the files a user names.
* :mod:`.files`: :func:`load_checkpoint_file` / :func:`save_checkpoint_file`
  (``.pth`` and ``.safetensors``) and :func:`state_dict_of` (the ``state_dict``
  of any checkpoint, ``module.`` prefixes removed).
* :mod:`.fit`: the strict fit of a checkpoint to a model (one error type,
  :class:`~.fit.CheckpointFitError`), the dilution metadata applied to the
  model, and the strict ``Pretrained`` initializer.
* :mod:`.mmengine_loader`: mmengine's loader for local paths, routed here.

This module exports the reading and writing API; import :mod:`.fit` for the
fitting one (it depends on the models).
"""
from .files import SAFETENSORS_SUFFIX, load_checkpoint_file, save_checkpoint_file, state_dict_of
from .reader import (TRUST_ENV, CheckpointLoadError, UnsafeCheckpointError,
                     add_trust_checkpoint_arg, apply_trust_checkpoint, is_trusted,
                     safe_torch_load, trust_scope, trusted_files)

__all__ = [
    'load_checkpoint_file', 'save_checkpoint_file', 'state_dict_of', 'SAFETENSORS_SUFFIX',
    'safe_torch_load', 'CheckpointLoadError', 'UnsafeCheckpointError', 'TRUST_ENV',
    'add_trust_checkpoint_arg', 'apply_trust_checkpoint', 'is_trusted', 'trust_scope',
    'trusted_files'
]
