"""Checkpoint conversion: timm / official ViT, DeiT, DeiT-III, Swin and the reference code.

Official DeiT checkpoints (``{'model': state_dict}``) and timm ViT / DeiT
state dicts use ``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv``... mmpretrain's
``ImageClassifier`` with a ViT backbone and ``VisionTransformerClsHead`` uses
``backbone.layers.{i}.ln1``, ``backbone.layers.{i}.attn.qkv``... and
``head.layers.head``. :func:`convert_timm_vit` maps one onto the other.

DeiT-III (timm ``deit3_*``, official ``models_v2``) has the same block keys
plus layer scales (``ls1.gamma`` / ``ls2.gamma`` in timm, ``gamma_1`` /
``gamma_2`` in the official release) and a position embedding without a
class-token slot; :func:`convert_deit3` maps it onto :class:`NoseDeiT3`.
Swin (timm ``swin_*``, official releases) is mapped by :func:`convert_swin`.
:func:`convert_deit_checkpoint` tells the three apart from the keys.

The reference code's checkpoints are timm-style too: :func:`convert_lambda_vit`
reads the removed set from ``args.prune_layer`` (or from blocks that have no
``norm1`` / ``attn``), drops those layers' LN1 / attention and records them as
``removed_layers`` in the meta.
"""
import ast
import re
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from nose_mm.checkpoint.files import state_dict_of

from .dilution import META_COMPENSATE, META_DILUTED, META_REMOVED
from .layouts import VIT_LAYOUT
from .prune import prune_state_dict

__all__ = ['unwrap_state_dict', 'convert_timm_vit', 'convert_deit3', 'convert_swin',
           'swin_relative_position_index', 'detect_checkpoint_family',
           'convert_deit_checkpoint', 'convert_lambda_vit', 'parse_layer_list',
           'check_layer_set', 'reference_lambda']

_TOP_LEVEL = {
    'cls_token': 'backbone.cls_token',
    'pos_embed': 'backbone.pos_embed',
    'patch_embed.proj.weight': 'backbone.patch_embed.projection.weight',
    'patch_embed.proj.bias': 'backbone.patch_embed.projection.bias',
    'norm.weight': 'backbone.ln1.weight',
    'norm.bias': 'backbone.ln1.bias',
    'head.weight': 'head.layers.head.weight',
    'head.bias': 'head.layers.head.bias',
}

# Block-relative timm name -> mmpretrain name (under backbone.layers.{i}.).
_BLOCK = {
    'norm1.weight': 'ln1.weight',
    'norm1.bias': 'ln1.bias',
    'attn.qkv.weight': 'attn.qkv.weight',
    'attn.qkv.bias': 'attn.qkv.bias',
    'attn.proj.weight': 'attn.proj.weight',
    'attn.proj.bias': 'attn.proj.bias',
    'ls1.gamma': 'attn.gamma1.weight',  # layer scale (DeiT-III / CaiT-style timm ViTs)
    'norm2.weight': 'ln2.weight',
    'norm2.bias': 'ln2.bias',
    'mlp.fc1.weight': 'ffn.layers.0.0.weight',
    'mlp.fc1.bias': 'ffn.layers.0.0.bias',
    'mlp.fc2.weight': 'ffn.layers.1.weight',
    'mlp.fc2.bias': 'ffn.layers.1.bias',
    'ls2.gamma': 'ffn.gamma2.weight',
}
# The official DeiT-III release names the layer scales gamma_1 / gamma_2.
_DEIT3_BLOCK = dict(_BLOCK, gamma_1='attn.gamma1.weight', gamma_2='ffn.gamma2.weight')
_ATTENTION_PARTS = ('norm1.', 'attn.', 'ls1.', 'gamma_1')
_BLOCK_KEY = re.compile(r'blocks\.(\d+)\.(.+)')


