"""Transfer-entropy evaluators (naive, prefix-cached), their cost, layer statistics."""
from typing import AbstractSet, Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .adapters import FamilyAdapter
from .entropy import FeatureSetStats, FeatureStats, transfer_entropy
from .greedy import CRITERIA, check_choice

__all__ = ['NaiveEvaluator', 'CachedEvaluator', 'EVALUATORS', 'layer_statistics',
           'selection_cost']

#: Evaluator names: :class:`CachedEvaluator`, :class:`NaiveEvaluator`.
EVALUATORS = ('cached', 'naive')


class _Evaluator:
    """Shared parts: the calibration batches, the full entropy and the cost counter."""

    def __init__(self, adapter: FamilyAdapter, batches: Sequence[Tensor]) -> None:
        if len(batches) == 0:
            raise ValueError('the calibration set is empty')
        self.adapter = adapter
        streamed = getattr(batches, 'num_samples', None)  # StreamedBatches: not kept
        self.batches = batches if streamed is not None else list(batches)
        self.num_samples = streamed if streamed is not None else sum(
            int(b.shape[0]) for b in self.batches)
        if self.num_samples < 2:
            raise ValueError(f'entropy needs at least 2 calibration samples, got '
                             f'{self.num_samples}')
        self.num_layers = adapter.num_layers
        self.blocks_computed = 0
        self._h_full: Optional[float] = None

    @property
    def forward_equivalents(self) -> float:
        """Blocks computed so far divided by ``L * N`` (full forward passes)."""
        return self.blocks_computed / (self.num_layers * self.num_samples)

    def _run(self, x: Tensor, start: int, skip: AbstractSet[int], batch_size: int,
             keep_from: Optional[int] = None) -> Tuple[Tensor, List[Tensor]]:
        """Blocks ``start .. L-1`` on ``x``; returns the output and, if
        ``keep_from`` is given, the inputs of blocks ``keep_from .. L-1``."""
        kept = []
        for i in range(start, self.num_layers):
            if keep_from is not None and i >= keep_from:
                kept.append(x)
            x = self.adapter.block(i, x, i in skip)
        self.blocks_computed += (self.num_layers - start) * batch_size
        return x, kept

    def _full_pass(self, skip: AbstractSet[int], keep: bool = False
                   ) -> Tuple[float, List[List[Tensor]], list]:
        """All batches through all blocks: the features' entropy and, per batch, (with
        ``keep``) every block's input and the context."""
        stats, kept, contexts = FeatureSetStats(), [], []
        with torch.no_grad():
            for inputs in self.batches:
                x, ctx = self.adapter.embed(inputs)
                x, inputs_kept = self._run(x, 0, skip, inputs.shape[0], 0 if keep else None)
                kept.append(inputs_kept)
                contexts.append(ctx)
                stats.update(self.adapter.readout(x, ctx))
        return stats.entropy(), kept, contexts

    def full_entropy(self) -> float:
        """Entropy of the full model's features over the calibration set."""
        if self._h_full is None:
            self._h_full = self.entropy(())
        return self._h_full

    def entropy(self, skip: Sequence[int]) -> float:
        """Entropy of the features with the attention of ``skip`` skipped (full forward)."""
        return self._full_pass(set(skip))[0]


class NaiveEvaluator(_Evaluator):
    """TE by a full forward pass over the calibration set for every candidate.

    Args:
        adapter (FamilyAdapter): The model.
        batches (Sequence[Tensor]): Preprocessed calibration batches on its device.
    """

    def __call__(self, selected: Sequence[int], candidate: int) -> float:
        """``TE(selected + [candidate])``."""
        return transfer_entropy(self.full_entropy(),
                                self.entropy(tuple(selected) + (candidate, )))


