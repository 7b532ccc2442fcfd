"""The ``token_merge`` option: ToMe in the layers that keep attention of ViT-style backbones."""
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from ..dilution import dilute_residual
from ..token_merge import (TokenMergeSettings, TokenMergeState, attention_with_keys,
                           merge_schedule, merged_token_counts, parse_token_merge)

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
            for i in self._attention_layer_indices():
                if getattr(self.layers[i].attn, 'v_shortcut', False):
                    raise ValueError(f'token_merge does not support v_shortcut attention '
                                     f'(layer {i})')
            merge_schedule(settings, len(self._attention_layer_indices()))
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

    def _forward_layers_merged(self, x: torch.Tensor,
                               patch_resolution: Tuple[int, int]) -> Tuple[torch.Tensor, ...]:
        """The layer loop of ``VisionTransformer.forward`` with merging.

        Args:
            x (torch.Tensor): ``(batch, tokens, channels)`` embedded tokens, CLS first.
            patch_resolution (tuple[int, int]): Passed to ``_format_output``.

        Returns:
            tuple[torch.Tensor]: One output per ``out_indices`` entry.
        """
        schedule = self.token_merge_schedule()
        state = TokenMergeState(prop_attn=self._token_merge.prop_attn)
        outs = []
        for i, layer in enumerate(self.layers):
            if i in schedule:
                x = self._merging_layer_forward(layer, x, state, schedule[i])
            else:
                x = layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)

    @staticmethod
    def _merging_layer_forward(layer: torch.nn.Module, x: torch.Tensor, state: TokenMergeState,
                               r: int) -> torch.Tensor:
        """One encoder layer: attention (mmpretrain's weights and sdpa, with sizes), residual,
        merge, MLP."""
        attn = layer.attn
        context, keys = attention_with_keys(
            layer.ln1(x), attn.qkv, attn.num_heads, size=state.attention_size,
            sdpa=attn.scaled_dot_product_attention,
            dropout_p=attn.attn_drop if attn.training else 0.0)
        branch = attn.out_drop(attn.gamma1(attn.proj_drop(attn.proj(context))))
        x = dilute_residual(x, branch, layer.dilution_lam, layer.compensate)
        x = state.merge(x, keys, r)
        return layer.ffn(layer.ln2(x), identity=x)
