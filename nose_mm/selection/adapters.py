"""Model adapters: a classifier seen as ``embed -> block 0 .. L-1 -> readout``.

Selection, its baselines and the analysis tools only talk to a
:class:`LayerSkipAdapter`; supporting another backbone family means writing
another adapter and registering it with :func:`register_adapter`.
:func:`build_adapter` picks the most recently registered adapter whose
:meth:`~LayerSkipAdapter.supports` accepts the model.

What flows from one block to the next is the adapter's *state*: the (B, N, C)
tokens for plain ViTs, ``(tokens, hw_shape)`` for Swin. The evaluators cache
states without looking inside them, so prefix caching works for any state.

Every adapter computes its blocks explicitly as the plain pre-norm block

    x = x + attn(norm1(x))     # skipped: x = x (identity) or x = 2x (compensated)
    x = x + ffn(norm2(x))

whatever dilution state the backbone carries: selection measures the
pre-trained model. What a skipped attention leaves is the adapter's
``skip_mode`` (:data:`SKIP_MODES`): ``'identity'`` (x stays x, docs/method.md's
definition, the default) or ``'compensated'`` (x becomes 2x, the reference's
shrink model: the block diluted at lam = 0 with compensation). A ``block``
override skips through :meth:`~LayerSkipAdapter.skipped_attention` and is marked
with :func:`applies_skip_mode` (an unmarked one refuses ``'compensated'``).
Layers listed in the backbone's ``removed_layers`` have no attention; they run
through the block's own ``forward`` and are not candidates.

* :class:`MMPretrainViTAdapter`: mmpretrain's ``VisionTransformer`` (ViT,
  DeiT without distillation token) and subclasses keeping its block layout
  (``layers[i]`` with ``ln1``, ``attn``, ``ln2``, ``ffn``), e.g.
  ``NoseVisionTransformer``. The head reads the final-normed CLS token.
* :class:`MMPretrainDeiT3Adapter`: mmpretrain's ``DeiT3`` and ``NoseDeiT3``
  (layer scale inside ``attn`` / ``ffn``; the position embedding skips the CLS
  token). ``NoseDeiT3`` blocks normalise the FFN input with ``ln2`` (official
  DeiT-III); mmpretrain 1.2.0's own blocks use ``ln1``, and the adapter
  computes what each block computes.
* :class:`MMPretrainSwinAdapter`: mmpretrain's ``SwinTransformer`` and
  ``NoseSwinTransformer``. Layers are Swin blocks in global stage order; the
  patch merging after a stage's last block is part of that block's step, so
  the cached input of a stage's first block is already merged and skipping it
  recomputes from there. The head reads the last stage's normed map, pooled
  by the neck.
"""
from abc import ABCMeta, abstractmethod
from typing import Any, Callable, List, NamedTuple, Sequence, Tuple, Type

import torch
from mmpretrain.utils import get_ori_model
from torch import Tensor

from nose_mm.models.dilution import removed_residual

__all__ = ['FEATURES', 'SKIP_MODES', 'applies_skip_mode', 'BlockParts', 'LayerSkipAdapter',
           'MMPretrainViTAdapter',
           'MMPretrainDeiT3Adapter', 'MMPretrainSwinAdapter', 'register_adapter',
           'build_adapter']

#: Which features an adapter reads out: what the head reads, or the logits.
FEATURES = ('head_input', 'logits')
#: What a skipped attention sublayer leaves: ``x`` (identity) or ``2x`` (compensated).
SKIP_MODES = ('identity', 'compensated')

_ADAPTERS: List[Type['LayerSkipAdapter']] = []


def applies_skip_mode(block: Callable) -> Callable:
    """Mark a :meth:`LayerSkipAdapter.block` override that skips through
    :meth:`~LayerSkipAdapter.skipped_attention` (so every skip mode is honoured)."""
    block.applies_skip_mode = True
    return block


class BlockParts(NamedTuple):
    """One block split into its sublayers (:meth:`LayerSkipAdapter.block_parts`).

    Attributes:
        tokens (Tensor): (B, N, C) input of the attention sublayer.
        attn (Tensor): The attention branch (what the sublayer adds).
        mlp (Tensor): The MLP branch given ``tokens + attn``.
        output (Any): The block's output state (the next block's input).
    """
    tokens: Tensor
    attn: Tensor
    mlp: Tensor
    output: Any


