"""nose_mm: NOSE attention-layer selection and dilution learning for OpenMMLab.

Importing the package (directly or through a config's ``custom_imports``):
checks the OpenMMLab versions, applies the torch >= 2.6 checkpoint-loading fix
(see :mod:`nose_mm.checkpoint.mmengine_loader`) and registers the models, hooks and wrappers.
"""
from .utils.version_check import check_versions
from .version import __version__

check_versions()

from .checkpoint.mmengine_loader import apply_checkpoint_fix  # noqa: E402

apply_checkpoint_fix()

from . import datasets, engine, models  # noqa: E402,F401
from .utils import dist  # noqa: E402,F401  (registers NoseDistributedDataParallel)

__all__ = ['__version__']
