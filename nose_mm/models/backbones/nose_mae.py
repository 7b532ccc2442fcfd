"""The MAE / BEiT family: mmseg's ``MAE`` and ``BEiT`` dilutable and prunable, DeiT into it.

The authors' ADE20k set-up (TinyMIM's segmentation code, configs/ade20k/README.md) puts an
ImageNet DeiT into a BEiT-style block: layer scales ``gamma_1`` / ``gamma_2``, a relative
position bias per block and (TinyMIM, ``qv_bias=True``) biases on q and v only. With the
bias table zero and the layer scales 1 that block computes the DeiT block; the key bias it
drops adds ``q . b_k`` to every logit of a query's row, which softmax ignores. So a converted
(or NOSE-pruned) DeiT gives the same features in :class:`NoseMAE` as in the ViT family's
backbone (:func:`convert_vit_to_mae`).
"""
import math
from collections import OrderedDict
from typing import Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmpretrain.models.utils import resize_pos_embed
from mmseg.models.backbones import BEiT, MAE
from mmseg.models.backbones.beit import BEiTTransformerEncoderLayer
from mmseg.models.backbones.mae import MAETransformerEncoderLayer
from torch import Tensor

from nose_mm.registry import register_model

from ..dilution import META_COMPENSATE, META_DILUTED, META_REMOVED
from ..family import BackboneFamily, register_family
from ..layouts import BlockLayout
from .base import DilutableBlockMixin, NoseBackboneMixin
from .nose_vit import VIT_LAYOUT, short_arch_names

__all__ = ['NoseMAE', 'NoseBEiT', 'MAE_LAYOUT', 'MAEFamily', 'MAE_ARCHS', 'convert_vit_to_mae']

#: MAE / BEiT blocks: ``layers.{i}.{ln1,attn,gamma_1,ln2,ffn,gamma_2}``; a state dict has it
#: when its blocks carry ``gamma_2`` (a removed block keeps its FFN and ``gamma_2``).
MAE_LAYOUT = BlockLayout('mae', r'layers\.(\d+)\.(ln1|attn|gamma_1|ln2|ffn|gamma_2)(?:\.|$)',
                         ('ln1', 'attn', 'gamma_1'), '{prefix}layers.{block}',
                         requires=r'layers\.\d+\.gamma_2$')

#: ``arch`` presets (DeiT sizes): embed_dims, num_layers, num_heads; mlp_ratio 4.
MAE_ARCHS = {'deit-tiny': (192, 12, 3), 'deit-small': (384, 12, 6), 'deit-base': (768, 12, 12)}


class _DilutableBEiTBlock(DilutableBlockMixin):
    """The BEiT block ``x + drop_path(gamma * branch)`` with a dilutable attention branch.

    A removed block has no ``ln1``, ``attn`` (nor its relative position bias table) or
    ``gamma_1``: it computes ``2x`` (compensated) then its FFN.
    """

    attention_parts = ('ln1', 'attn', 'gamma_1')

    def forward(self, x: Tensor) -> Tensor:
        """BEiT block forward with the attention branch diluted."""
        x = self.attention_residual(
            x, lambda y: self.drop_path(self.gamma_1 * self.attn(self.norm1(y))))
        return x + self.drop_path(self.gamma_2 * self.ffn(self.norm2(x)))


class DilutableMAELayer(_DilutableBEiTBlock, MAETransformerEncoderLayer):
    """mmseg's ``MAETransformerEncoderLayer`` (zero-initialised bias table), dilutable."""

    parent = MAETransformerEncoderLayer


class DilutableBEiTLayer(_DilutableBEiTBlock, BEiTTransformerEncoderLayer):
    """mmseg's ``BEiTTransformerEncoderLayer``, dilutable."""

    parent = BEiTTransformerEncoderLayer