def unwrap_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """Return the state dict inside an official / timm / mmengine checkpoint.

    Accepts ``{'model': sd}`` (official DeiT, the reference code),
    ``{'state_dict': sd}`` (mmengine) and a bare ``sd``. A leading
    ``module.`` (saved from DDP) is stripped.

    Raises:
        ValueError: No tensor dict found.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f'expected a dict checkpoint, got {type(checkpoint).__name__}')
    state_dict = state_dict_of(checkpoint, keys=('model', 'state_dict'))
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError('no state dict of tensors found (looked at "model", "state_dict" '
                         'and the top level)')
    return state_dict


def _rename_top_level(state_dict: Dict[str, torch.Tensor], names: Dict[str, str],
                      out: Dict[str, torch.Tensor]) -> Iterator[Tuple[str, torch.Tensor]]:
    """Put the keys of ``names`` into ``out`` under their new names, in order; yield the rest."""
    for key, value in state_dict.items():
        if key in names:
            out[names[key]] = value
        else:
            yield key, value


def convert_timm_vit(state_dict: Dict[str, torch.Tensor], allow_removed: bool = False,
                     block_names: Dict[str, str] = _BLOCK
                     ) -> Tuple['OrderedDict[str, torch.Tensor]', List[int]]:
    """Map timm / DeiT ViT keys onto mmpretrain ``ImageClassifier`` keys.

    Args:
        state_dict (dict): timm-style ViT state dict (class-token models with
            a linear head: DeiT, ViT; no distillation token).
        allow_removed (bool): Accept blocks without ``norm1`` / ``attn``
            (pruned blocks of the reference code). Defaults to False.
        block_names (dict): Block-relative timm name -> mmpretrain name.
            Defaults to the ViT / DeiT table.

    Returns:
        tuple: The converted state dict and the sorted list of blocks without
        attention (empty unless ``allow_removed``).

    Raises:
        ValueError: Keys that have no mmpretrain counterpart (e.g. DeiT's
            ``dist_token`` / ``head_dist``), a block with attention parts
            half present, or pruned blocks when ``allow_removed`` is False.
    """
    out = OrderedDict()
    unknown = []
    blocks: Dict[int, set] = {}
    for key, value in _rename_top_level(state_dict, _TOP_LEVEL, out):
        match = _BLOCK_KEY.fullmatch(key)
        if match and match.group(2) in block_names:
            index, name = int(match.group(1)), match.group(2)
            blocks.setdefault(index, set()).add(name)
            out[f'backbone.layers.{index}.{block_names[name]}'] = value
            continue
        unknown.append(key)
    if unknown:
        raise ValueError(f'keys with no mmpretrain ViT counterpart: {unknown[:10]}'
                         f'{" ..." if len(unknown) > 10 else ""} (distilled DeiT and other '
                         f'variants are not supported)')
    if not blocks:
        raise ValueError('no "blocks.<i>." keys: not a timm ViT state dict')
    removed = []
    for index, names in sorted(blocks.items()):
        attention = {n for n in names if n.startswith(_ATTENTION_PARTS)}
        if not attention:
            removed.append(index)
        elif not {'norm1.weight', 'attn.qkv.weight', 'attn.proj.weight'} <= attention:
            raise ValueError(f'block {index} has only part of its attention: '
                             f'{sorted(attention)}')
    missing_blocks = sorted(set(range(max(blocks) + 1)) - set(blocks))
    if missing_blocks:
        raise ValueError(f'blocks {missing_blocks} are missing entirely')
    if removed and not allow_removed:
        raise ValueError(f'blocks {removed} have no attention (norm1/attn): this is a pruned '
                         f'checkpoint; convert it with convert_lambda_vit / '
                         f'tools/convert/lambda_vit_to_nose.py')
    return out, removed


def convert_deit3(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Map timm ``deit3_*`` / official DeiT-III keys onto ``NoseDeiT3`` classifier keys.

    Layer scales ``ls1.gamma`` / ``gamma_1`` become ``attn.gamma1.weight`` and
    ``ls2.gamma`` / ``gamma_2`` ``ffn.gamma2.weight``; the rest is as in
    :func:`convert_timm_vit` (``pos_embed`` has no class-token slot in both).

    Raises:
        ValueError: As :func:`convert_timm_vit`; also blocks without layer scales.
    """
    out, _ = convert_timm_vit(state_dict, block_names=_DEIT3_BLOCK)
    scaled = {k for k in out if k.endswith(('attn.gamma1.weight', 'ffn.gamma2.weight'))}
    num_blocks = len({k.split('.')[2] for k in out if k.startswith('backbone.layers.')})
    if len(scaled) != 2 * num_blocks:
        raise ValueError(f'a DeiT-III checkpoint has two layer scales per block (ls1/ls2 or '
                         f'gamma_1/gamma_2); found {len(scaled)} for {num_blocks} blocks')
    return out


