"""Checkpoints: reading, writing; fitting is in :mod:`.fit` (it depends on the models)."""
from .files import load_checkpoint_file, save_checkpoint_file, state_dict_of
from .reader import (TRUST_ENV, CheckpointLoadError, UnsafeCheckpointError,
                     add_trust_checkpoint_arg, apply_trust_checkpoint, is_trusted,
                     safe_torch_load, trust_scope, trusted_files)

__all__ = [
    'load_checkpoint_file', 'save_checkpoint_file', 'state_dict_of', 'safe_torch_load',
    'CheckpointLoadError', 'UnsafeCheckpointError', 'TRUST_ENV', 'add_trust_checkpoint_arg',
    'apply_trust_checkpoint', 'is_trusted', 'trust_scope', 'trusted_files'
]
