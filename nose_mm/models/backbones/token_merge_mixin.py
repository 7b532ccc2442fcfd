"""The ``token_merge`` option: ToMe in the layers that keep attention of ViT-style backbones."""
from typing import Dict, List, Mapping, Optional

from ..token_merge import (TokenMergeSettings, merge_schedule, merged_token_counts,
                           parse_token_merge)

__all__ = ['TokenMergeMixin']


class TokenMergeMixin:
    """Token merging for backbones with NOSE encoder layers (docs/design.md)."""

    _token_merge: Optional[TokenMergeSettings] = None

    def _init_token_merge(self, token_merge: Optional[Mapping]) -> None:
        """Validate ``token_merge`` against the built model and store it.

        Raises:
            ValueError: Bad settings, ``out_type`` not ``'cls_token'``, or ``v_shortcut``.
        """
        settings = parse_token_merge(token_merge)
        if settings is not None:
            if self.out_type != 'cls_token':
                raise ValueError(
                    f"token_merge needs out_type='cls_token', got out_type={self.out_type!r}: "
                    f'merged tokens no longer form a feature map, and dense prediction would '
                    f'need unmerging, which nose_mm does not implement')
            layers = self._attention_layer_indices()
            for i in layers:
                if getattr(self.layers[i].attn, 'v_shortcut', False):
                    raise ValueError(f'token_merge does not support v_shortcut attention '
                                     f'(layer {i})')
            merge_schedule(settings, len(layers))
        self._token_merge = settings

    @property
    def token_merge(self) -> Optional[TokenMergeSettings]:
        """TokenMergeSettings | None: The validated option (None: no merging)."""
        return self._token_merge

    def _attention_layer_indices(self) -> List[int]:
        """Layers that compute attention now (not removed, ``lam != 0``)."""
        return [
            i for i, layer in enumerate(self.layers)
            if not layer.removed and layer.dilution_lam != 0
        ]

    def token_merge_schedule(self) -> Dict[int, int]:
        """``{layer index: r}`` for the layers that keep attention (empty without merging).

        Raises:
            ValueError: The option no longer fits the attention layers (more at lam 0).
        """
        if self._token_merge is None:
            return {}
        layers = self._attention_layer_indices()
        return dict(zip(layers, merge_schedule(self._token_merge, len(layers))))

    def token_merge_counts(self, num_tokens: Optional[int] = None) -> Dict[int, int]:
        """Tokens entering the MLP of each attention layer, merging applied.

        Args:
            num_tokens (int, optional): Tokens into layer 0 (None: patches + CLS). Defaults to None.

        Returns:
            dict: ``{layer index: tokens}`` (empty without merging).
        """
        schedule = self.token_merge_schedule()
        if num_tokens is None:
            num_tokens = self.patch_resolution[0] * self.patch_resolution[1] + 1
        return dict(zip(schedule, merged_token_counts(num_tokens, list(schedule.values()))))