def _apply_arch(arch, kwargs: dict) -> None:
    """Fill ``embed_dims`` / ``num_layers`` / ``num_heads`` from a :data:`MAE_ARCHS` preset or
    a dict of them (so the benchmark names the sizes: ``arch_name``)."""
    if arch is None:
        return
    keys = ('embed_dims', 'num_layers', 'num_heads')
    if isinstance(arch, dict):
        if not set(arch) <= set(keys) or not arch:
            raise ValueError(f'an arch dict takes {", ".join(keys)}, got {sorted(arch)}')
        sizes = dict(arch)
    elif isinstance(arch, str) and arch.lower() in MAE_ARCHS:
        sizes = dict(zip(keys, MAE_ARCHS[arch.lower()]))
    else:
        raise ValueError(f'unknown arch {arch!r}; available: {", ".join(MAE_ARCHS)}, a dict of '
                         f'{", ".join(keys)}, or none (the sizes as keyword arguments)')
    for key, value in sizes.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f'arch {arch!r} has {key}={value}, the config sets '
                             f'{key}={kwargs[key]}: give one of them')
        kwargs[key] = value


class _NoseBEiTBackbone(NoseBackboneMixin):
    """What :class:`NoseMAE` and :class:`NoseBEiT` share: arch, strict init, loading."""

    block_layout = MAE_LAYOUT

    def init_weights(self):
        """mmseg's init; a ``Pretrained`` init_cfg goes through nose_mm's strict initializer
        (mmseg's own loads a bare checkpoint with ``strict=False``, which hides misfits)."""
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            BaseModule.init_weights(self)
        else:
            super().init_weights()

    def fix_init_weight(self):
        """MAE's depth rescaling of the output projections; removed blocks have only FFNs."""
        for layer_id, layer in enumerate(self.layers, start=1):
            if not layer.removed:
                layer.attn.proj.weight.data.div_(math.sqrt(2.0 * layer_id))
            layer.ffn.layers[1].weight.data.div_(math.sqrt(2.0 * layer_id))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # relative_position_index is derived from the window, not learnt: a checkpoint
        # without it (convert_vit_to_mae writes none) gets the model's own
        for i, layer in enumerate(self.layers):
            head = f'{prefix}layers.{i}.attn.'
            if not layer.removed and f'{head}qkv.weight' in state_dict:
                state_dict.setdefault(f'{head}relative_position_index',
                                      layer.attn.relative_position_index)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


@register_model
class NoseMAE(_NoseBEiTBackbone, MAE):
    """mmseg's ``MAE`` (absolute position embedding, BEiT block) dilutable and prunable.

    Args:
        arch (str | dict, optional): ``'deit-tiny'`` / ``'deit-small'`` / ``'deit-base'``
            sizes (:data:`MAE_ARCHS`), a dict of ``embed_dims`` / ``num_layers`` /
            ``num_heads``, or None: those as keyword arguments. Defaults to None.
        qv_bias (bool): Biases on q and v only (BEiT's attention, TinyMIM's backbone) instead
            of mmseg's MAE bias on q, k and v. Defaults to False (mmseg's ``MAE``).
        diluted_layers, removed_layers, compensate, init_lam: See :class:`.NoseBackboneMixin`.
        **kwargs: Keyword arguments of mmseg's ``MAE`` (``init_values=1.0`` for a DeiT).

    Raises:
        ValueError: An unknown arch, sizes that contradict it, bad layer indices.
    """

    block_class = DilutableMAELayer

    def __init__(self, arch=None, *args, qv_bias: bool = False, **kwargs):
        if not isinstance(qv_bias, bool):
            raise ValueError(f'qv_bias must be True or False, got {qv_bias!r}')
        _apply_arch(arch, kwargs)
        self._qv_bias = qv_bias  # read by _build_layers inside MAE.__init__
        super().__init__(*args, **kwargs)
        self.arch = arch

    def _build_layers(self):
        super()._build_layers()
        if self._qv_bias:  # BEiT's q/v biases: qkv without its bias, q_bias and v_bias
            for layer in self.layers:
                layer.attn.qkv.bias = None
                layer.attn.bias = 'qv_bias'
                layer.attn._init_qv_bias()