# Swin: block-relative timm / official name -> mmpretrain name (under stages.{s}.blocks.{j}.).
_SWIN_BLOCK = {
    'norm1.weight': 'norm1.weight',
    'norm1.bias': 'norm1.bias',
    'attn.qkv.weight': 'attn.w_msa.qkv.weight',
    'attn.qkv.bias': 'attn.w_msa.qkv.bias',
    'attn.proj.weight': 'attn.w_msa.proj.weight',
    'attn.proj.bias': 'attn.w_msa.proj.bias',
    'attn.relative_position_bias_table': 'attn.w_msa.relative_position_bias_table',
    'norm2.weight': 'norm2.weight',
    'norm2.bias': 'norm2.bias',
    'mlp.fc1.weight': 'ffn.layers.0.0.weight',
    'mlp.fc1.bias': 'ffn.layers.0.0.bias',
    'mlp.fc2.weight': 'ffn.layers.1.weight',
    'mlp.fc2.bias': 'ffn.layers.1.bias',
}
# Derived buffers of timm / official Swin, rebuilt rather than copied.
_SWIN_DERIVED = ('attn.relative_position_index', 'attn_mask')
_SWIN_TOP = {
    'patch_embed.proj.weight': 'backbone.patch_embed.projection.weight',
    'patch_embed.proj.bias': 'backbone.patch_embed.projection.bias',
    'patch_embed.norm.weight': 'backbone.patch_embed.norm.weight',
    'patch_embed.norm.bias': 'backbone.patch_embed.norm.bias',
    'head.weight': 'head.fc.weight',  # official
    'head.bias': 'head.fc.bias',
    'head.fc.weight': 'head.fc.weight',  # timm >= 0.9
    'head.fc.bias': 'head.fc.bias',
}
_SWIN_KEY = re.compile(r'layers\.(\d+)\.(?:blocks\.(\d+)\.(.+)|downsample\.(.+))')


def swin_relative_position_index(window_size: int) -> torch.Tensor:
    """The relative position index of a ``window_size`` x ``window_size`` window.

    Entry ``[p, q]`` is the row of the bias table holding the bias of token
    ``q`` seen from token ``p`` (row-major positions in the window):
    ``(dh + w - 1) * (2w - 1) + (dw + w - 1)`` with ``(dh, dw) = pos_p - pos_q``.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                        indexing='ij')).flatten(1)  # 2, N
    relative = (coords[:, :, None] - coords[:, None, :]) + (window_size - 1)  # 2, N, N
    return relative[0] * (2 * window_size - 1) + relative[1]


def _merge_order(tensor: torch.Tensor) -> torch.Tensor:
    """Reorder a patch-merging input axis from timm / official order to mmcv's.

    timm and the official Swin concatenate the 2x2 neighbours as
    ``[(0,0), (1,0), (0,1), (1,1)]`` (row, column offsets), neighbour-major;
    mmcv's ``PatchMerging`` unfolds to channel-major ``c * 4 + 2 * row + col``.
    The last axis of ``tensor`` (4C) is permuted accordingly.
    """
    channels = tensor.shape[-1] // 4
    lead = tensor.shape[:-1]
    grouped = tensor.reshape(*lead, 4, channels)[..., [0, 2, 1, 3], :]
    return grouped.transpose(-1, -2).reshape(*lead, 4 * channels)


def convert_swin(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Map timm ``swin_*`` / official Swin keys onto ``NoseSwinTransformer`` classifier keys.

    The classifier is ``ImageClassifier`` with ``GlobalAveragePooling`` and
    ``LinearClsHead`` (``head.fc``). Patch merging sits at the end of stage
    ``s`` in the official release (``layers.{s}.downsample``) and at the start
    of stage ``s + 1`` in timm >= 0.9 (``layers.{s+1}.downsample``); both go
    to ``backbone.stages.{s}.downsample`` with the reduction weight's inputs
    and the norm reordered (:func:`_merge_order`). The final ``norm`` becomes
    ``backbone.norm{last stage}``; relative position indices are rebuilt
    (:func:`swin_relative_position_index`), attention masks dropped.

    Raises:
        ValueError: Unknown keys, no blocks, or patch merging in both places.
    """
    out = OrderedDict()
    unknown, downsample = [], {}
    blocks: Dict[int, set] = {}
    for key, value in _rename_top_level(state_dict, _SWIN_TOP, out):
        match = _SWIN_KEY.fullmatch(key)
        if match is None:
            if key not in ('norm.weight', 'norm.bias'):
                unknown.append(key)
            continue
        stage = int(match.group(1))
        if match.group(4) is not None:
            downsample.setdefault(stage, {})[match.group(4)] = value
            continue
        block, name = int(match.group(2)), match.group(3)
        if name in _SWIN_BLOCK:
            blocks.setdefault(stage, set()).add(block)
            out[f'backbone.stages.{stage}.blocks.{block}.{_SWIN_BLOCK[name]}'] = value
            if name == 'attn.relative_position_bias_table':
                window = round(((value.shape[0]) ** 0.5 + 1) / 2)
                out[f'backbone.stages.{stage}.blocks.{block}.attn.w_msa.'
                    f'relative_position_index'] = swin_relative_position_index(window)
        elif not name.endswith(_SWIN_DERIVED):
            unknown.append(key)
    if unknown:
        raise ValueError(f'keys with no mmpretrain Swin counterpart: {unknown[:10]}'
                         f'{" ..." if len(unknown) > 10 else ""}')
    if not blocks:
        raise ValueError('no "layers.<s>.blocks.<j>." keys: not a Swin state dict')
    num_stages = max(blocks) + 1
    # official: stages 0..n-2 merge at their end; timm >= 0.9: stages 1..n-1 at their start
    shift = 1 if 0 not in downsample and downsample else 0
    if downsample and sorted(downsample) != [s + shift for s in range(num_stages - 1)]:
        raise ValueError(f'patch merging found in stages {sorted(downsample)} of '
                         f'{num_stages}: expected 0..{num_stages - 2} (official) or '
                         f'1..{num_stages - 1} (timm)')
    for stage, params in sorted(downsample.items()):
        for name, value in params.items():
            if name not in ('reduction.weight', 'norm.weight', 'norm.bias'):
                raise ValueError(f'unknown patch merging key "layers.{stage}.downsample.'
                                 f'{name}"')
            out[f'backbone.stages.{stage - shift}.downsample.{name}'] = _merge_order(value)
    for name in ('weight', 'bias'):
        if f'norm.{name}' in state_dict:
            out[f'backbone.norm{num_stages - 1}.{name}'] = state_dict[f'norm.{name}']
    return out


