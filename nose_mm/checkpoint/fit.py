"""Strict checkpoint fit (say what differs) and the dilution metadata (docs/design.md)."""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseTTAModel, PretrainedInit, is_model_wrapper
from mmengine.runner.checkpoint import _load_checkpoint

from ..registry import register_weight_init
from .files import load_checkpoint_file, state_dict_of
from ..utils.cli import UserError
from ..models.family import family_of_module, family_of_state_dict
from ..models.dilution import (META_COMPENSATE, META_DILUTED, META_LAM, META_REMOVED,
                               find_dilutable_modules)

__all__ = [
    'CheckpointFitError', 'check_fit_cfg', 'family_mismatch', 'load_state_dict_checked',
    'load_checkpoint_strict',
    'apply_checkpoint_dilution', 'dilution_meta', 'StrictPretrainedInit'
]

#: How many keys of each kind the error message lists.
SHOWN = 3


class CheckpointFitError(UserError, RuntimeError):
    """A checkpoint does not fit the model (message: what differs and how to load anyway)."""


def check_fit_cfg(cfg: Optional[dict]) -> dict:
    """Validate a ``checkpoint_fit`` setting and fill its defaults.

    Args:
        cfg (dict, optional): ``strict`` (True), ``prefixes`` (None: all), ``ignore_keys`` ([]).

    Returns:
        dict: The three settings.

    Raises:
        ValueError: Unknown keys or values of the wrong type.
    """
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - {'strict', 'prefixes', 'ignore_keys'})
    if unknown:
        raise ValueError(f'checkpoint_fit: unknown keys {unknown}; allowed: strict, prefixes, '
                         f'ignore_keys')
    strict = cfg.get('strict', True)
    if not isinstance(strict, bool):
        raise ValueError(f'checkpoint_fit.strict must be True or False, got {strict!r}')
    prefixes, ignore = cfg.get('prefixes'), cfg.get('ignore_keys') or []
    prefixes = [prefixes] if isinstance(prefixes, str) else prefixes
    ignore = [ignore] if isinstance(ignore, str) else ignore
    if prefixes is not None and (not prefixes or not all(
            isinstance(p, str) and p for p in prefixes)):
        raise ValueError(f'checkpoint_fit.prefixes must be None or a non-empty list of '
                         f'non-empty strings (e.g. ["backbone."]), got {prefixes!r}')
    for pattern in ignore:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ValueError(f'checkpoint_fit.ignore_keys: {pattern!r} is not a regular '
                             f'expression ({exc})') from exc
    return dict(strict=strict, prefixes=list(prefixes) if prefixes else None,
                ignore_keys=list(ignore))


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    while is_model_wrapper(module) or isinstance(module, BaseTTAModel):
        module = module.module
    return module


def _listing(kind: str, keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:SHOWN]) + (', ...' if len(keys) > SHOWN else '')
    return f'{len(keys)} {kind} ({shown})'


