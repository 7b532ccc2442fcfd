"""Selection on a segmentation model: an mmseg ``EncoderDecoder`` as ``embed -> blocks -> head``.

The task-level criteria of docs/design.md ("nose_mm/selection/segmentor.py"): the transfer
entropy of the decode head's per-pixel output (``'seg_logits'``) or of the backbone's
``out_indices`` features (``'dense'``, no trained head needed), with pixels / patch tokens as
samples. The backbone runs block by block through its family, as for classifiers.
"""
from typing import Any, List, NamedTuple, Tuple

import torch
from torch import Tensor

from nose_mm.models.family import BackboneFamily, families, family_of_module

from .adapters import BlockParts, FamilyAdapter, applies_skip_mode
from .greedy import check_choice

__all__ = ['SEGMENTOR_FEATURES', 'DenseState', 'SegmentorAdapter', 'build_segmentor_adapter',
           'init_checkpoint', 'pixels_as_samples']

#: What a segmentor adapter reads out: the decode head's per-pixel output (classes as
#: dimensions) or the backbone's ``out_indices`` features (channels as dimensions).
SEGMENTOR_FEATURES = ('seg_logits', 'dense')


class DenseState(NamedTuple):
    """What flows between blocks: the family's ``state``, the backbone ``outputs`` taken so far
    (after the blocks before, in order) and the embedding's ``context``."""
    state: Any
    outputs: Tuple[Tensor, ...]
    context: Any


def pixels_as_samples(feature: Tensor) -> Tensor:
    """A (B, C, H, W) map (or (B, N, C) tokens, (B, C) vectors) as (samples, C) rows."""
    if feature.dim() == 4:
        return feature.permute(0, 2, 3, 1).reshape(-1, feature.shape[1])
    if feature.dim() == 3:
        return feature.reshape(-1, feature.shape[-1])
    if feature.dim() == 2:
        return feature
    raise ValueError(f'cannot read a feature of shape {tuple(feature.shape)} as samples x dims')


def init_checkpoint(cfg: Any, features: str) -> str:
    """The checkpoint a selection without one measures: the backbone's ``init_cfg`` one.

    Only the ``'dense'`` criterion reads nothing but the backbone, so only it can run on the
    model as its config initialises it (e.g. a segmentation config whose backbone starts from
    an ImageNet classifier: selection on the pre-trained backbone, no trained head).

    Args:
        cfg (mmengine.Config): The config.
        features (str): The selection's features.

    Returns:
        str: ``cfg.model.backbone.init_cfg.checkpoint`` (an existing file).

    Raises:
        ValueError: Other features, or no ``Pretrained`` backbone checkpoint.
        FileNotFoundError: The init checkpoint does not exist.
    """
    import os.path as osp
    if features != 'dense':
        raise ValueError(f'features {features!r} read trained weights: give the checkpoint '
                         f'(only features \'dense\' can measure the backbone as the config '
                         f'initialises it, from model.backbone.init_cfg)')
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    init = backbone.get('init_cfg') or {}
    if isinstance(init, (list, tuple)):
        init = next((c for c in init if c.get('type') == 'Pretrained'), {})
    path = init.get('checkpoint') if init.get('type') == 'Pretrained' else None
    if not path:
        raise ValueError(f'no checkpoint given and the backbone has no pre-trained init '
                         f'(model.backbone.init_cfg={dict(init) or None}): give a checkpoint or '
                         f'set init_cfg=dict(type=\'Pretrained\', checkpoint=...)')
    if not osp.isfile(path):
        raise FileNotFoundError(f'the backbone\'s init checkpoint {path!r} '
                                f'(model.backbone.init_cfg.checkpoint) does not exist')
    return path


def build_segmentor_adapter(model: torch.nn.Module, features: str = 'seg_logits',
                            skip_mode: str = 'identity') -> 'SegmentorAdapter':
    """Wrap an mmseg ``EncoderDecoder`` in the :class:`SegmentorAdapter` of its backbone's family.

    Args:
        model (nn.Module): An mmseg ``EncoderDecoder`` (not wrapped).
        features (str): One of :data:`SEGMENTOR_FEATURES`.
        skip_mode (str): ``'identity'`` or ``'compensated'``. Defaults to ``'identity'``.

    Raises:
        ValueError: Classifier features, a segmentor that is not an ``EncoderDecoder`` with one
            decode head, or a backbone of no registered family.
    """
    from mmseg.models.segmentors import CascadeEncoderDecoder, EncoderDecoder
    if features not in SEGMENTOR_FEATURES:
        raise ValueError(f'a segmentation model ({type(model).__name__}) selects on features '
                         f'{" or ".join(map(repr, SEGMENTOR_FEATURES))} (the decode head\'s '
                         f'per-pixel output, or the backbone\'s out_indices features), got '
                         f'{features!r}')
    if not isinstance(model, EncoderDecoder) or isinstance(model, CascadeEncoderDecoder):
        raise ValueError(f'no selection adapter supports the segmentor {type(model).__name__}: '
                         f'selection needs an mmseg EncoderDecoder (backbone, optional neck, '
                         f'one decode head)')
    family = family_of_module(model.backbone)
    if family is None:
        raise ValueError(f'no selection adapter supports a segmentor with backbone '
                         f'{type(model.backbone).__name__}: its backbone must belong to a '
                         f'registered family (' +
                         ', '.join(', '.join(f.type_names()) for f in families()) + ')')
    return SegmentorAdapter(model, family, features=features, skip_mode=skip_mode)