@register_model
class NoseBEiT(_NoseBEiTBackbone, BEiT):
    """mmseg's ``BEiT`` (relative position bias only, q/v biases) dilutable and prunable.

    Args:
        arch (str, optional): As in :class:`NoseMAE`. Defaults to None.
        diluted_layers, removed_layers, compensate, init_lam: See :class:`.NoseBackboneMixin`.
        **kwargs: Keyword arguments of mmseg's ``BEiT``.
    """

    block_class = DilutableBEiTLayer

    def __init__(self, arch=None, *args, **kwargs):
        _apply_arch(arch, kwargs)
        super().__init__(*args, **kwargs)
        self.arch = arch

    def fix_init_weight(self):  # BEiT has none
        pass


# ---- conversion: ViT family (mmpretrain keys) -> NoseMAE --------------------------------
_TOP = {'backbone.cls_token': 'cls_token', 'backbone.pos_embed': 'pos_embed',
        'backbone.patch_embed.projection.weight': 'patch_embed.projection.weight',
        'backbone.patch_embed.projection.bias': 'patch_embed.projection.bias'}
_SAME = ('ln1.weight', 'ln1.bias', 'attn.qkv.weight', 'attn.proj.weight', 'attn.proj.bias',
         'ln2.weight', 'ln2.bias', 'ffn.layers.0.0.weight', 'ffn.layers.0.0.bias',
         'ffn.layers.1.weight', 'ffn.layers.1.bias')
_SCALES = {'attn.gamma1.weight': 'gamma_1', 'ffn.gamma2.weight': 'gamma_2'}
_DROPPED = ('backbone.ln1.', 'head.', 'neck.', 'data_preprocessor.')


