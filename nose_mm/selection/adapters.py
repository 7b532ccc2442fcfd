"""Model adapters: a classifier seen as ``embed -> block 0 .. L-1 -> readout``.

Selection, its baselines and the analysis tools only talk to a
:class:`LayerSkipAdapter`; supporting another backbone family (Swin, DeiT-III
with its own block layout...) means writing another adapter and registering
it with :func:`register_adapter`. :func:`build_adapter` picks the first
registered adapter whose :meth:`~LayerSkipAdapter.supports` accepts the model.

:class:`MMPretrainViTAdapter` covers an mmpretrain ``ImageClassifier`` whose
backbone is mmpretrain's :class:`~mmpretrain.models.VisionTransformer` (ViT,
DeiT without distillation token) or a subclass that keeps its block layout
(``layers[i]`` with ``ln1``, ``attn``, ``ln2``, ``ffn``), e.g. nose_mm's
``NoseVisionTransformer``. Its blocks are computed explicitly as the plain
pre-norm block

    x = x + attn(ln1(x))       # skipped: x = x (identity) or x = 2x (compensated)
    x = ffn(ln2(x), identity=x)

whatever dilution state the backbone carries: selection measures the
pre-trained model. What a skipped attention leaves is the adapter's
``skip_mode`` (:data:`SKIP_MODES`): ``'identity'`` (x stays x, METHOD.md's
definition, the default) or ``'compensated'`` (x becomes 2x, the reference
code's shrink model, i.e. the block diluted at lam = 0 with compensation);
adapters that override :meth:`~LayerSkipAdapter.block` call
:meth:`~LayerSkipAdapter.skipped_attention` for it and mark the override with
:func:`applies_skip_mode` (an unmarked override refuses ``'compensated'``
rather than silently computing ``'identity'``). Layers listed in the
backbone's ``removed_layers`` (if it has that attribute) have no attention;
they run through the layer's own ``forward`` and are not candidates.
"""
from abc import ABCMeta, abstractmethod
from typing import Any, Callable, List, Sequence, Tuple, Type

import torch
from mmpretrain.utils import get_ori_model
from torch import Tensor

from nose_mm.models.dilution import removed_residual

__all__ = ['FEATURES', 'SKIP_MODES', 'applies_skip_mode', 'LayerSkipAdapter',
           'MMPretrainViTAdapter', 'register_adapter', 'build_adapter']

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


class LayerSkipAdapter(metaclass=ABCMeta):
    """Interface: a network as embed, ``L`` residual blocks and a readout.

    Subclasses implement :meth:`supports`, :attr:`num_layers`, :meth:`embed`,
    :meth:`attention_branch`, :meth:`mlp_branch`, :meth:`readout` and
    :meth:`patch_tokens`; they may override :meth:`block` for speed. All
    methods run under the caller's ``torch.no_grad()``.

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
    def embed(self, inputs: Tensor) -> Tuple[Tensor, Any]:
        """Preprocessed images to the input of block 0.

        Returns:
            tuple: ``(tokens, context)``; ``context`` (e.g. the patch grid
            size) is handed back to :meth:`readout` and :meth:`patch_tokens`.
        """

    @abstractmethod
    def attention_branch(self, index: int, x: Tensor) -> Tensor:
        """The attention branch of block ``index`` (no residual): what the block adds."""

    @abstractmethod
    def mlp_branch(self, index: int, x: Tensor) -> Tensor:
        """The MLP branch of block ``index`` given the MLP sublayer's input (no residual)."""

    def skipped_attention(self, x: Tensor) -> Tensor:
        """The tokens after a skipped attention sublayer: ``x`` or, compensated, ``2x``."""
        return removed_residual(x, compensate=self.skip_mode == 'compensated')

    @applies_skip_mode
    def block(self, index: int, x: Tensor, skip_attn: bool = False) -> Tensor:
        """Block ``index``; with ``skip_attn`` its attention is skipped (``skip_mode``).

        Args:
            index (int): Block index.
            x (Tensor): The block's input tokens.
            skip_attn (bool): Skip the attention sublayer
                (:meth:`skipped_attention`). Defaults to False.

        Returns:
            Tensor: The block's output tokens.
        """
        x = self.skipped_attention(x) if skip_attn else x + self.attention_branch(index, x)
        return x + self.mlp_branch(index, x)

    @abstractmethod
    def readout(self, x: Tensor, context: Any) -> Tensor:
        """Last block's output to the (B, D) features selected by ``features``."""

    @abstractmethod
    def patch_tokens(self, x: Tensor, context: Any) -> Tensor:
        """A block's output tokens as a (B, C, H, W) patch feature map."""

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


@register_adapter
class MMPretrainViTAdapter(LayerSkipAdapter):
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
        self.backbone = model.backbone
        if self.backbone.out_indices[-1] != self.num_layers - 1:
            raise ValueError(f'the head must read the last layer ({self.num_layers - 1}); '
                             f'backbone out_indices are {self.backbone.out_indices}')

    @classmethod
    def supports(cls, model: torch.nn.Module) -> bool:
        from mmpretrain.models.backbones import DistilledVisionTransformer, VisionTransformer
        backbone = getattr(model, 'backbone', None)
        return (isinstance(backbone, VisionTransformer)
                and not isinstance(backbone, DistilledVisionTransformer)
                and hasattr(model, 'head'))

    @property
    def num_layers(self) -> int:
        return len(self.backbone.layers)

    @property
    def removed_layers(self) -> List[int]:
        return sorted(int(i) for i in (getattr(self.backbone, 'removed_layers', None) or ()))

    def _layer(self, index: int, need_attn: bool = False) -> torch.nn.Module:
        if need_attn and index in self.removed_layers:
            raise ValueError(f'layer {index} has no attention (removed layers: '
                             f'{self.removed_layers})')
        return self.backbone.layers[index]

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
        layer = self._layer(index, need_attn=True)
        return layer.attn(layer.ln1(x))

    def mlp_branch(self, index: int, x: Tensor) -> Tensor:
        layer = self._layer(index)
        return layer.ffn(layer.ln2(x), identity=torch.zeros_like(x))

    @applies_skip_mode
    def block(self, index: int, x: Tensor, skip_attn: bool = False) -> Tensor:
        if index in self.removed_layers:
            if skip_attn:
                raise ValueError(f'layer {index} is removed; its attention cannot be skipped')
            return self.backbone.layers[index](x)
        layer = self._layer(index)
        x = self.skipped_attention(x) if skip_attn else x + layer.attn(layer.ln1(x))
        return layer.ffn(layer.ln2(x), identity=x)

    def readout(self, x: Tensor, context: Any) -> Tensor:
        bb = self.backbone
        if bb.final_norm:
            x = bb.ln1(x)
        feats = (bb._format_output(x, context), )
        if getattr(self.model, 'neck', None) is not None:
            feats = self.model.neck(feats)
        if self.features == 'logits':
            return self.model.head(feats).flatten(1)
        feat = feats[-1]
        if isinstance(feat, (list, tuple)):
            feat = feat[-1]
        return feat.flatten(1)

    def patch_tokens(self, x: Tensor, context: Any) -> Tensor:
        patches = x[:, self.backbone.num_extra_tokens:]
        return patches.reshape(x.shape[0], *context, -1).permute(0, 3, 1, 2)
