"""mmengine 0.10.7 on torch >= 2.6: local files through the safe reader (docs/design.md)."""
from mmengine.runner.checkpoint import CheckpointLoader

from .files import load_checkpoint_file

__all__ = ['apply_checkpoint_fix']


def load_trusted_local(filename: str, map_location=None) -> dict:
    """mmengine's loader for local paths: :func:`~nose_mm.checkpoint.files.load_checkpoint_file`."""
    return load_checkpoint_file(filename, map_location=map_location)


def apply_checkpoint_fix() -> None:
    """Register :func:`load_trusted_local` for local paths (idempotent)."""
    # The empty prefix matches every path; longer prefixes (http://, s3://) go first.
    CheckpointLoader.register_scheme(prefixes='', loader=load_trusted_local, force=True)
