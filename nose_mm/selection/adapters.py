"""Model adapters: a classifier as ``embed -> blocks -> readout`` (docs/design.md)."""
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmpretrain.utils import get_ori_model
from torch import Tensor

from nose_mm.models.dilution import removed_residual
from nose_mm.models.family import BackboneFamily, families, family_of_module

from .greedy import check_choice

__all__ = ['FEATURES', 'SKIP_MODES', 'applies_skip_mode', 'FamilyAdapter',
           'build_adapter']

#: Which features an adapter reads out: what the head reads, or the logits.
FEATURES = ('head_input', 'logits')
#: What a skipped attention sublayer leaves: ``x`` (identity) or ``2x`` (compensated).
SKIP_MODES = ('identity', 'compensated')


def applies_skip_mode(block: Callable) -> Callable:
    """Mark a ``block`` override that skips through ``skipped_attention``."""
    block.applies_skip_mode = True
    return block


class BlockParts(NamedTuple):
    """One block's attention input ``tokens``, its ``attn`` and ``mlp`` branches and ``output``."""
    tokens: Tensor
    attn: Optional[Tensor]
    mlp: Tensor
    output: Any


def build_adapter(model: torch.nn.Module, features: str = 'head_input',
                  skip_mode: str = 'identity') -> 'FamilyAdapter':
    """Wrap a classifier or segmentor (unwrapping DDP) in the adapter of its backbone's family.

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier`` or an mmseg ``EncoderDecoder``
            (:func:`~nose_mm.selection.segmentor.build_segmentor_adapter`), possibly wrapped.
        features (str): Passed to the adapter. Defaults to ``'head_input'``.
        skip_mode (str): Passed to the adapter. Defaults to ``'identity'``.

    Returns:
        FamilyAdapter: The adapter.

    Raises:
        ValueError: Not a classifier whose backbone belongs to a registered family.
    """
    model = get_ori_model(model)
    if hasattr(model, 'decode_head'):  # an mmseg segmentor: the dense adapter
        from .segmentor import build_segmentor_adapter
        return build_segmentor_adapter(model, features=features, skip_mode=skip_mode)
    backbone = getattr(model, 'backbone', None)
    family = family_of_module(backbone) if backbone is not None else None
    if family is None or not hasattr(model, 'head'):
        raise ValueError(f'no selection adapter supports {type(model).__name__} with backbone '
                         f'{type(backbone).__name__}: selection needs a classifier (backbone '
                         f'and head) or a segmentor (backbone and decode_head) whose backbone '
                         f'belongs to a registered family (' +
                         ', '.join(', '.join(f.type_names()) for f in families()) + ')')
    from .segmentor import SEGMENTOR_FEATURES
    if features in SEGMENTOR_FEATURES:
        raise ValueError(f'features {features!r} are a segmentation model\'s (EncoderDecoder); '
                         f'a classifier selects on features {" or ".join(map(repr, FEATURES))}')
    return FamilyAdapter(model, family, features=features, skip_mode=skip_mode)