class LayerSkipAdapter(metaclass=ABCMeta):
    """Interface: a network as embed, ``L`` residual blocks and a readout.

    Subclasses implement :meth:`supports`, :attr:`num_layers`, :meth:`embed`,
    :meth:`attention_branch`, :meth:`mlp_branch`, :meth:`readout` and
    :meth:`patch_tokens`. The defaults of :meth:`block` and
    :meth:`block_parts` treat the state as a token tensor; adapters with
    another state (Swin) override both. All methods run under the caller's
    ``torch.no_grad()``.

    Args:
        model (nn.Module): The (unwrapped) model.
        features (str): What :meth:`readout` returns: ``'head_input'`` (the
            features the head reads, e.g. the final-normed CLS token) or
            ``'logits'``. Defaults to ``'head_input'``.
        skip_mode (str): What a skipped attention leaves (:data:`SKIP_MODES`):
            ``'identity'`` (x) or ``'compensated'`` (2x). Defaults to
            ``'identity'``.

    Raises:
        ValueError: If ``features`` or ``skip_mode`` is not an allowed value, or
            ``skip_mode`` is not ``'identity'`` and the subclass overrides
            :meth:`block` without :func:`applies_skip_mode`.
    """

    def __init__(self, model: torch.nn.Module, features: str = 'head_input',
                 skip_mode: str = 'identity') -> None:
        if features not in FEATURES:
            raise ValueError(f'unknown features {features!r}; allowed: {", ".join(FEATURES)}')
        if skip_mode not in SKIP_MODES:
            raise ValueError(f'unknown skip_mode {skip_mode!r}; allowed: '
                             f'{", ".join(SKIP_MODES)}')
        if skip_mode != 'identity' and not getattr(type(self).block, 'applies_skip_mode', False):
            raise ValueError(f'{type(self).__name__}.block does not apply skip_mode '
                             f'{skip_mode!r}: it must skip through skipped_attention() and be '
                             f'marked with @applies_skip_mode')
        self.model = model
        self.features = features
        self.skip_mode = skip_mode

    @classmethod
    @abstractmethod
    def supports(cls, model: torch.nn.Module) -> bool:
        """Whether this adapter can handle ``model``."""

    @property
    @abstractmethod
    def num_layers(self) -> int:
        """Number of blocks ``L``."""

    @property
    def removed_layers(self) -> List[int]:
        """Blocks without attention (pruned); never candidates. Defaults to none."""
        return []

    @property
    def candidate_layers(self) -> List[int]:
        """Blocks whose attention can be skipped, ascending."""
        removed = set(self.removed_layers)
        return [i for i in range(self.num_layers) if i not in removed]

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        param = next(iter(self.model.parameters()), None)
        return param.device if param is not None else torch.device('cpu')

    @abstractmethod
    def embed(self, inputs: Tensor) -> Tuple[Any, Any]:
        """Preprocessed images to the input state of block 0.

        Returns:
            tuple: ``(state, context)``; ``context`` (e.g. the patch grid
            size) is handed back to :meth:`readout` and :meth:`patch_tokens`.
        """

    @abstractmethod
    def attention_branch(self, index: int, x: Any) -> Tensor:
        """The attention branch of block ``index`` on state ``x`` (no residual)."""

    @abstractmethod
    def mlp_branch(self, index: int, x: Any) -> Tensor:
        """The MLP branch of block ``index`` given the MLP sublayer's input state."""

    def skipped_attention(self, x: Tensor) -> Tensor:
        """The tokens after a skipped attention sublayer: ``x`` or, compensated, ``2x``."""
        return removed_residual(x, compensate=self.skip_mode == 'compensated')

    @applies_skip_mode
    def block(self, index: int, x: Any, skip_attn: bool = False) -> Any:
        """Block ``index``; with ``skip_attn`` its attention is skipped (``skip_mode``).

        Args:
            index (int): Block index.
            x: The block's input state.
            skip_attn (bool): Skip the attention sublayer
                (:meth:`skipped_attention`). Defaults to False.

        Returns:
            The block's output state.
        """
        x = self.skipped_attention(x) if skip_attn else x + self.attention_branch(index, x)
        return x + self.mlp_branch(index, x)

    def block_parts(self, index: int, x: Any) -> BlockParts:
        """Block ``index`` (nothing skipped) split into its sublayers."""
        attn = self.attention_branch(index, x)
        mid = x + attn
        mlp = self.mlp_branch(index, mid)
        return BlockParts(x, attn, mlp, mid + mlp)

    @abstractmethod
    def readout(self, x: Any, context: Any) -> Tensor:
        """Last block's output state to the (B, D) features selected by ``features``."""

    @abstractmethod
    def patch_tokens(self, x: Any, context: Any) -> Tensor:
        """A block's output state as a (B, C, H, W) patch feature map."""

    def forward(self, inputs: Tensor, skip: Sequence[int] = ()) -> Tensor:
        """Whole network with the attention of the layers in ``skip`` skipped.

        Args:
            inputs (Tensor): Preprocessed images.
            skip (Sequence[int]): Layers whose attention is skipped. Defaults
                to none.

        Returns:
            Tensor: (B, D) features from :meth:`readout`.
        """
        skip = set(skip)
        x, context = self.embed(inputs)
        for i in range(self.num_layers):
            x = self.block(i, x, i in skip)
        return self.readout(x, context)


