"""Conversion of timm / official checkpoints of every family and of the reference code's."""
import ast
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from nose_mm.checkpoint.files import state_dict_of

from .backbones.nose_vit import VIT_LAYOUT, convert_timm_vit
from .dilution import META_COMPENSATE, META_DILUTED, META_REMOVED
from .family import detect_source_family
from .prune import prune_state_dict

__all__ = ['unwrap_state_dict', 'convert_deit_checkpoint', 'convert_lambda_vit',
           'parse_layer_list']


def unwrap_state_dict(checkpoint: dict,
                      keys: Sequence[str] = ('model', 'state_dict')) -> Dict[str, torch.Tensor]:
    """The state dict of ``{'model': sd}``, ``{'state_dict': sd}`` or ``sd``, ``module.`` removed.

    Args:
        checkpoint (dict): The loaded checkpoint.
        keys (sequence of str): Keys to look under, in order, before the top level.
            Defaults to ``('model', 'state_dict')``.

    Raises:
        ValueError: No tensor dict found.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f'expected a dict checkpoint, got {type(checkpoint).__name__}')
    state_dict = state_dict_of(checkpoint, keys=tuple(keys))
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        looked = ', '.join(f'"{k}"' for k in keys)
        raise ValueError(f'no state dict of tensors found (looked at {looked} '
                         'and the top level)')
    return state_dict


def convert_deit_checkpoint(checkpoint: dict) -> dict:
    """Convert an official / timm checkpoint of a registered family to nose_mm keys.

    Args:
        checkpoint (dict): ``{'model': sd}``, ``{'state_dict': sd}`` or ``sd``.

    Returns:
        dict: ``{'state_dict', 'meta'}``; ``meta['backbone']`` names the backbone type.

    Raises:
        ValueError: An unknown layout, keys the family's converter refuses, or a
            reference-code (lambda_vit) checkpoint that names diluted / removed layers.
    """
    if isinstance(checkpoint, dict):
        _refuse_reference_checkpoint(checkpoint)
    state_dict = unwrap_state_dict(checkpoint)
    family = detect_source_family(state_dict)
    return {'state_dict': family.convert_source(state_dict),
            'meta': {'converted_from': family.source_tag,
                     'backbone': family.backbone.__name__}}


# The reference code's lambda is max(0, 1 - epoch / 299) (docs/design.md).
_REFERENCE_LAMBDA_END = 299
# main_lambda.py's --finetune reads 'model', else 'net' (transplant.py likewise).
_REFERENCE_WEIGHT_KEYS = ('model', 'net', 'state_dict')


def parse_layer_list(value, name: str) -> List[int]:
    """Parse the reference code's layer-list argument strictly.

    Args:
        value: A list/tuple of ints, or a list literal such as ``'[0,1,3,4,6]'``.
        name (str): The argument's name, for the error message.

    Returns:
        list[int]: The layers, in the given order.

    Raises:
        ValueError: ``value`` is not a list of ints.
    """
    parsed = value
    if isinstance(value, str):  # a list literal only: '0,1' (a tuple) is refused too
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed = None
        parsed = parsed if isinstance(parsed, list) else None
    if (not isinstance(parsed, (list, tuple))
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in parsed)):
        raise ValueError(f'{name} must be a list of ints such as "[0,1,3,4,6]", got {value!r}')
    return list(parsed)


def check_layer_set(layers: Sequence[int], num_layers: int, name: str) -> List[int]:
    """``layers`` sorted, after checking they are distinct and in ``0..num_layers-1``."""
    layers = list(layers)
    duplicates = sorted({i for i in layers if layers.count(i) > 1})
    if duplicates:
        raise ValueError(f'{name} has duplicated layers {duplicates}: {layers}')
    bad = [i for i in layers if not 0 <= i < num_layers]
    if bad:
        raise ValueError(f'{name} has layers {bad} out of range: the model has layers '
                         f'0..{num_layers - 1}')
    return sorted(layers)


def _reference_args(checkpoint: dict) -> Tuple[Optional[List[int]], List[int]]:
    """``(prune_layer, done_layer)`` from ``checkpoint['args']`` (None when absent)."""
    args = checkpoint.get('args')
    if args is None:
        return None, []
    fields = args if isinstance(args, dict) else getattr(args, '__dict__', None)
    if not isinstance(fields, dict):
        raise ValueError(f'checkpoint["args"] is a {type(args).__name__}, expected an '
                         f'argparse.Namespace or a dict')
    prune = fields.get('prune_layer')
    prune = None if prune is None else parse_layer_list(prune, 'args.prune_layer')
    done = fields.get('done_layer')
    done = [] if done is None else parse_layer_list(done, 'args.done_layer')
    return prune, done


def _check_lambda_done(checkpoint: dict, removed: List[int], done: List[int], origin: str,
                       final: bool) -> None:
    """Refuse a file whose removed layers (less ``done``) may still have lambda > 0."""
    diluted = sorted(set(removed) - set(done))
    if not diluted:
        return
    epoch = checkpoint.get('epoch')
    if epoch is None:
        if final and origin == '--removed-layers':
            return
        raise ValueError(
            f'the checkpoint records no epoch, so whether the reference lambda of layers '
            f'{diluted} reached 0 cannot be told (their attention is still in the file); if it '
            f'is a finished model, say so with --removed-layers '
            f'{" ".join(map(str, removed))} --final')
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise ValueError(f'checkpoint["epoch"] must be an int, got {epoch!r}')
    lam = min(1.0, 1.0 - epoch / _REFERENCE_LAMBDA_END)
    if lam > 0:
        raise ValueError(
            f'the checkpoint was saved after epoch {epoch}, where the reference code '
            f'trains layers {diluted} with lambda = {lam:.4g} > 0 '
            f'(it reaches 0 at epoch {_REFERENCE_LAMBDA_END}): their attention still '
            f'contributes, so it is not a pruned model')


def _refuse_reference_checkpoint(checkpoint: dict) -> None:
    """Refuse a ``main_lambda.py`` checkpoint whose ``args`` name layers it diluted: read as
    a plain DeiT, its attention would run at full strength (or be missing) in those layers."""
    if 'args' not in checkpoint:
        return
    args = checkpoint['args']
    fields = args if isinstance(args, dict) else getattr(args, '__dict__', None)
    if not isinstance(fields, dict) or not ({'prune_layer', 'done_layer'} & set(fields)):
        return  # e.g. DeiT's own training args
    prune, done = _reference_args(checkpoint)
    if prune or done:
        raise ValueError(
            f'a reference-code (lambda_vit) checkpoint: its args name diluted / removed layers '
            f'(prune_layer={prune}, done_layer={done}), which a plain DeiT conversion would '
            f'run at full attention; convert it with tools/convert/lambda_vit_to_nose.py '
            f'(tools/convert/deit_to_mae.py --lambda-vit)')


def convert_lambda_vit(checkpoint: dict, compensate: bool = True,
                       removed_layers: Optional[Sequence[int]] = None,
                       ema: bool = False, final: bool = False) -> dict:
    """Convert a reference-code (``lambda_vit``) checkpoint to a pruned nose_mm one.

    As ``main_lambda.py`` saves it, or already stripped (docs/design.md). The weights are
    read from ``'model'``, else ``'net'`` (as ``main_lambda.py --finetune`` reads them),
    else ``'state_dict'`` or the top level.

    Args:
        checkpoint (dict): The loaded checkpoint, or a bare timm-style state dict.
        compensate (bool): The model was trained with compensated residuals. Defaults to True.
        removed_layers (Sequence[int], optional): Overrides ``args.prune_layer``. Defaults to None.
        ema (bool): Convert ``checkpoint['model_ema']``. Defaults to False.
        final (bool): The caller states that the file is a finished model (lambda = 0 for
            every removed layer). Needed, with ``removed_layers``, when the file still holds
            the removed layers' attention and records no ``epoch``. Defaults to False.

    Returns:
        dict: ``{'state_dict', 'meta'}`` (``removed_layers``, ``dilution_compensate``).

    Raises:
        ValueError: A bad or conflicting removed set, lambda > 0, no epoch to tell lambda
            by (without ``final``), or ``ema`` without one.
    """
    if not isinstance(compensate, bool):
        raise ValueError(f'compensate must be True or False, got {compensate!r}')
    if not isinstance(final, bool):
        raise ValueError(f'final must be True or False, got {final!r}')
    if not isinstance(checkpoint, dict):
        raise ValueError(f'expected a dict checkpoint, got {type(checkpoint).__name__}')
    if removed_layers is not None:
        removed_layers = parse_layer_list(removed_layers, '--removed-layers')
    source = checkpoint.get('model_ema') if ema else checkpoint
    if not isinstance(source, dict):
        raise ValueError('--ema: the checkpoint has no "model_ema" state dict '
                         '(trained with --no-model-ema?)')
    state_dict, stripped = convert_timm_vit(
        unwrap_state_dict(source, keys=_REFERENCE_WEIGHT_KEYS), allow_removed=True)
    num_layers = sum(VIT_LAYOUT.depths(state_dict, 'backbone.'))
    prune, done = _reference_args(checkpoint)
    recorded = None if prune is None else sorted(set(prune) | set(done))
    if removed_layers is not None:
        removed_layers = check_layer_set(removed_layers, num_layers, '--removed-layers')
    if stripped:
        origin = 'stripped blocks'
        if removed_layers is not None and removed_layers != stripped:
            raise ValueError(f'--removed-layers {removed_layers} conflicts with the file: its '
                             f'blocks {stripped} have no norm1/attn (already stripped)')
        if removed_layers is None and recorded and recorded != stripped:
            raise ValueError(f'args.prune_layer/done_layer {recorded} conflict with the file: '
                             f'its blocks {stripped} have no norm1/attn; pass '
                             f'--removed-layers {" ".join(map(str, stripped))} to confirm')
        removed = stripped
    elif removed_layers is not None:
        origin, removed = '--removed-layers', removed_layers
    elif recorded is not None:
        origin = 'args.prune_layer'
        removed = check_layer_set(recorded, num_layers, 'args.prune_layer')
    else:
        raise ValueError('cannot tell which layers were removed: every block has norm1/attn '
                         'and the checkpoint has no args.prune_layer; pass --removed-layers')
    if not removed:
        raise ValueError(f'the removed set from {origin} is empty: this is an unpruned model; '
                         f'convert it with tools/convert/deit_to_mmpretrain.py')
    if not stripped:
        # the removed layers' attention is still in the file: lambda must have reached 0
        _check_lambda_done(checkpoint, removed, done, origin, final)
        state_dict = prune_state_dict(state_dict, removed)
    meta = {
        'converted_from': 'lambda_vit' + ('/model_ema' if ema else ''),
        'removed_layers_from': origin,
        META_REMOVED: removed,
        META_COMPENSATE: compensate,
        META_DILUTED: [],
    }
    return {'state_dict': state_dict, 'meta': meta}
