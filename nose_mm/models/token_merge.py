"""Token merging (ToMe, Bolya et al. 2023) in plain torch; the algorithm: docs/design.md."""
import numbers
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

__all__ = [
    'TokenMergeSettings', 'parse_token_merge', 'merge_schedule', 'merged_token_counts',
    'bipartite_soft_matching', 'merge_weighted', 'attention_with_keys'
]

_KEYS = ('r', 'start', 'prop_attn')
_EXAMPLE = 'dict(r=24, start=1, prop_attn=True)'


@dataclass(frozen=True)
class TokenMergeSettings:
    """A validated ``token_merge`` option.

    Attributes:
        r (int | tuple[int]): Tokens merged per merging layer, or one count per layer.
        start (int): Index, among the layers that keep attention, of the first merging layer.
        prop_attn (bool): Proportional attention.
    """

    r: Union[int, Tuple[int, ...]]
    start: int = 0
    prop_attn: bool = True


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def parse_token_merge(token_merge: Optional[Mapping]) -> Optional[TokenMergeSettings]:
    """Validate a ``token_merge`` option (the checks that need no model).

    Args:
        token_merge (dict, optional): ``dict(r=int >= 0 or list, start=0, prop_attn=True)``.

    Returns:
        TokenMergeSettings | None: The settings, or None.

    Raises:
        ValueError: Not a dict, unknown or missing keys, bad values.
    """
    if token_merge is None:
        return None
    if not isinstance(token_merge, Mapping):
        raise ValueError(f'token_merge must be a dict like {_EXAMPLE}, got {token_merge!r}')
    unknown = sorted(set(token_merge) - set(_KEYS))
    if unknown:
        raise ValueError(f'token_merge: unknown keys {unknown}; allowed keys are {list(_KEYS)}')
    if 'r' not in token_merge:
        raise ValueError(f'token_merge needs r (tokens merged per layer), e.g. {_EXAMPLE}')
    r = token_merge['r']
    per_layer = isinstance(r, (list, tuple))
    values = r if per_layer else [r]
    if not values or not all(_is_int(v) and v >= 0 for v in values):
        raise ValueError(f'token_merge: r must be a non-negative int or a non-empty list of '
                         f'non-negative ints, got {r!r}')
    r = tuple(int(v) for v in r) if per_layer else int(r)
    start = token_merge.get('start', 0)
    if not _is_int(start) or start < 0:
        raise ValueError(f'token_merge: start must be a non-negative int (an index among the '
                         f'layers that keep attention), got {start!r}')
    prop_attn = token_merge.get('prop_attn', True)
    if not isinstance(prop_attn, bool):
        raise ValueError(f'token_merge: prop_attn must be True or False, got {prop_attn!r}')
    return TokenMergeSettings(r=r, start=int(start), prop_attn=prop_attn)


def merge_schedule(settings: TokenMergeSettings, num_attention_layers: int) -> Tuple[int, ...]:
    """``r`` of every layer that keeps attention, in order.

    Args:
        settings (TokenMergeSettings): The option.
        num_attention_layers (int): Layers that keep attention (not removed, not at lam 0).

    Returns:
        tuple[int]: ``num_attention_layers`` counts, 0 before ``start``.

    Raises:
        ValueError: ``start`` out of range, or a list ``r`` of the wrong length.
    """
    n, start = num_attention_layers, settings.start
    if not 0 <= start < n:
        allowed = f'0..{n - 1}' if n else 'none (the model has no attention layer)'
        raise ValueError(f'token_merge: start={start} is out of range; the model has {n} '
                         f'layers with attention (removed and lam = 0 layers do not count), '
                         f'allowed start: {allowed}')
    if isinstance(settings.r, tuple):
        if len(settings.r) != n - start:
            raise ValueError(f'token_merge: r has {len(settings.r)} entries but {n - start} '
                             f'layers merge (attention layers {start}..{n - 1} of {n}, from '
                             f'start={start}); give one r per merging layer, or an int')
        return (0, ) * start + settings.r
    return (0, ) * start + (settings.r, ) * (n - start)


