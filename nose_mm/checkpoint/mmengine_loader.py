"""Compatibility fixes for mmengine 0.10.7 on torch >= 2.6, carried in the package.

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and mmengine
   0.10.7 calls it without the argument, so ``--resume``, ``load_from`` and
   ``tools/test.py`` fail on Runner-saved checkpoints ("Unsupported global:
   mmengine.logging.history_buffer.HistoryBuffer"). :func:`load_trusted_local`
   replaces mmengine's loader for local paths with
   :func:`nose_mm.checkpoint.reader.safe_torch_load`: nose_mm's restricted
   unpickler, which builds only the plain data that Runner (and other
   legitimate) checkpoints hold, or safetensors; anything else is refused unless
   the user trusts the file (``--trust-checkpoint`` /
   ``NOSE_MM_TRUST_CHECKPOINT=1``). Remote schemes (http, s3, ...) keep
   mmengine's own loaders.

   Upstream fixed this on mmengine's main branch only. Delete this module (and
   its call in ``nose_mm/__init__.py``) once a fixed mmengine is released and
   pinned in ``requirements/runtime.txt``.

The fix is applied when ``nose_mm`` is imported, i.e. whenever a config has
``custom_imports = dict(imports=['nose_mm'])`` or a tool imports the package.
"""
from mmengine.runner.checkpoint import CheckpointLoader

from .files import load_checkpoint_file

__all__ = ['load_trusted_local', 'apply_checkpoint_fix']


def load_trusted_local(filename: str, map_location=None) -> dict:
    """mmengine's loader for local paths: :func:`~nose_mm.checkpoint.files.load_checkpoint_file`.

    Args:
        filename (str): Path of a local checkpoint file.
        map_location: Same as :func:`torch.load`. Defaults to None.

    Returns:
        dict: The loaded checkpoint.
    """
    return load_checkpoint_file(filename, map_location=map_location)


def apply_checkpoint_fix() -> None:
    """Register :func:`load_trusted_local` for local paths (idempotent)."""
    # The empty prefix matches every path; mmengine tries longer prefixes
    # (http://, s3://, ...) first, so only local files reach this loader.
    CheckpointLoader.register_scheme(prefixes='', loader=load_trusted_local, force=True)