def register_adapter(cls: Type[LayerSkipAdapter]) -> Type[LayerSkipAdapter]:
    """Class decorator: make :func:`build_adapter` try ``cls`` (before older ones)."""
    if not (isinstance(cls, type) and issubclass(cls, LayerSkipAdapter)):
        raise TypeError(f'{cls!r} is not a LayerSkipAdapter subclass')
    if cls in _ADAPTERS:
        _ADAPTERS.remove(cls)
    _ADAPTERS.insert(0, cls)
    return cls


def build_adapter(model: torch.nn.Module, features: str = 'head_input',
                  skip_mode: str = 'identity') -> LayerSkipAdapter:
    """Wrap ``model`` (unwrapping DDP) in the first registered adapter that supports it.

    Args:
        model (nn.Module): A classifier, possibly wrapped by a model wrapper.
        features (str): Passed to the adapter. Defaults to ``'head_input'``.
        skip_mode (str): Passed to the adapter. Defaults to ``'identity'``.

    Returns:
        LayerSkipAdapter: The adapter.

    Raises:
        ValueError: If no registered adapter supports the model.
    """
    model = get_ori_model(model)
    for cls in _ADAPTERS:
        if cls.supports(model):
            return cls(model, features=features, skip_mode=skip_mode)
    backbone = type(getattr(model, 'backbone', None)).__name__
    raise ValueError(f'no selection adapter supports {type(model).__name__} with backbone '
                    f'{backbone}; supported: {", ".join(c.__name__ for c in _ADAPTERS)}')


class _ClassifierAdapter(LayerSkipAdapter):
    """Shared parts of the adapters of mmpretrain ``ImageClassifier`` models.

    Subclasses set ``self.blocks`` (the blocks in global order) and implement
    the rest; :meth:`_head_features` runs the neck and head on the backbone's
    last output.
    """

    blocks: List[torch.nn.Module]

    def __init__(self, model: torch.nn.Module, features: str = 'head_input',
                 skip_mode: str = 'identity') -> None:
        super().__init__(model, features, skip_mode)
        self.backbone = model.backbone

    @classmethod
    def _backbone_is(cls, model: torch.nn.Module, include: tuple, exclude: tuple = ()) -> bool:
        backbone = getattr(model, 'backbone', None)
        return (isinstance(backbone, include) and not isinstance(backbone, exclude)
                and hasattr(model, 'head'))

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def removed_layers(self) -> List[int]:
        return sorted(int(i) for i in (getattr(self.backbone, 'removed_layers', None) or ()))

    def _block(self, index: int, need_attn: bool = False) -> torch.nn.Module:
        if need_attn and index in self.removed_layers:
            raise ValueError(f'layer {index} has no attention (removed layers: '
                             f'{self.removed_layers})')
        return self.blocks[index]

    def _check_not_removed(self, index: int, skip_attn: bool) -> bool:
        """Whether ``index`` is removed; raises if its attention is to be skipped."""
        removed = index in self.removed_layers
        if removed and skip_attn:
            raise ValueError(f'layer {index} is removed; its attention cannot be skipped')
        return removed

    def _head_features(self, feat: Tensor) -> Tensor:
        """The backbone's last output through the neck, to the head input or logits."""
        feats = (feat, )
        if getattr(self.model, 'neck', None) is not None:
            feats = self.model.neck(feats)
        if self.features == 'logits':
            return self.model.head(feats).flatten(1)
        feat = feats[-1]
        if isinstance(feat, (list, tuple)):
            feat = feat[-1]
        return feat.flatten(1)


