from .fileio import atomic_write, atomic_write_json
from .version_check import check_versions

__all__ = ['atomic_write', 'atomic_write_json', 'check_versions']