def _clamp_r(r: int, num_tokens: int, class_token: bool = True) -> int:
    """``r`` limited to half of the mergeable tokens (the CLS token is not)."""
    return max(0, min(r, (num_tokens - int(class_token)) // 2))


def merged_token_counts(num_tokens: int, schedule: Sequence[int],
                        class_token: bool = True) -> List[int]:
    """Tokens entering the MLP of each scheduled layer.

    Args:
        num_tokens (int): Tokens entering the first layer (197 for a 224 px DeiT).
        schedule (sequence of int): ``r`` per layer, e.g. from :func:`merge_schedule`.
        class_token (bool): Token 0 is a protected CLS token. Defaults to True.

    Returns:
        list[int]: One count per entry of ``schedule``.
    """
    counts = []
    for r in schedule:
        num_tokens -= _clamp_r(r, num_tokens, class_token)
        counts.append(num_tokens)
    return counts


class Matching(NamedTuple):
    """Which A tokens are ``kept`` (ascending) or ``moved`` into which B token (``target``)."""

    kept: torch.Tensor
    moved: torch.Tensor
    target: torch.Tensor


def bipartite_soft_matching(metric: torch.Tensor, r: int,
                            class_token: bool = True) -> Optional[Matching]:
    """Match the ``r`` most similar A -> B token pairs (docs/design.md).

    Args:
        metric (torch.Tensor): ``(batch, tokens, d)`` the per-token key means.
        r (int): Tokens to remove; clamped to half of the mergeable tokens.
        class_token (bool): Token 0 is a CLS token, never merged. Defaults to True.

    Returns:
        Matching | None: None when nothing is merged (``r`` is 0 after clamping).
    """
    r = _clamp_r(r, metric.shape[1], class_token)
    if r == 0:
        return None
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        scores = metric[:, ::2] @ metric[:, 1::2].transpose(1, 2)
        if class_token:
            scores[:, 0, :] = float('-inf')
        best_score, best = scores.max(dim=-1)
        order = best_score.argsort(dim=-1, descending=True)
        moved = order[:, :r]
        kept = order[:, r:].sort(dim=-1).values
        target = best.gather(1, moved)
    return Matching(kept, moved, target)


def _expand(index: torch.Tensor, channels: int) -> torch.Tensor:
    return index[..., None].expand(-1, -1, channels)


def merge_tokens(matching: Matching, x: torch.Tensor) -> torch.Tensor:
    """Sum the moved A tokens of ``x`` (B, T, C) into their B tokens: kept A tokens, then B."""
    a, b = x[:, ::2], x[:, 1::2]
    c = x.shape[-1]
    kept = a.gather(1, _expand(matching.kept, c))
    moved = a.gather(1, _expand(matching.moved, c))
    b = b.scatter_add(1, _expand(matching.target, c), moved)
    return torch.cat([kept, b], dim=1)


def merge_weighted(matching: Optional[Matching], x: torch.Tensor,
                   size: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Size-weighted average merge; returns the new tokens and sizes.

    Args:
        matching (Matching, optional): None leaves ``x`` and ``size`` unchanged.
        x (torch.Tensor): ``(batch, tokens, channels)``.
        size (torch.Tensor, optional): ``(batch, tokens, 1)`` token sizes; None means all 1.

    Returns:
        tuple: ``x`` and ``size`` with ``tokens - r`` tokens.
    """
    if matching is None:
        return x, size
    if size is None:
        size = x.new_ones(x.shape[0], x.shape[1], 1)
    total = merge_tokens(matching, size)
    return merge_tokens(matching, x * size) / total, total


def attention_with_keys(x: torch.Tensor, qkv: Callable[[torch.Tensor], torch.Tensor],
                        num_heads: int, size: Optional[torch.Tensor] = None,
                        sdpa: Callable[..., torch.Tensor] = F.scaled_dot_product_attention,
                        dropout_p: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Multi-head self-attention (before the output projection) and the key means.

    Args:
        x (torch.Tensor): ``(batch, tokens, channels)`` normalised tokens.
        qkv (callable): The fused q/k/v projection, ``channels -> 3 * dims``.
        num_heads (int): Attention heads.
        size (torch.Tensor, optional): ``(B, T, 1)`` sizes (prop. attention). Defaults to None.
        sdpa (callable): ``sdpa(q, k, v, attn_mask, dropout_p)``. Defaults to torch's.
        dropout_p (float): Attention dropout. Defaults to 0.

    Returns:
        tuple: The heads' outputs ``(B, T, dims)`` and the mean keys ``(B, T, dims / heads)``.
    """
    batch, tokens, _ = x.shape
    qkv_out = qkv(x)
    dims = qkv_out.shape[-1] // 3
    q, k, v = qkv_out.reshape(batch, tokens, 3, num_heads, dims // num_heads).permute(2, 0, 3, 1, 4)
    bias = None if size is None else size.log()[:, None, None, :, 0].to(q.dtype)  # (B, 1, 1, keys)
    out = sdpa(q, k, v, attn_mask=bias, dropout_p=dropout_p)
    return out.transpose(1, 2).reshape(batch, tokens, dims), k.mean(dim=1)