def detect_checkpoint_family(state_dict: Dict[str, torch.Tensor]) -> str:
    """Tell a timm / official ViT-DeiT, DeiT-III or Swin state dict apart by its keys.

    Swin has ``layers.{s}.blocks.{j}.`` keys; ViT, DeiT and DeiT-III have
    ``blocks.{i}.``; DeiT-III's ``pos_embed`` has no class-token slot (its
    length is a square number of patches) while a class token exists.

    Returns:
        str: ``'swin'``, ``'deit3'`` or ``'vit'``.

    Raises:
        ValueError: None of these layouts (e.g. an already converted
            mmpretrain checkpoint), naming what was looked for.
    """
    if any(_SWIN_KEY.fullmatch(k) for k in state_dict):
        return 'swin'
    if any(_BLOCK_KEY.fullmatch(k) for k in state_dict):
        pos_embed = state_dict.get('pos_embed')
        if 'cls_token' in state_dict and pos_embed is not None and pos_embed.dim() == 3:
            side = round(pos_embed.shape[1] ** 0.5)
            if side * side == pos_embed.shape[1]:
                return 'deit3'
        return 'vit'
    sample = list(state_dict)[:5]
    raise ValueError(f'unrecognised checkpoint layout (first keys: {sample}): expected a timm / '
                     f'official ViT or DeiT ("blocks.<i>."), DeiT-III ("blocks.<i>." with a '
                     f'class-token-free pos_embed) or Swin ("layers.<s>.blocks.<j>.") state '
                     f'dict')


# family -> (converter, backbone type to build, converted_from tag)
_CONVERTERS = {
    'vit': (lambda sd: convert_timm_vit(sd)[0], 'NoseVisionTransformer', 'timm/deit'),
    'deit3': (convert_deit3, 'NoseDeiT3', 'timm/deit3'),
    'swin': (convert_swin, 'NoseSwinTransformer', 'timm/swin'),
}


def convert_deit_checkpoint(checkpoint: dict) -> dict:
    """Convert an official / timm ViT, DeiT, DeiT-III or Swin checkpoint to mmpretrain keys.

    The family is read from the keys (:func:`detect_checkpoint_family`).

    Args:
        checkpoint (dict): ``{'model': sd}``, ``{'state_dict': sd}`` or ``sd``.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {'converted_from': ..., 'backbone': ...}}``
        for ``load_from`` or ``init_cfg=dict(type='Pretrained',
        checkpoint=..., prefix='backbone.')``; ``meta['backbone']`` names
        the nose_mm backbone type to build (``NoseVisionTransformer``,
        ``NoseDeiT3`` or ``NoseSwinTransformer``).

    Raises:
        ValueError: An unknown layout or keys the family's converter refuses.
    """
    state_dict = unwrap_state_dict(checkpoint)
    convert, backbone, tag = _CONVERTERS[detect_checkpoint_family(state_dict)]
    return {'state_dict': convert(state_dict),
            'meta': {'converted_from': tag, 'backbone': backbone}}


