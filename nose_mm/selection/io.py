"""Selection files (``selection.json``): written atomically, read by configs (docs/design.md)."""
import hashlib
import json
import os.path as osp
from typing import Any, Dict, List

from nose_mm.utils.fileio import atomic_write_json

__all__ = ['save_selection', 'load_selection_record', 'load_selection', 'file_sha256']


def save_selection(path: str, record: Dict[str, Any]) -> None:
    """Write a selection record to ``path`` atomically (creates the folder).

    Args:
        path (str): Destination JSON file.
        record (dict): The record; must hold ``"selection"``.

    Raises:
        ValueError: If the record has no valid ``"selection"``.
    """
    _check_selection(record.get('selection'), path)
    atomic_write_json(path, record)


def load_selection_record(path: str) -> Dict[str, Any]:
    """Read and validate a selection file.

    Args:
        path (str): A JSON file written by ``tools/nose_select.py`` or the hook.

    Returns:
        dict: The whole record.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: Not JSON, or no list of layer indices under ``"selection"``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'selection file {path!r} does not exist')
    with open(path, encoding='utf-8') as f:
        try:
            record = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'selection file {path!r} is not valid JSON: {e}') from None
    if not isinstance(record, dict):
        raise ValueError(f'selection file {path!r} must hold a JSON object, got '
                         f'{type(record).__name__}')
    _check_selection(record.get('selection'), path)
    return record


def load_selection(path: str) -> List[int]:
    """The selected layers of a selection file, in selection order.

    Args:
        path (str): A selection JSON file.

    Returns:
        list[int]: Layer indices, e.g. ``[0, 2, 4]``, for a backbone's ``diluted_layers``.
    """
    return [int(i) for i in load_selection_record(path)['selection']]


def _check_selection(selection: Any, path: str) -> None:
    if (not isinstance(selection, list)
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                       for i in selection)
            or len(set(selection)) != len(selection)):
        raise ValueError(f'selection file {path!r}: "selection" must be a list of distinct '
                         f'non-negative layer indices, got {selection!r}')


def file_sha256(path: str, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Args:
        path (str): The file.
        chunk_size (int): Bytes per read. Defaults to 1 MiB.

    Returns:
        str: The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()