def family_mismatch(module: torch.nn.Module, state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """Why ``state_dict`` is another backbone family's than ``module``'s, or None.

    The first submodule (``module`` itself included) a family owns is the backbone; its
    keys in the checkpoint, and its own, are read as
    :func:`~nose_mm.models.family.family_of_state_dict` does. None when either tells no
    family, or both the same one.
    """
    for name, sub in module.named_modules():
        family = family_of_module(sub)
        if family is None:
            continue
        prefix = f'{name}.' if name else ''
        try:
            found = family_of_state_dict(state_dict, prefix)
            # the model's own keys read the same way (a backbone built without its usual
            # tokens may key like a more specific family): only a difference is a mismatch
            own = family_of_state_dict(sub.state_dict(), '')
        except ValueError:  # no (or ambiguous) block keys there: the key check will say
            return None
        if found is None or own is None or found.name == own.name:
            return None
        return (f'it is a {found.display_prefix} checkpoint (family {found.name!r}) and the '
                f'model\'s backbone ({type(sub).__name__}) is family {family.name!r}: use a '
                f'config whose backbone is of the checkpoint\'s family')
    return None


def load_state_dict_checked(module: torch.nn.Module, state_dict: Dict[str, torch.Tensor],
                            source: str, prefixes: Optional[Sequence[str]] = None,
                            ignore_keys: Sequence[str] = (), hint: str = '') -> None:
    """Load ``state_dict`` into ``module`` (load hooks first); raise unless keys and shapes fit.

    Args:
        module (torch.nn.Module): The model (wrappers are unwrapped).
        state_dict (dict): The weights.
        source (str): Names the checkpoint in the error.
        prefixes (sequence of str, optional): Only keys under these. Defaults to None (all).
        ignore_keys (sequence of str): Regexes of keys that may differ. Defaults to ().
        hint (str): Appended to the error (how to load on purpose). Defaults to ''.

    Raises:
        CheckpointFitError: Missing, unexpected or shape-mismatched keys.
    """
    module = _unwrap(module)
    metadata = getattr(state_dict, '_metadata', None)
    scope = tuple(prefixes or ('', ))  # a copy: the load hooks may rewrite it
    state_dict = OrderedDict((k, v) for k, v in state_dict.items() if k.startswith(scope))
    if metadata is not None:
        state_dict._metadata = metadata
    other = family_mismatch(module, state_dict)
    if other:
        raise CheckpointFitError(f'checkpoint {source!r} does not fit the model: {other}')
    model_shapes = {k: v.shape for k, v in module.state_dict().items()}
    missing: List[str] = []
    unexpected: List[str] = []
    errors: List[str] = []

    def load(mod: torch.nn.Module, prefix: str) -> None:
        local_meta = {} if metadata is None else metadata.get(prefix[:-1], {})
        mod._load_from_state_dict(state_dict, prefix, local_meta, True, missing, unexpected,
                                  errors)
        for name, child in mod._modules.items():
            if child is not None:
                load(child, prefix + name + '.')

    try:
        load(module, '')
    except AssertionError as exc:  # a load hook's check, e.g. mmpretrain's pos_embed resize
        raise CheckpointFitError(f'checkpoint {source!r} does not fit the model: {exc}') from exc
    ignore = [re.compile(p) for p in ignore_keys]

    def kept(key: str) -> bool:
        return (key.startswith(scope) and 'num_batches_tracked' not in key
                and not any(p.fullmatch(key) for p in ignore))

    missing = [k for k in missing if kept(k)]
    unexpected = [k for k in unexpected if kept(k)]
    mismatched = [
        f'{k} {tuple(v.shape)} vs {tuple(model_shapes[k])}' for k, v in state_dict.items()
        if k in model_shapes and isinstance(v, torch.Tensor) and v.shape != model_shapes[k]
    ]
    parts = [_listing(kind, keys) for kind, keys in (
        ('missing keys', missing), ('unexpected keys', unexpected),
        ('shape mismatches (checkpoint vs model)', mismatched)) if keys]
    if not parts:
        return
    under = f' under {list(prefixes)}' if prefixes else ''
    raise CheckpointFitError(
        f'checkpoint {source!r} does not fit the model{under}: ' + '; '.join(parts) +
        (f'. {hint}' if hint else ''))


def apply_checkpoint_dilution(model: torch.nn.Module, meta: Optional[dict],
                              source: Optional[str]) -> Optional[List[int]]:
    """Make the model dilute what the checkpoint was trained with, or refuse (docs/design.md).

    Args:
        model (torch.nn.Module): The model (wrappers are unwrapped).
        meta (dict, optional): The checkpoint's ``meta``.
        source (str, optional): Names the checkpoint in errors.

    Returns:
        list[int] | None: The diluted layers applied, None if the checkpoint records none.

    Raises:
        CheckpointFitError: No dilutable backbone, other layers or other compensation.
    """
    meta = meta or {}
    saved = meta.get(META_DILUTED)
    if not saved:
        return None
    saved = sorted(int(i) for i in saved)
    lam = meta.get(META_LAM)
    lam = None if lam is None else float(lam)
    named = 'the loaded checkpoint' if source is None else f'checkpoint {source!r}'
    where = f'{named} was trained with diluted layers {saved}' + (
        f' at lam={lam:g}' if lam is not None else '')
    modules = find_dilutable_modules(_unwrap(model))
    if not modules:
        raise CheckpointFitError(
            f'{where}, but the model has no dilutable backbone to run them: use '
            f"NoseVisionTransformer with diluted_layers={saved} (or a pruned checkpoint "
            f'with its removed_layers)')
    for module in modules:
        current = sorted(module.diluted_layers)
        if current and current != saved:
            raise CheckpointFitError(
                f'{where}; the model dilutes {current}: set the backbone\'s '
                f'diluted_layers={saved}')
        compensate = meta.get(META_COMPENSATE)
        if compensate is not None and bool(compensate) != bool(module.dilution_compensate):
            raise CheckpointFitError(
                f'{where} and compensate={bool(compensate)}; the model has '
                f'compensate={bool(module.dilution_compensate)}: set the backbone\'s '
                f'compensate={bool(compensate)}')
        if not current:
            module.set_diluted_layers(saved)
        if lam is not None:
            module.set_dilution_lam(lam)
    return saved


def dilution_meta(model: torch.nn.Module) -> dict:
    """The dilution record of what ``model`` runs now, for a checkpoint's ``meta``.

    Empty when no dilutable module dilutes a layer. Written by every checkpoint of a
    ``NoseRunner`` (and by ``DilutionHook``), so a run that trains a diluted model, e.g. one
    loaded from a diluted checkpoint without a ``DilutionHook``, says so in its checkpoints.
    """
    modules = [m for m in find_dilutable_modules(_unwrap(model)) if m.diluted_layers]
    if not modules:
        return {}
    module = modules[0]
    return {META_LAM: float(module.get_dilution_lam()),
            META_DILUTED: list(module.diluted_layers),
            META_COMPENSATE: bool(module.dilution_compensate),
            META_REMOVED: list(module.removed_layers)}


def load_checkpoint_strict(model: torch.nn.Module, path: str) -> dict:
    """Load a local checkpoint into ``model``, every key and shape fitting.

    Args:
        model (nn.Module): The model built from the config.
        path (str): A local checkpoint file.

    Returns:
        dict: The loaded checkpoint (e.g. its ``meta``).

    Raises:
        CheckpointFitError: The checkpoint does not fit the model.
    """
    checkpoint = load_checkpoint_file(path)
    load_state_dict_checked(model, state_dict_of(checkpoint), path)
    return checkpoint


@register_weight_init('Pretrained')
class StrictPretrainedInit(PretrainedInit):
    """mmengine's ``Pretrained`` init that refuses a misfit and applies a diluted checkpoint.

    Args:
        checkpoint (str): The checkpoint file.
        prefix (str, optional): Load only the keys under it, stripped. Defaults to None.
        map_location (str): As in :func:`torch.load`. Defaults to ``'cpu'``.
        strict (bool): Refuse misfits; False keeps mmengine's log-only load. Defaults to True.
        ignore_keys (sequence of str): Regexes of keys that may differ. Defaults to ().
    """

    def __init__(self, checkpoint, prefix=None, map_location='cpu', strict: bool = True,
                 ignore_keys: Sequence[str] = ()) -> None:
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        fit = check_fit_cfg(dict(strict=strict, ignore_keys=ignore_keys))
        self.strict = fit['strict']
        self.ignore_keys = fit['ignore_keys']

    def __call__(self, module):
        if not self.strict:
            return super().__call__(module)
        from mmengine.logging import print_log
        from mmengine.model.weight_init import update_init_info
        checkpoint = _load_checkpoint(self.checkpoint, map_location=self.map_location)
        state_dict = state_dict_of(checkpoint)
        source = self.checkpoint
        if self.prefix:
            state_dict = OrderedDict((k[len(self.prefix):], v) for k, v in state_dict.items()
                                     if k.startswith(self.prefix))
            if not state_dict:
                raise CheckpointFitError(f'checkpoint {self.checkpoint!r} has no key under '
                                         f'prefix {self.prefix!r}')
            source = f'{self.checkpoint} [{self.prefix}*]'
        print_log(f'load {self.prefix or "model"} from {self.checkpoint} (strict fit)',
                  logger='current')
        load_state_dict_checked(
            module, state_dict, source, ignore_keys=self.ignore_keys,
            hint='To load it anyway, set strict=False or ignore_keys=[...] in this init_cfg')
        apply_checkpoint_dilution(module, checkpoint.get('meta'), self.checkpoint)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())