class CachedEvaluator(_Evaluator):
    """TE with a prefix cache: candidate ``i`` recomputes only blocks ``i .. L-1``.

    Args:
        adapter (FamilyAdapter): The model.
        batches (Sequence[Tensor]): Preprocessed calibration batches on its device.
        criterion (str): The greedy criterion, ``'abs'`` or ``'signed'``. Defaults to ``'abs'``.
        keep_best (bool): Keep the best candidate's block inputs for the cache. Defaults to True.

    Raises:
        ValueError: If ``criterion`` is not allowed.
    """

    def __init__(self, adapter: FamilyAdapter, batches: Sequence[Tensor],
                 criterion: str = 'abs', keep_best: bool = True) -> None:
        super().__init__(adapter, batches)
        check_choice('criterion', criterion, CRITERIA)
        self.criterion = criterion
        self.keep_best = keep_best
        self._skip: Optional[Tuple[int, ...]] = None
        self._cache: List[List[Tensor]] = []  # [batch][block] -> input of the block
        self._contexts: list = []
        self._best: Optional[Tuple[int, float, List[List[Tensor]]]] = None

    def _move_to(self, selected: Tuple[int, ...]) -> None:
        """Update the cache from the current skip set to ``selected``."""
        self.full_entropy()  # builds the cache on the first call
        if set(selected) == set(self._skip):
            self._skip = selected
            return
        changed = set(selected) ^ set(self._skip)
        first = min(changed)
        best = self._best
        if (best is not None and changed == {best[0]} and set(selected) > set(self._skip)):
            # The newly selected layer is the candidate whose trajectory we kept.
            for cache, kept in zip(self._cache, best[2]):
                cache[first + 1:] = kept
        elif first < self.num_layers - 1:
            skip = set(selected)
            for cache, inputs in zip(self._cache, self.batches):
                x = cache[first]
                kept = []
                for i in range(first, self.num_layers - 1):
                    x = self.adapter.block(i, x, i in skip)
                    kept.append(x)
                cache[first + 1:] = kept
                self.blocks_computed += (self.num_layers - 1 - first) * inputs.shape[0]
        self._skip = selected
        self._best = None

    def full_entropy(self) -> float:
        """``H(full)``; the first call caches every block's input with nothing skipped."""
        if self._skip is None:
            self._h_full, self._cache, self._contexts = self._full_pass(set(), keep=True)
            self._skip = ()
        return self._h_full

    def __call__(self, selected: Sequence[int], candidate: int) -> float:
        """``TE(selected + [candidate])`` from the cache of ``selected``."""
        selected = tuple(int(s) for s in selected)
        if candidate in selected:
            raise ValueError(f'candidate {candidate} is already in the skip set {selected}')
        with torch.no_grad():
            self._move_to(selected)
            skip = set(selected) | {candidate}
            stats = FeatureSetStats()
            trajectories = []
            keep = candidate + 1 if self.keep_best else None
            for cache, ctx, inputs in zip(self._cache, self._contexts, self.batches):
                x, kept = self._run(cache[candidate], candidate, skip, inputs.shape[0],
                                    keep_from=keep)
                trajectories.append(kept)  # inputs of blocks candidate+1 .. (with keep_best)
                stats.update(self.adapter.readout(x, ctx))
        te = transfer_entropy(self._h_full, stats.entropy())
        if self.keep_best:
            score = abs(te) if self.criterion == 'abs' else te
            if self._best is None or score < self._best[1]:
                self._best = (candidate, score, trajectories)
        return te


def selection_cost(num_layers: int, candidates: Sequence[int], selection: Sequence[int],
                   evaluator: str = 'cached', keep_best: bool = True) -> float:
    """Forward-pass equivalents a greedy run costs, from its selection order (docs/design.md).

    Args:
        num_layers (int): ``L``.
        candidates (Sequence[int]): Candidate layers.
        selection (Sequence[int]): The selected layers in step order.
        evaluator (str): ``'cached'`` or ``'naive'``. Defaults to ``'cached'``.
        keep_best (bool): The cached evaluator's ``keep_best``. Defaults to True.

    Returns:
        float: Blocks computed divided by ``L * N``.

    Raises:
        ValueError: An unknown ``evaluator``.
    """
    check_choice('evaluator', evaluator, EVALUATORS)
    remaining = list(candidates)
    blocks = num_layers  # the full pass (cache build / H(full))
    for step, chosen in enumerate(selection):
        if evaluator == 'naive':
            blocks += num_layers * len(remaining)
        else:
            blocks += sum(num_layers - c for c in remaining)
            if not keep_best and step + 1 < len(selection):
                blocks += num_layers - 1 - chosen
        remaining.remove(chosen)
    return blocks / num_layers


def layer_statistics(adapter: FamilyAdapter, batches: Sequence[Tensor]) -> Dict[str, Any]:
    """Per-layer statistics of the full model in one pass (no layer skipped).

    Args:
        adapter (FamilyAdapter): The model.
        batches (Sequence[Tensor]): Preprocessed calibration batches.

    Returns:
        dict: ``{'attn_entropy', 'mlp_entropy', 'attn_cosine', 'num_tokens'}`` by layer.
    """
    if len(batches) == 0:
        raise ValueError('the calibration set is empty')
    candidates = adapter.candidate_layers  # ascending: so are the dicts
    attn = {i: FeatureStats() for i in candidates}
    mlp = {i: FeatureStats() for i in candidates}
    cos_sum, tokens = dict.fromkeys(candidates, 0.0), dict.fromkeys(candidates, 0)
    with torch.no_grad():
        for inputs in batches:
            x, _ = adapter.embed(inputs)
            for i in range(adapter.num_layers):
                if i not in attn:
                    x = adapter.block(i, x)
                    continue
                parts = adapter.block_parts(i, x)
                u, a = parts.tokens, parts.attn
                cos = torch.nn.functional.cosine_similarity(u.double(), (u + a).double(),
                                                            dim=-1)
                cos_sum[i] += float(cos.sum())
                tokens[i] += cos.numel()
                attn[i].update(a.reshape(-1, a.shape[-1]))
                mlp[i].update(parts.mlp.reshape(-1, parts.mlp.shape[-1]))
                x = parts.output
    return dict(attn_entropy={i: s.entropy() for i, s in attn.items()},
                mlp_entropy={i: s.entropy() for i, s in mlp.items()},
                attn_cosine={i: cos_sum[i] / tokens[i] for i in candidates}, num_tokens=tokens)