class FamilyAdapter:
    """A classifier as embed, ``L`` residual blocks and a readout, run through its family.

    The one adapter (a new backbone registers a family, not an adapter): the backbone's family
    (:class:`~nose_mm.models.family.BackboneFamily`) declares the embedding, the blocks and
    their branches, the step between blocks and the readout.

    Args:
        model (nn.Module): An mmpretrain ``ImageClassifier``.
        family (BackboneFamily): The backbone's family.
        features (str): ``'head_input'`` or ``'logits'``. Defaults to ``'head_input'``.
        skip_mode (str): ``'identity'`` (x) or ``'compensated'`` (2x). Defaults to ``'identity'``.

    Raises:
        ValueError: Bad arguments, the head does not read the last block alone, or
            ``'compensated'`` with an unmarked :meth:`block` override.
    """

    def __init__(self, model: torch.nn.Module, family: BackboneFamily,
                 features: str = 'head_input', skip_mode: str = 'identity') -> None:
        check_choice('features', features, FEATURES)
        check_choice('skip_mode', skip_mode, SKIP_MODES)
        if skip_mode != 'identity' and not getattr(type(self).block, 'applies_skip_mode', False):
            raise ValueError(f'{type(self).__name__}.block does not apply skip_mode '
                             f'{skip_mode!r}: it must skip through skipped_attention() and be '
                             f'marked with @applies_skip_mode')
        self.model = model
        self.features = features
        self.skip_mode = skip_mode
        self.family = family
        self.backbone = model.backbone
        self.blocks = family.blocks(self.backbone)
        self._check_readout()
        #: Blocks without attention (pruned, fixed when the model is built); never candidates.
        self.removed_layers = sorted(
            int(i) for i in (getattr(self.backbone, 'removed_layers', None) or ()))
        self._removed = frozenset(self.removed_layers)
        self._exits = family.exits(self.backbone)  # computed once, used after every block

    def _check_readout(self) -> None:
        """Raise ValueError unless the head reads the last block alone (the family's check)."""
        self.family.check_readout(self.backbone, len(self.blocks))

    @property
    def num_layers(self) -> int:
        """Number of blocks ``L``."""
        return len(self.blocks)

    @property
    def candidate_layers(self) -> List[int]:
        """Blocks whose attention can be skipped, ascending."""
        return [i for i in range(self.num_layers) if i not in self._removed]

    def embed(self, inputs: Tensor) -> Tuple[Any, Any]:
        """Preprocessed images to ``(state, context)`` (context: e.g. the patch grid)."""
        return self.family.embed(self.backbone, inputs)

    def attention_branch(self, index: int, x: Any) -> Tensor:
        """The attention branch of block ``index`` on state ``x`` (no residual)."""
        if index in self._removed:
            raise ValueError(f'layer {index} has no attention (removed layers: '
                             f'{self.removed_layers})')
        return self.family.attention_branch(self.blocks[index], x)

    def mlp_branch(self, index: int, x: Any) -> Tensor:
        """The MLP branch of block ``index`` given the MLP sublayer's input state."""
        return self.family.mlp_branch(self.blocks[index], x)

    def skipped_attention(self, x: Tensor) -> Tensor:
        """The tokens after a skipped attention sublayer: ``x`` or, compensated, ``2x``."""
        return removed_residual(x, compensate=self.skip_mode == 'compensated')

    @applies_skip_mode
    def block(self, index: int, x: Any, skip_attn: bool = False) -> Any:
        """Block ``index``; with ``skip_attn`` its attention is skipped (``skip_mode``).

        Args:
            index (int): Block index.
            x: The block's input state.
            skip_attn (bool): Skip the attention sublayer. Defaults to False.

        Returns:
            The block's output state.
        """
        if index not in self._removed:
            return self.block_parts(index, x, skip_attn).output
        if skip_attn:
            raise ValueError(f'layer {index} is removed; its attention cannot be skipped')
        return self._leave(index, self.family.run_block(self.blocks[index], x))

    def _leave(self, index: int, state: Any) -> Any:
        """Block ``index``'s output state as the next block's input (the family's exits)."""
        step = self._exits.get(index)
        return state if step is None else step(state)

    def block_parts(self, index: int, x: Any, skip_attn: bool = False) -> BlockParts:
        """Block ``index`` split into its sublayers (``attn`` None if ``skip_attn``)."""
        family = self.family
        tokens = family.tokens(x)
        attn = None if skip_attn else self.attention_branch(index, x)
        mid = self.skipped_attention(tokens) if skip_attn else tokens + attn
        mlp = self.mlp_branch(index, family.with_tokens(x, mid))
        return BlockParts(tokens, attn, mlp, self._leave(index, family.with_tokens(x, mid + mlp)))

    def readout(self, x: Any, context: Any) -> Tensor:
        """Last block's output state to the (B, D) features selected by ``features``."""
        feats = (self.family.readout(self.backbone, x, context), )
        if getattr(self.model, 'neck', None) is not None:
            feats = self.model.neck(feats)
        if self.features == 'logits':
            return self.model.head(feats).flatten(1)
        feat = feats[-1]
        if isinstance(feat, (list, tuple)):
            feat = feat[-1]
        return feat.flatten(1)

    def patch_tokens(self, x: Any, context: Any) -> Tensor:
        """A block's output state as a (B, C, H, W) patch feature map."""
        return self.family.patch_map(self.backbone, x, context)

    def forward(self, inputs: Tensor, skip: Sequence[int] = ()) -> Tensor:
        """Whole network with the attention of the layers in ``skip`` skipped.

        Args:
            inputs (Tensor): Preprocessed images.
            skip (Sequence[int]): Layers whose attention is skipped. Defaults to none.

        Returns:
            Tensor: (B, D) features from :meth:`readout`.
        """
        skip = set(skip)
        x, context = self.embed(inputs)
        for i in range(self.num_layers):
            x = self.block(i, x, i in skip)
        return self.readout(x, context)

