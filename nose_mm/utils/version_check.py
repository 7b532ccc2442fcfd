"""Check, without importing them, the versions of the OpenMMLab packages nose_mm needs."""
from importlib import metadata
from typing import Dict, Tuple

from packaging.version import Version

__all__ = ['check_versions']

#: distribution name -> (lowest supported, first unsupported)
SUPPORTED_VERSIONS: Dict[str, Tuple[str, str]] = {
    'torch': ('2.0.0', '3.0.0'),
    'mmengine': ('0.10.0', '0.11.0'),
    'mmcv': ('2.0.0rc4', '2.2.0'),
    'mmpretrain': ('1.2.0', '1.3.0'),
    'mmsegmentation': ('1.2.0', '1.3.0'),
    'timm': ('0.9.0', '2.0.0'),
}


def check_versions(supported: Dict[str, Tuple[str, str]] = SUPPORTED_VERSIONS) -> None:
    """Raise ``ImportError`` if a required package is missing or out of range.

    Args:
        supported (dict): Name -> ``(min, max_exclusive)``. Defaults to :data:`SUPPORTED_VERSIONS`.

    Raises:
        ImportError: Naming the package, the version found and the supported range.
    """
    problems = []
    for name, (low, high) in supported.items():
        rng = f'>={low},<{high}'
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f'{name} is not installed (nose_mm needs {name}{rng})')
            continue
        if not Version(low) <= Version(found) < Version(high):
            problems.append(f'{name}=={found} is installed, but nose_mm needs {name}{rng}')
    if problems:
        raise ImportError('nose_mm cannot start: ' + '; '.join(problems) +
                          '. Run `make setup` (tools/setup_env.sh) to install the tested stack.')
