"""What a resumed run must share with the run it continues (docs/design.md).

mmengine resumes whatever the config now says: a changed selection (``method``,
``num_samples``) silently reuses the old selection while the saved config names the new
one; a changed model fails deep in the load. The settings that decide the result, the
model (without its ``init_cfg``: a resume loads every weight), the ``NoseSelectionHook`` and
``DilutionHook`` entries, are compared with the config saved in the checkpoint
(``meta['cfg']``); a difference is refused, naming each, unless the config sets
``resume_allow_changes = True``.

The saved config is Python text from the checkpoint file, so it is read as data
(:func:`literal_config`: ``name = value`` lines of literals and ``dict(...)`` calls, the
layout ``Config.pretty_text`` writes), never run: ``Config.fromstring`` would execute it,
and a checkpoint must never run code (docs/design.md, ``nose_mm/checkpoint/reader.py``).
mmengine's own resume runs ``meta['config']`` (an older key) through ``Config.fromstring``
to compare ``gpu_ids``; that text is read the same way and replaced by its ``gpu_ids``
alone before mmengine sees it.
"""
import ast
from typing import Any, Dict, List, Optional

from mmengine.config import Config

from nose_mm.utils.cli import UserError

__all__ = ['OPT_IN', 'literal_config', 'result_settings', 'config_differences',
           'check_resume_config']

#: Top-level config key that allows resuming with changed settings.
OPT_IN = 'resume_allow_changes'
#: ``custom_hooks`` types whose arguments decide the result.
RESULT_HOOKS = ('NoseSelectionHook', 'DilutionHook')
#: Keys left out of the comparison, at any level of ``model``.
WEIGHT_SOURCES = ('init_cfg', 'pretrained')
SHOWN = 4


def _literal(node: ast.AST) -> Any:
    """The value of a literal expression (constants, containers, ``dict(...)``), or raise."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(e) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and len(node.args) <= 1 and all(k.arg for k in node.keywords):
        # dict(k=v, ...), or dict({...}) for keys that are no identifiers (pretty_text's)
        out = _literal(node.args[0]) if node.args else {}
        if not isinstance(out, dict):
            raise ValueError(f'line {node.lineno}: dict() of a {type(out).__name__}')
        out.update((k.arg, _literal(k.value)) for k in node.keywords)
        return out
    if isinstance(node, ast.Name) and node.id in ('inf', 'nan'):  # repr of such floats
        return float(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand)
        if isinstance(value, (int, float, complex)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    raise ValueError(f'line {getattr(node, "lineno", "?")}: {type(node).__name__} is not a '
                     f'literal')


def literal_config(text: str) -> Dict[str, Any]:
    """A saved config's ``name = value`` lines as a dict, read without running anything.

    Args:
        text (str): Config text as ``Config.pretty_text`` writes it.

    Returns:
        dict: The top-level names and their values.

    Raises:
        ValueError: The text holds anything but assignments of literal values (a call other
            than ``dict(k=v, ...)`` / ``dict({...})``, a name, an import, an expression...),
            naming the line.
    """
    try:
        tree = ast.parse(text, mode='exec')
    except SyntaxError as exc:
        raise ValueError(f'line {exc.lineno}: not valid Python ({exc.msg})') from None
    except (RecursionError, MemoryError):
        raise ValueError('nested too deeply to read') from None
    out: Dict[str, Any] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f'line {node.lineno}: {type(node).__name__} is not '
                             f'`name = value`')
        try:
            out[node.targets[0].id] = _literal(node.value)
        except RecursionError:
            raise ValueError(f'line {node.lineno}: nested too deeply to read') from None
    return out


def _saved_config(checkpoint: dict, key: str, filename: str,
                  advice: str = '') -> Optional[Dict[str, Any]]:
    """``meta[key]`` of the checkpoint read by :func:`literal_config`, None when absent."""
    meta = checkpoint.get('meta')
    text = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return literal_config(text)
    except ValueError as exc:
        raise UserError(
            f'cannot resume from {filename!r}: the config saved in it (meta[{key!r}]) is not '
            f'plain config data ({exc}), and nose_mm never runs code from a checkpoint; '
            f'start a new run from its weights with load_from{advice}') from None


def _plain(value: Any, drop: tuple = ()) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, (list, tuple)):
        return [_plain(v, drop) for v in value]
    return value


def _hook_type(hook: Any) -> Optional[str]:
    name = hook.get('type') if isinstance(hook, dict) else None
    return name.rsplit('.', 1)[-1] if isinstance(name, str) else None


def result_settings(cfg: Any) -> Dict[str, Any]:
    """``{'model': ..., 'custom_hooks[NoseSelectionHook]': ..., ...}`` as plain values."""
    out = {'model': _plain(cfg.get('model'), WEIGHT_SOURCES)}
    for hook_type in RESULT_HOOKS:
        entries = [_plain(h) for h in cfg.get('custom_hooks') or [] if _hook_type(h) == hook_type]
        if entries:
            out[f'custom_hooks[{hook_type}]'] = entries if len(entries) > 1 else entries[0]
    return out


def config_differences(saved: Any, now: Any, where: str = '') -> List[str]:
    """``'key: A in the checkpoint, B now'`` for each leaf that differs."""
    if isinstance(saved, dict) and isinstance(now, dict):
        return [d for key in sorted(set(saved) | set(now), key=str)
                for d in config_differences(saved.get(key, '<unset>'), now.get(key, '<unset>'),
                                            f'{where}.{key}' if where else str(key))]
    if saved == now:
        return []
    return [f'{where}: {saved!r} in the checkpoint, {now!r} now']


def check_resume_config(checkpoint: dict, cfg: Config, filename: str) -> None:
    """Refuse to resume ``filename`` when ``cfg`` differs in what decides the result.

    Reads the saved configs without running them (:func:`literal_config`); mmengine's
    ``meta['config']`` is replaced, in ``checkpoint``, by its ``gpu_ids`` line alone.

    Raises:
        UserError: Naming the differences and the opt-in; a saved config that is not
            plain data (``meta['config']``: whatever the opt-in).
    """
    legacy = _saved_config(checkpoint, 'config', filename)
    if legacy is not None:  # what mmengine's resume() would run to read gpu_ids
        if 'gpu_ids' in legacy:
            checkpoint['meta']['config'] = f'gpu_ids = {legacy["gpu_ids"]!r}\n'
        else:
            del checkpoint['meta']['config']
    if cfg.get(OPT_IN, False) is True:
        return
    saved_cfg = _saved_config(checkpoint, 'cfg', filename,
                              f', or set {OPT_IN}=True to resume without comparing the configs')
    if saved_cfg is None:
        return  # not a Runner checkpoint: check_resumable has refused it already
    saved = result_settings(saved_cfg)
    diffs = config_differences(saved, result_settings(cfg))
    if diffs:
        shown = '; '.join(diffs[:SHOWN]) + (f'; and {len(diffs) - SHOWN} more'
                                            if len(diffs) > SHOWN else '')
        raise UserError(
            f'cannot resume from {filename!r}: the config differs from the one it was '
            f'trained with in what decides the result ({shown}); resume with the config it '
            f'was trained with, start a new run (another --work-dir, or load_from for the '
            f'weights), or set {OPT_IN}=True to continue with the changes')