# The reference code's lambda for a checkpoint saved after epoch ``e``: the
# training script passes the epoch to the model, which uses
# ``max(0, 1 - e / 299)`` (``1`` at epoch 0) for the layers of ``prune_layer``.
_REFERENCE_LAMBDA_END = 299


def reference_lambda(epoch: int) -> float:
    """The reference code's dilution coefficient after training epoch ``epoch``."""
    return 1.0 if epoch <= 0 else max(0.0, 1.0 - epoch / _REFERENCE_LAMBDA_END)


def parse_layer_list(value, name: str) -> List[int]:
    """Parse the reference code's layer-list argument strictly.

    Args:
        value: A list/tuple of ints, or a list literal such as ``'[0,1,3,4,6]'``
            (how ``main_lambda.py`` stores ``--prune_layer``).
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
    """Check that ``layers`` are distinct indices in ``0..num_layers-1``; return them sorted.

    Raises:
        ValueError: A duplicate or an out-of-range layer.
    """
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


def convert_lambda_vit(checkpoint: dict, compensate: bool = True,
                       removed_layers: Optional[Sequence[int]] = None,
                       ema: bool = False) -> dict:
    """Convert a reference-code (``lambda_vit``) checkpoint to a pruned nose_mm one.

    Two layouts are accepted (see ``configs/imagenet/README.md``):

    - as ``main_lambda.py`` saves it: ``{'model', 'model_ema', 'args', 'epoch',
      ...}`` where ``model`` is the training model's state dict, every block
      still holding ``norm1`` / ``attn``. The removed set is
      ``args.prune_layer`` (plus ``args.done_layer``), or ``removed_layers``;
    - already stripped: the removed blocks have no ``norm1`` / ``attn``; the
      removed set is those blocks (``removed_layers``, if given, must equal it).

    Args:
        checkpoint (dict): The loaded checkpoint, or a bare timm-style state dict.
        compensate (bool): Whether the model was trained with the compensated
            residual (the reference default; its pruned blocks compute
            ``2 * x``). Defaults to True.
        removed_layers (Sequence[int], optional): The removed set; overrides
            ``args.prune_layer``. Defaults to None.
        ema (bool): Convert ``checkpoint['model_ema']`` instead of
            ``checkpoint['model']``. Defaults to False.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {'removed_layers': [...],
        'dilution_compensate': ..., 'dilution_layers': [], ...}}``. Build
        the model with ``removed_layers`` and ``compensate`` from the meta.

    Raises:
        ValueError: The removed set cannot be determined, is malformed, out of
            range or conflicts with the file; the checkpoint was saved while the
            reference's lambda was still above 0; ``ema`` without ``model_ema``.
    """
    if not isinstance(compensate, bool):
        raise ValueError(f'compensate must be True or False, got {compensate!r}')
    if not isinstance(checkpoint, dict):
        raise ValueError(f'expected a dict checkpoint, got {type(checkpoint).__name__}')
    if removed_layers is not None:
        removed_layers = parse_layer_list(removed_layers, '--removed-layers')
    source = checkpoint
    if ema:
        if not isinstance(checkpoint.get('model_ema'), dict):
            raise ValueError('--ema: the checkpoint has no "model_ema" state dict '
                             '(trained with --no-model-ema?)')
        source = checkpoint['model_ema']
    state_dict, stripped = convert_timm_vit(unwrap_state_dict(source), allow_removed=True)
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
        epoch = checkpoint.get('epoch')
        diluted = sorted(set(prune) - set(done))
        if diluted and isinstance(epoch, int) and reference_lambda(epoch) > 0:
            raise ValueError(
                f'the checkpoint was saved after epoch {epoch}, where the reference code '
                f'trains layers {diluted} with lambda = {reference_lambda(epoch):.4g} > 0 '
                f'(it reaches 0 at epoch {_REFERENCE_LAMBDA_END}): their attention still '
                f'contributes, so it is not a pruned model')
    else:
        raise ValueError('cannot tell which layers were removed: every block has norm1/attn '
                         'and the checkpoint has no args.prune_layer; pass --removed-layers')
    if not removed:
        raise ValueError(f'the removed set from {origin} is empty: this is an unpruned model; '
                         f'convert it with tools/convert/deit_to_mmpretrain.py')
    if not stripped:
        state_dict = prune_state_dict(state_dict, removed)
    meta = {
        'converted_from': 'lambda_vit' + ('/model_ema' if ema else ''),
        'removed_layers_from': origin,
        META_REMOVED: removed,
        META_COMPENSATE: compensate,
        META_DILUTED: [],
    }
    return {'state_dict': state_dict, 'meta': meta}
