"""Loading a config and checking the data folders it reads (one-line user errors)."""
import os.path as osp
from typing import Any, Iterator, Optional, Sequence, Tuple

from mmengine.config import Config

from .cli import UserError, closest

__all__ = ['DATALOADER_KEYS', 'load_config', 'iter_datasets', 'check_data_roots']

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Load a config file and merge ``--cfg-options``.

    Args:
        path (str): Config file (``.py``, ``.json`` or ``.yaml``).
        cfg_options (dict, optional): Overrides, ``{'a.b': value}``. Defaults to None.

    Raises:
        UserError: A missing, unsupported or unparsable file, or a misspelt ``cfg_options`` key.
    """
    if not osp.isfile(path):
        raise UserError(f'config file {path!r} does not exist')
    if osp.splitext(path)[1] not in ('.py', '.json', '.yaml', '.yml'):
        raise UserError(f'config file {path!r} must end in .py, .json, .yaml or .yml')
    try:
        cfg = Config.fromfile(path)
    except Exception as exc:  # noqa: BLE001 - re-raised as one line
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UserError(f'cannot load config {path!r}: {type(exc).__name__}: {msg}') from exc
    if cfg_options:
        check_option_keys(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


def check_option_keys(cfg: Config, options: dict) -> None:
    """Refuse ``--cfg-options`` keys that look like misspelt ones (docs/design.md)."""
    for full_key in options:
        node, parts = cfg._cfg_dict, full_key.split('.')
        for depth, part in enumerate(parts):
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                keys = [k for k in node if isinstance(k, str)] if isinstance(node, dict) else []
                guess = closest(part, keys)
                if guess is not None:
                    where = '.'.join(parts[:depth]) or 'the top level of the config'
                    shown = ', '.join(sorted(keys)[:12]) + (', ...' if len(keys) > 12 else '')
                    raise UserError(
                        f'--cfg-options {full_key}: no key {part!r} in {where}; did you mean '
                        f'{".".join(parts[:depth] + [guess] + parts[depth + 1:])}? '
                        f'(keys there: {shown})')
                break


def iter_datasets(node: Any, where: str) -> Iterator[Tuple[str, dict]]:
    """Yield ``(location, dataset_cfg)`` for every dataset dict, wrappers included."""
    if not isinstance(node, dict):
        return
    yield where, node
    if isinstance(node.get('dataset'), dict):
        yield from iter_datasets(node['dataset'], where + '.dataset')
    for i, sub in enumerate(node.get('datasets') or []):
        yield from iter_datasets(sub, f'{where}.datasets[{i}]')


def check_data_roots(cfg: Config, keys: Sequence[str] = DATALOADER_KEYS) -> None:
    """Check that every dataset ``data_root`` the run will read exists.

    Args:
        cfg (Config): The loaded config.
        keys (sequence of str): Dataloader keys. Defaults to :data:`DATALOADER_KEYS`.

    Raises:
        UserError: Naming the missing folder and the config key that sets it.
    """
    for key in keys:
        for where, ds in iter_datasets((cfg.get(key) or {}).get('dataset'), f'{key}.dataset'):
            root = ds.get('data_root')
            if root and '://' not in str(root) and not osp.isdir(root):
                raise UserError(
                    f'dataset folder {root!r} does not exist (set by {where}.data_root); '
                    f'lay out the data there or pass --cfg-options {where}.data_root=PATH')
