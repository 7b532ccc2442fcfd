"""What a resumed run must share with the run it continues (docs/design.md).

mmengine resumes whatever the config now says: a changed selection (``method``,
``num_samples``) silently reuses the old selection while the saved config names the new
one; a changed model fails deep in the load. The settings that decide the result, the
model (without its ``init_cfg``: a resume loads every weight), the ``NoseSelectionHook`` and
``DilutionHook`` entries, are compared with the config saved in the checkpoint
(``meta['cfg']``); a difference is refused, naming each, unless the config sets
``resume_allow_changes = True``.
"""
from typing import Any, Dict, List, Optional

from mmengine.config import Config

from nose_mm.utils.cli import UserError

__all__ = ['OPT_IN', 'result_settings', 'config_differences', 'check_resume_config']

#: Top-level config key that allows resuming with changed settings.
OPT_IN = 'resume_allow_changes'
#: ``custom_hooks`` types whose arguments decide the result.
RESULT_HOOKS = ('NoseSelectionHook', 'DilutionHook')
#: Keys left out of the comparison, at any level of ``model``.
WEIGHT_SOURCES = ('init_cfg', 'pretrained')
SHOWN = 4


def _plain(value: Any, drop: tuple = ()) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, (list, tuple)):
        return [_plain(v, drop) for v in value]
    return value


def _hook_type(hook: Any) -> Optional[str]:
    name = hook.get('type') if isinstance(hook, dict) else None
    return name.rsplit('.', 1)[-1] if isinstance(name, str) else None


def result_settings(cfg: Config) -> Dict[str, Any]:
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

    Raises:
        UserError: Naming the differences and the opt-in.
    """
    if cfg.get(OPT_IN, False) is True:
        return
    text = (checkpoint.get('meta') or {}).get('cfg')
    if not isinstance(text, str):
        return  # not a Runner checkpoint: check_resumable has refused it already
    saved = result_settings(Config.fromstring(text, file_format='.py'))
    diffs = config_differences(saved, result_settings(cfg))
    if diffs:
        shown = '; '.join(diffs[:SHOWN]) + (f'; and {len(diffs) - SHOWN} more'
                                            if len(diffs) > SHOWN else '')
        raise UserError(
            f'cannot resume from {filename!r}: the config differs from the one it was '
            f'trained with in what decides the result ({shown}); resume with the config it '
            f'was trained with, start a new run (another --work-dir, or load_from for the '
            f'weights), or set {OPT_IN}=True to continue with the changes')