def convert_vit_to_mae(checkpoint: dict, img_size: Sequence[int] = (512, 512),
                       num_heads: Optional[int] = None, qv_bias: bool = True,
                       prefix: str = 'backbone.') -> dict:
    """A ViT-family classifier checkpoint (mmpretrain keys) as a :class:`NoseMAE` backbone.

    q/v biases (``qv_bias``; the key bias is dropped) or the qkv bias, layer scales 1 where
    the source has none, zero relative position bias tables sized for ``img_size``,
    ``pos_embed`` resized (bicubic, as the ViT backbone resizes it on loading). The final
    norm and the head are dropped (the segmentation backbone reads intermediate blocks);
    pruned blocks stay pruned (``meta['removed_layers']`` is kept).

    Args:
        checkpoint (dict): ``{'state_dict', 'meta'}`` with ``backbone.layers.*`` keys.
        img_size (Sequence[int]): The segmentation crop. Defaults to (512, 512).
        num_heads (int, optional): Attention heads (the bias tables' width). Defaults to
            None: ``embed_dims // 64`` (every DeiT / ViT preset).
        qv_bias (bool): Write ``q_bias`` / ``v_bias`` (TinyMIM) rather than ``qkv.bias``
            (mmseg's ``MAE``). Defaults to True.
        prefix (str): The backbone keys' prefix in ``checkpoint``. Defaults to ``'backbone.'``.

    Returns:
        dict: ``{'state_dict', 'meta'}``, bare backbone keys (``init_cfg`` without prefix).

    Raises:
        ValueError: Not a ViT-family state dict, keys it cannot place, bad sizes.
    """
    from ..family import family_of_state_dict
    state_dict = checkpoint.get('state_dict', checkpoint)
    meta = dict(checkpoint.get('meta') or {}) if 'state_dict' in checkpoint else {}
    family = family_of_state_dict(state_dict, prefix)
    if family is None or family.layout is not VIT_LAYOUT or family.name != 'vit':
        found = 'an undecided family' if family is None else f'the {family.name!r} family'
        raise ValueError(f'expected a ViT / DeiT checkpoint (mmpretrain keys under {prefix!r}), '
                         f'got {found}: only its blocks compute the MAE block exactly')
    if prefix != 'backbone.':
        state_dict = {'backbone.' + k[len(prefix):] if k.startswith(prefix) else k: v
                      for k, v in state_dict.items()}
    if 'backbone.dist_token' in state_dict or 'backbone.pre_norm.weight' in state_dict:
        raise ValueError('a distillation token or a pre-norm has no place in the MAE backbone')
    absent = [k for k in _TOP if k not in state_dict]
    if absent:
        raise ValueError(f'the MAE backbone needs {absent} (a class token and a position '
                         f'embedding with its slot); the checkpoint has none')
    size = tuple(int(s) for s in img_size) if not isinstance(img_size, int) else (img_size, ) * 2
    patch = state_dict['backbone.patch_embed.projection.weight'].shape[-1]
    if len(size) != 2 or size[0] % patch or size[1] % patch:
        raise ValueError(f'img_size {img_size!r} must be two multiples of the patch size {patch}')
    grid = (size[0] // patch, size[1] // patch)
    dims = state_dict['backbone.cls_token'].shape[-1]
    if num_heads is None:
        if dims % 64:
            raise ValueError(f'embed_dims {dims} is not a multiple of 64: give num_heads')
        num_heads = dims // 64
    depths = VIT_LAYOUT.depths(state_dict, 'backbone.')
    blocks = VIT_LAYOUT.block_keys(state_dict, 'backbone.', depths)
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        if key in _TOP:
            out[_TOP[key]] = value
        elif key in blocks:
            name = key[len(f'backbone.layers.{blocks[key].layer}.'):]
            head = f'layers.{blocks[key].layer}.'
            if name in _SAME:
                out[head + name] = value
            elif name in _SCALES:
                out[head + _SCALES[name]] = value
            elif name == 'attn.qkv.bias':
                if qv_bias:
                    out[head + 'attn.q_bias'], _, out[head + 'attn.v_bias'] = value.chunk(3)
                else:
                    out[head + 'attn.qkv.bias'] = value
            else:
                unknown.append(key)
        elif not key.startswith(_DROPPED):
            unknown.append(key)
    if unknown:
        raise ValueError(f'keys with no MAE backbone counterpart: {unknown[:5]}'
                         f'{" ..." if len(unknown) > 5 else ""}')
    side = round((out['pos_embed'].shape[1] - 1)**0.5)
    if side * side != out['pos_embed'].shape[1] - 1:
        raise ValueError(f'pos_embed has {out["pos_embed"].shape[1]} tokens: not a class token '
                         f'and a square patch grid')
    out['pos_embed'] = resize_pos_embed(out['pos_embed'], (side, side), grid, mode='bicubic',
                                        num_extra_tokens=1)
    table = torch.zeros((2 * grid[0] - 1) * (2 * grid[1] - 1) + 3, num_heads)
    for layer in range(sum(depths)):
        head = f'layers.{layer}.'
        for name in ('gamma_1', 'gamma_2'):
            if name == 'gamma_2' or f'{head}attn.qkv.weight' in out:
                out.setdefault(head + name, torch.ones(dims))
        if f'{head}attn.qkv.weight' in out:
            out[head + 'attn.relative_position_bias_table'] = table.clone()
            # a ViT built without qkv bias: zero biases compute the same
            for name, width in ((('q_bias', dims), ('v_bias', dims)) if qv_bias
                                else (('qkv.bias', 3 * dims), )):
                out.setdefault(f'{head}attn.{name}', torch.zeros(width))
    removed = sorted({b.layer for b in blocks.values()} -
                     {b.layer for b in blocks.values() if b.part in VIT_LAYOUT.attention_parts})
    if sorted(meta.get(META_REMOVED, removed)) != removed:
        raise ValueError(f'meta["{META_REMOVED}"]={meta.get(META_REMOVED)} but the blocks '
                         f'without attention are {removed}')
    if meta.get(META_DILUTED):
        raise ValueError(f'the checkpoint dilutes layers {meta[META_DILUTED]}: prune it '
                         f'(tools/prune.py) or convert the undiluted model')
    new_meta = {'converted_from': meta.get('converted_from', 'mmpretrain/vit'),
                'converted_to': 'NoseMAE', 'backbone': 'NoseMAE', 'img_size': list(size),
                'num_heads': num_heads, 'qv_bias': qv_bias, META_REMOVED: removed,
                META_COMPENSATE: bool(meta.get(META_COMPENSATE, True))}
    return {'state_dict': out, 'meta': new_meta}


# ---- the family -----------------------------------------------------------------------
def _tokens_to_map(tokens: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
    patches = tokens[:, 1:]
    return patches.reshape(tokens.shape[0], *hw_shape, -1).permute(0, 3, 1, 2)


@register_family
class MAEFamily(BackboneFamily):
    """mmseg's ``MAE`` / ``BEiT`` (``NoseMAE``, ``NoseBEiT``): BEiT blocks with layer scales.

    Timm / official files reach it from the ViT family: :func:`convert_vit_to_mae`
    (``tools/convert/deit_to_mae.py``); it claims no timm file itself.
    """

    name = 'mae'
    backbone = NoseMAE
    accepts = (NoseMAE, NoseBEiT, MAE, BEiT)
    layout = MAE_LAYOUT
    source_tag = 'mmpretrain/vit'
    arch_prefix = 'mae'
    display_prefix = 'MAE-style'
    arch_names = {f'mae-{k}': f'{v} (BEiT block)'
                  for k, v in short_arch_names('deit-', 'DeiT', ('tiny', 'small', 'base')).items()}

    def claims_source(self, state_dict):
        return False

    def check_readout(self, backbone, num_blocks):
        if list(backbone.out_indices)[-1] != num_blocks - 1:
            raise ValueError(f'the head must read the last layer ({num_blocks - 1}); '
                             f'backbone out_indices are {list(backbone.out_indices)}')

    def embed(self, backbone, inputs):
        x, hw_shape = backbone.patch_embed(inputs)
        if tuple(hw_shape) != tuple(backbone.patch_shape):
            # the position embedding and the bias tables are fixed to img_size (mmseg's
            # forward fails on other sizes too; its slide inference feeds crops of it)
            raise ValueError(
                f'{type(backbone).__name__} runs on img_size {tuple(backbone.img_size)} inputs '
                f'only (a {backbone.patch_shape[0]} x {backbone.patch_shape[1]} patch grid); '
                f'got {inputs.shape[-2]} x {inputs.shape[-1]}: select on images of that size '
                f'(e.g. a crop of it in the test pipeline the calibration images go through)')
        x = torch.cat((backbone.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if isinstance(backbone, MAE):  # BEiT has no absolute position embedding
            x = x + backbone.pos_embed
        return x, hw_shape

    def attention_branch(self, block, state):
        return block.drop_path(block.gamma_1 * block.attn(block.norm1(state)))

    def mlp_branch(self, block, state):
        return block.drop_path(block.gamma_2 * block.ffn(block.norm2(state)))

    def readout(self, backbone, state, context):
        x = backbone.norm1(state) if backbone.final_norm else state
        return _tokens_to_map(x, context).contiguous()

    def patch_map(self, backbone, state, context):
        return _tokens_to_map(state, context)

    def output_blocks(self, backbone):
        # mmseg's forward takes an output after block i when ``i in out_indices``
        return [i for i in range(len(backbone.layers)) if i in backbone.out_indices]

    def output(self, backbone, index, state, context):
        last = index == len(backbone.layers) - 1
        x = backbone.norm1(state) if last and backbone.final_norm else state
        return _tokens_to_map(x, context).contiguous()

