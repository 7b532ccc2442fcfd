"""What every NOSE backbone shares: blocks made dilutable in place, the Dilutable backbone."""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ...checkpoint.fit import CheckpointFitError
from ..dilution import DilutableMixin, dilute_residual
from ..layouts import BlockLayout

__all__ = ['DilutableBlockMixin', 'NoseBackboneMixin']


class DilutableBlockMixin:
    """A pre-norm block whose attention branch can be diluted or removed.

    Subclasses set ``parent`` and ``attention_parts``; :meth:`forward` is the ViT block's
    (``ln1``, ``attn``, ``ln2``, ``ffn``), others call :meth:`attention_residual` in their own.
    """

    parent: type = nn.Module
    attention_parts: Tuple[str, str] = ('ln1', 'attn')
    dilution_lam: float = 1.0
    compensate: bool = True
    removed: bool = False

    @classmethod
    def convert(cls, block: nn.Module, removed: bool = False, compensate: bool = True):
        """Convert a block built by mmpretrain in place (only its class changes).

        Args:
            block (nn.Module): An instance of exactly ``cls.parent``.
            removed (bool): Delete the pre-norm and the attention. Defaults to False.
            compensate (bool): Compensated residual. Defaults to True.

        Returns:
            The same object, converted.

        Raises:
            TypeError: If ``block`` is not a ``cls.parent``.
        """
        if type(block) is not cls.parent:
            raise TypeError(f'expected an mmpretrain {cls.parent.__name__}, got '
                            f'{type(block).__name__}')
        block.__class__ = cls
        block.dilution_lam = 1.0
        block.compensate = compensate
        block.removed = removed
        if removed:
            for name in cls.attention_parts:
                delattr(block, name)
        return block

    def attention_residual(self, x: torch.Tensor,
                           branch: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``x`` plus the diluted ``branch(x)``; ``branch`` is not called at ``lam = 0``."""
        lam = 0.0 if self.removed else self.dilution_lam
        return dilute_residual(x, None if lam == 0 else branch(x), lam, self.compensate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-norm block forward with the attention branch diluted."""
        x = self.attention_residual(x, lambda y: self.attn(self.ln1(y)))
        return self.ffn(self.ln2(x), identity=x)

    def extra_repr(self) -> str:
        if self.removed:
            return f'removed=True, compensate={self.compensate}'
        return f'dilution_lam={self.dilution_lam}, compensate={self.compensate}'


class NoseBackboneMixin(DilutableMixin):
    """:class:`~nose_mm.models.dilution.Dilutable` backbone over dilutable blocks.

    Goes before the mmpretrain backbone in the bases (docs/design.md).

    Args:
        *args: Positional arguments of the mmpretrain backbone.
        diluted_layers (Sequence[int], optional): Layers scaled by ``lam``. Defaults to None.
        removed_layers (Sequence[int], optional): Pruned layers. Defaults to None.
        compensate (bool): Compensated residuals. Defaults to True.
        init_lam (float): Initial ``lam`` of the diluted layers. Defaults to 1.0.
        **kwargs: Keyword arguments of the mmpretrain backbone.
    """

    block_layout: BlockLayout
    block_class: type

    def __init__(self,
                 *args,
                 diluted_layers: Optional[Sequence[int]] = None,
                 removed_layers: Optional[Sequence[int]] = None,
                 compensate: bool = True,
                 init_lam: float = 1.0,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        blocks = self.dilutable_blocks()
        self._init_dilution(len(blocks), diluted_layers, removed_layers, compensate, init_lam)
        for i, block in enumerate(blocks):
            self.block_class.convert(block, removed=i in self._removed_layers,
                                     compensate=compensate)
        self._apply_dilution()

    def dilutable_blocks(self) -> List[nn.Module]:
        """The blocks in global layer order (``self.layers`` for plain ViTs)."""
        return list(self.layers)

    def block_depths(self) -> Tuple[int, ...]:
        """Blocks per stage (one stage for plain ViTs)."""
        return (len(self.layers), )

    def train(self, mode: bool = True):
        """Same as the parent, but returns ``self`` as ``nn.Module.train`` should."""
        super().train(mode)
        return self

    def _apply_dilution(self) -> None:
        diluted = set(self._diluted_layers)
        for i, block in enumerate(self.dilutable_blocks()):
            block.compensate = self._dilution_compensate
            block.dilution_lam = self._dilution_lam if i in diluted else 1.0

    def _upgrade_legacy_keys(self, state_dict, prefix: str, local_metadata: dict) -> None:
        """Rename / drop, in place, the keys of older versions of the parent's checkpoints.

        The parent's own upgrade, for parents that gate it on their exact class (they check
        ``self.__class__ is Parent``, so a subclass never runs it); runs before the
        attention-layer check and the parent's load. No-op by default.
        """

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # First the parent's legacy-key upgrade, so every checkpoint the parent class loads
        # loads here too; then raise if the checkpoint's pruned layers differ from the
        # model's; blocks beyond the model's depths are left to the missing/unexpected keys.
        self._upgrade_legacy_keys(state_dict, prefix, local_metadata)
        layout = self.block_layout
        blocks = layout.block_keys(state_dict.keys(), prefix, self.block_depths()).values()
        with_attn = {b.layer for b in blocks if b.part in layout.attention_parts}
        ckpt_removed = {b.layer for b in blocks} - with_attn
        model_removed = set(self._removed_layers)
        has_but_removed = sorted(with_attn & model_removed)
        pruned_but_kept = sorted(ckpt_removed - model_removed)
        if has_but_removed or pruned_but_kept:
            parts = '/'.join(layout.attention_parts)
            problems = []
            if pruned_but_kept:
                problems.append(f'layers {pruned_but_kept} have no attention ({parts}) weights '
                                f'in the checkpoint but keep attention in the model')
            if has_but_removed:
                problems.append(f'layers {has_but_removed} have attention weights in the '
                                f'checkpoint but are removed in the model')
            raise CheckpointFitError(
                f'{type(self).__name__} ({prefix or "<root>"}): the checkpoint\'s attention '
                f'layers differ from the model\'s: ' + '; '.join(problems) + '. The checkpoint '
                f'looks pruned at layers {sorted(ckpt_removed)} (of those it holds), the model '
                f'has removed_layers={sorted(model_removed)}. Set removed_layers in the backbone '
                f'config to match the checkpoint (see its meta["removed_layers"]).')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