class SegmentorAdapter(FamilyAdapter):
    """An ``EncoderDecoder`` as embed, ``L`` blocks and a dense readout, run through its family.

    The state between blocks is a :class:`DenseState`: the family's state plus the backbone
    outputs taken so far (``family.output`` after each of ``family.output_blocks``), so the
    evaluators' prefix cache works unchanged: block ``i``'s cached input carries the outputs
    of blocks ``< i``, which skipping a layer ``>= i`` does not change.

    Args:
        model (nn.Module): An mmseg ``EncoderDecoder``.
        family (BackboneFamily): The backbone's family.
        features (str): ``'seg_logits'``: the decode head's (B, K, h, w) output, each pixel a
            sample of a K-dim feature; ``'dense'``: each backbone output's (B, C, h, w) map,
            each patch a sample, the entropies of the outputs summed (with outputs of one
            resolution, the entropy of their concatenation). Defaults to ``'seg_logits'``.
        skip_mode (str): ``'identity'`` (x) or ``'compensated'`` (2x). Defaults to ``'identity'``.

    Raises:
        ValueError: Bad arguments, or the backbone's outputs do not include its last block.
    """

    def __init__(self, model: torch.nn.Module, family: BackboneFamily,
                 features: str = 'seg_logits', skip_mode: str = 'identity') -> None:
        check_choice('features', features, SEGMENTOR_FEATURES)
        super().__init__(model, family, features='head_input', skip_mode=skip_mode)
        self.features = features
        self._family_exits, self._exits = self._exits, {}  # applied after the outputs

    def _check_readout(self) -> None:
        try:
            self.output_blocks = list(self.family.output_blocks(self.backbone))
        except NotImplementedError as exc:  # a family without dense outputs: the user's error
            raise ValueError(f'{exc}: selection on a segmentor needs them') from exc
        last = len(self.blocks) - 1
        if not self.output_blocks or self.output_blocks[-1] != last:
            raise ValueError(f'the backbone\'s outputs must include its last layer ({last}); '
                             f'they are taken after layers {self.output_blocks}')
        self._outputs = frozenset(self.output_blocks)

    def embed(self, inputs: Tensor) -> Tuple[DenseState, Any]:
        state, context = self.family.embed(self.backbone, inputs)
        return DenseState(state, (), context), context

    def _advance(self, index: int, out: Any, x: DenseState) -> DenseState:
        """Block ``index``'s output (before the family's exit step) as the next input."""
        outputs = x.outputs
        if index in self._outputs:
            outputs = outputs + (self.family.output(self.backbone, index, out, x.context), )
        step = self._family_exits.get(index)
        return DenseState(out if step is None else step(out), outputs, x.context)

    def block_parts(self, index: int, x: DenseState, skip_attn: bool = False) -> BlockParts:
        parts = super().block_parts(index, x.state, skip_attn)
        return parts._replace(output=self._advance(index, parts.output, x))

    @applies_skip_mode
    def block(self, index: int, x: DenseState, skip_attn: bool = False) -> DenseState:
        if index not in self._removed:
            return self.block_parts(index, x, skip_attn).output
        if skip_attn:
            raise ValueError(f'layer {index} is removed; its attention cannot be skipped')
        return self._advance(index, self.family.run_block(self.blocks[index], x.state), x)

    def backbone_outputs(self, x: DenseState) -> List[Tensor]:
        """The backbone's outputs (what its forward returns) from the last block's state."""
        if len(x.outputs) != len(self.output_blocks):
            raise ValueError(f'the state holds {len(x.outputs)} of the backbone\'s '
                             f'{len(self.output_blocks)} outputs: run every block first')
        return list(x.outputs)

    def readout(self, x: DenseState, context: Any) -> Any:
        """``'seg_logits'``: (pixels, K); ``'dense'``: one (patches, C) tensor per output."""
        outputs = self.backbone_outputs(x)
        if self.features == 'dense':
            return tuple(pixels_as_samples(out) for out in outputs)
        feats = self.model.neck(outputs) if self.model.with_neck else outputs
        return pixels_as_samples(self.model.decode_head(feats))

    def patch_tokens(self, x: DenseState, context: Any) -> Tensor:
        return self.family.patch_map(self.backbone, x.state, context)