@register_adapter
class MMPretrainViTAdapter(_ClassifierAdapter):
    """Adapter for an mmpretrain classifier with a :class:`VisionTransformer` backbone.

    ``readout`` applies the backbone's final norm (if ``final_norm``), formats
    the output as the backbone does (``out_type``), runs the neck if any, and
    returns what the head reads (flattened to (B, D)) or, with
    ``features='logits'``, the head's logits.

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier`` (``backbone``,
            optional ``neck``, ``head``).
        features (str): ``'head_input'`` or ``'logits'``. Defaults to
            ``'head_input'``.
        skip_mode (str): ``'identity'`` or ``'compensated'``. Defaults to
            ``'identity'``.

    Raises:
        ValueError: If the backbone's last output index is not its last layer
            (the head would not read the last block).
    """

    def __init__(self, model: torch.nn.Module, features: str = 'head_input',
                 skip_mode: str = 'identity') -> None:
        super().__init__(model, features, skip_mode)
        self.blocks = list(self.backbone.layers)
        if self.backbone.out_indices[-1] != self.num_layers - 1:
            raise ValueError(f'the head must read the last layer ({self.num_layers - 1}); '
                             f'backbone out_indices are {self.backbone.out_indices}')

    @classmethod
    def supports(cls, model: torch.nn.Module) -> bool:
        from mmpretrain.models.backbones import (DeiT3, DistilledVisionTransformer,
                                                 VisionTransformer)
        return cls._backbone_is(model, (VisionTransformer, ),
                                (DistilledVisionTransformer, DeiT3))

    def _ffn_norm(self, layer: torch.nn.Module) -> torch.nn.Module:
        """The norm of the FFN input."""
        return layer.ln2

    def embed(self, inputs: Tensor) -> Tuple[Tensor, Any]:
        from mmpretrain.models.utils import resize_pos_embed
        bb = self.backbone
        x, patch_resolution = bb.patch_embed(inputs)
        if bb.cls_token is not None:
            x = torch.cat((bb.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + resize_pos_embed(bb.pos_embed, bb.patch_resolution, patch_resolution,
                                 mode=bb.interpolate_mode,
                                 num_extra_tokens=bb.num_extra_tokens)
        x = bb.pre_norm(bb.drop_after_pos(x))
        return x, patch_resolution

    def attention_branch(self, index: int, x: Tensor) -> Tensor:
        layer = self._block(index, need_attn=True)
        return layer.attn(layer.ln1(x))

    def mlp_branch(self, index: int, x: Tensor) -> Tensor:
        layer = self._block(index)
        return layer.ffn(self._ffn_norm(layer)(x), identity=torch.zeros_like(x))

    @applies_skip_mode
    def block(self, index: int, x: Tensor, skip_attn: bool = False) -> Tensor:
        layer = self._block(index)
        if self._check_not_removed(index, skip_attn):
            return layer(x)
        x = self.skipped_attention(x) if skip_attn else x + layer.attn(layer.ln1(x))
        return layer.ffn(self._ffn_norm(layer)(x), identity=x)

    def readout(self, x: Tensor, context: Any) -> Tensor:
        bb = self.backbone
        if bb.final_norm:
            x = bb.ln1(x)
        return self._head_features(bb._format_output(x, context))

    def patch_tokens(self, x: Tensor, context: Any) -> Tensor:
        patches = x[:, self.backbone.num_extra_tokens:]
        return patches.reshape(x.shape[0], *context, -1).permute(0, 3, 1, 2)


@register_adapter
class MMPretrainDeiT3Adapter(MMPretrainViTAdapter):
    """Adapter for an mmpretrain classifier with a ``DeiT3`` backbone (``NoseDeiT3`` too).

    As :class:`MMPretrainViTAdapter` (layer scale is inside ``attn`` and
    ``ffn``), except that the position embedding is added before the CLS
    token is prepended, there is no pre-norm, and the FFN input norm is the
    block's own: ``ln2`` for ``NoseDeiT3`` blocks (official DeiT-III), ``ln1``
    for mmpretrain 1.2.0's ``DeiT3TransformerEncoderLayer``.

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier``.
        features (str): ``'head_input'`` or ``'logits'``. Defaults to
            ``'head_input'``.
    """

    @classmethod
    def supports(cls, model: torch.nn.Module) -> bool:
        from mmpretrain.models.backbones import DeiT3
        return cls._backbone_is(model, (DeiT3, ))

    def _ffn_norm(self, layer: torch.nn.Module) -> torch.nn.Module:
        from mmpretrain.models.backbones.deit3 import DeiT3TransformerEncoderLayer
        # mmpretrain 1.2.0's own block normalises the FFN input with ln1
        return layer.ln1 if type(layer) is DeiT3TransformerEncoderLayer else layer.ln2

    def embed(self, inputs: Tensor) -> Tuple[Tensor, Any]:
        from mmpretrain.models.utils import resize_pos_embed
        bb = self.backbone
        x, patch_resolution = bb.patch_embed(inputs)
        x = x + resize_pos_embed(bb.pos_embed, bb.patch_resolution, patch_resolution,
                                 mode=bb.interpolate_mode, num_extra_tokens=0)
        x = bb.drop_after_pos(x)
        if bb.cls_token is not None:
            x = torch.cat((bb.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return x, patch_resolution


SwinState = Tuple[Tensor, Tuple[int, int]]


@register_adapter
class MMPretrainSwinAdapter(_ClassifierAdapter):
    """Adapter for an mmpretrain classifier with a ``SwinTransformer`` backbone.

    Layers are the Swin blocks in global stage order (``NoseSwinTransformer``
    numbering). The state is ``(tokens, hw_shape)``; block ``i`` runs on the
    stage's resolution and, if it is the last block of a stage with patch
    merging, merges its output, so every cached block input is at that block's
    resolution. ``readout`` applies the last stage's norm, shapes the map as
    the backbone does, and runs the neck (global average pooling in
    mmpretrain's Swin configs) and, with ``features='logits'``, the head.

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier``.
        features (str): ``'head_input'`` or ``'logits'``. Defaults to
            ``'head_input'``.

    Raises:
        ValueError: If the backbone outputs anything but its last stage (the
            head input would not be the last stage's features alone).
    """

    def __init__(self, model: torch.nn.Module, features: str = 'head_input',
                 skip_mode: str = 'identity') -> None:
        super().__init__(model, features, skip_mode)
        bb = self.backbone
        last = len(bb.stages) - 1
        if list(bb.out_indices) != [last]:
            raise ValueError(f'the head must read only the last stage ({last}); backbone '
                             f'out_indices are {list(bb.out_indices)}')
        self.blocks, self._merge_after = [], {}
        for stage in bb.stages:
            self.blocks.extend(stage.blocks)
            if stage.downsample is not None:
                self._merge_after[len(self.blocks) - 1] = stage.downsample

    @classmethod
    def supports(cls, model: torch.nn.Module) -> bool:
        from mmpretrain.models.backbones import SwinTransformer
        return cls._backbone_is(model, (SwinTransformer, ))

    def embed(self, inputs: Tensor) -> Tuple[SwinState, Any]:
        from mmpretrain.models.utils import resize_pos_embed
        bb = self.backbone
        x, hw_shape = bb.patch_embed(inputs)
        if bb.use_abs_pos_embed:
            x = x + resize_pos_embed(bb.absolute_pos_embed, bb.patch_resolution, hw_shape,
                                     bb.interpolate_mode, bb.num_extra_tokens)
        return (bb.drop_after_pos(x), hw_shape), hw_shape

    def _leave(self, index: int, x: Tensor, hw_shape) -> SwinState:
        """Block ``index``'s output, patch-merged if it ends a stage that merges."""
        merge = self._merge_after.get(index)
        return merge(x, hw_shape) if merge is not None else (x, hw_shape)

    def attention_branch(self, index: int, x: SwinState) -> Tensor:
        block = self._block(index, need_attn=True)
        tokens, hw_shape = x
        return block.attn(block.norm1(tokens), hw_shape)

    def mlp_branch(self, index: int, x: SwinState) -> Tensor:
        block = self._block(index)
        tokens = x[0]
        return block.ffn(block.norm2(tokens), identity=torch.zeros_like(tokens))

    @applies_skip_mode
    def block(self, index: int, x: SwinState, skip_attn: bool = False) -> SwinState:
        block = self._block(index)
        tokens, hw_shape = x
        if self._check_not_removed(index, skip_attn):
            return self._leave(index, block(tokens, hw_shape), hw_shape)
        tokens = (self.skipped_attention(tokens) if skip_attn
                  else tokens + block.attn(block.norm1(tokens), hw_shape))
        return self._leave(index, block.ffn(block.norm2(tokens), identity=tokens), hw_shape)

    def block_parts(self, index: int, x: SwinState) -> BlockParts:
        tokens, hw_shape = x
        attn = self.attention_branch(index, x)
        mid = tokens + attn
        mlp = self.mlp_branch(index, (mid, hw_shape))
        return BlockParts(tokens, attn, mlp, self._leave(index, mid + mlp, hw_shape))

    def readout(self, x: SwinState, context: Any) -> Tensor:
        bb = self.backbone
        last = len(bb.stages) - 1
        tokens, hw_shape = x
        return self._head_features(self.patch_tokens((getattr(bb, f'norm{last}')(tokens),
                                                      hw_shape), context).contiguous())

    def patch_tokens(self, x: SwinState, context: Any) -> Tensor:
        tokens, hw_shape = x
        return tokens.view(tokens.shape[0], *hw_shape, tokens.shape[-1]).permute(0, 3, 1, 2)
