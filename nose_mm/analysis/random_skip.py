"""Random attention skipping of a trained model (paper Fig. 2, docs/design.md)."""
import math
from itertools import combinations
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from nose_mm.selection.entropy import FeatureStats, transfer_entropy

__all__ = ['RECORD_FORMAT', 'check_budgets', 'check_num_subsets', 'sample_skip_sets',
           'random_skip_analysis', 'plot_random_skip']

#: ``format`` of the JSON record.
RECORD_FORMAT = 'nose_mm.random_skip'


def check_budgets(ks: Sequence[int], num_candidates: int) -> List[int]:
    """Check the budgets: distinct ints in ``1..num_candidates``; return them sorted.

    Raises:
        ValueError: A budget out of range, not an int, or given twice.
    """
    ks = list(ks)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) \
                or not 1 <= k <= num_candidates:
            raise ValueError(f'budget k={k!r} is out of range: the model has {num_candidates} '
                             f'attention layers to skip, so k must be in 1..{num_candidates}')
    twice = sorted({int(k) for k in ks if ks.count(k) > 1})
    if twice:
        raise ValueError(f'budgets {twice} are given twice')
    if not ks:
        raise ValueError('no budget k given')
    return sorted(int(k) for k in ks)


def check_num_subsets(num_subsets: int) -> int:
    """Check ``M`` (an int >= 1) and return it; raises ValueError otherwise."""
    if isinstance(num_subsets, bool) or not isinstance(num_subsets, int) or num_subsets < 1:
        raise ValueError(f'num_subsets must be an int >= 1, got {num_subsets!r}')
    return num_subsets


def sample_skip_sets(candidates: Sequence[int], k: int, num_subsets: int,
                     seed: int = 0) -> Tuple[List[List[int]], bool]:
    """``num_subsets`` distinct random ``k``-subsets of ``candidates``, seeded with ``(seed, k)``.

    Args:
        candidates (Sequence[int]): Layers whose attention can be skipped.
        k (int): Subset size.
        num_subsets (int): ``M``, at least 1.
        seed (int): Seed. Defaults to 0.

    Returns:
        tuple: ``(subsets, exhaustive)``: sorted layer lists, and whether that is all.

    Raises:
        ValueError: ``num_subsets`` < 1 or ``k`` out of range.
    """
    check_num_subsets(num_subsets)
    candidates = sorted(int(c) for c in candidates)
    check_budgets([k], len(candidates))
    if math.comb(len(candidates), k) <= num_subsets:
        return [list(s) for s in combinations(candidates, k)], True
    rng = np.random.default_rng([seed, k])
    seen, subsets = set(), []
    while len(subsets) < num_subsets:
        subset = tuple(sorted(int(c) for c in rng.choice(candidates, size=k, replace=False)))
        if subset not in seen:
            seen.add(subset)
            subsets.append(list(subset))
    return subsets, False


def evaluate_skip(feature_adapter, logit_adapter, batches: Sequence[torch.Tensor],
                  labels: Sequence[torch.Tensor], skip: Sequence[int] = ()
                  ) -> Tuple[float, float]:
    """``(top-1 accuracy %, feature entropy)`` with the attention of ``skip`` skipped."""
    stats, correct, total = FeatureStats(), 0, 0
    with torch.no_grad():
        for inputs, target in zip(batches, labels):
            logits = logit_adapter.forward(inputs, skip=skip)
            feats = logits if feature_adapter is logit_adapter else \
                feature_adapter.forward(inputs, skip=skip)
            stats.update(feats.cpu())
            correct += int((logits.argmax(dim=1).cpu() == target.cpu()).sum())
            total += int(target.numel())
    return 100.0 * correct / total, stats.entropy()


def random_skip_analysis(feature_adapter, logit_adapter, batches: Sequence[torch.Tensor],
                         labels: Sequence[torch.Tensor], ks: Optional[Sequence[int]] = None,
                         num_subsets: int = 10, seed: int = 0,
                         progress: Optional[Any] = None) -> Dict[str, Any]:
    """Skip ``num_subsets`` random sets of ``k`` attention layers for each ``k``.

    Args:
        feature_adapter (FamilyAdapter): Reads the features whose entropy gives TE.
        logit_adapter (FamilyAdapter): Reads the logits, for the accuracy.
        batches (Sequence[Tensor]): Preprocessed image batches.
        labels (Sequence[Tensor]): Class indices, one tensor per batch.
        ks (Sequence[int], optional): Budgets. Defaults to None (all of ``1..L``).
        num_subsets (int): Random sets per budget (``M``). Defaults to 10.
        seed (int): Seed of the sets. Defaults to 0.
        progress (callable, optional): Called after every evaluated set. Defaults to None.

    Returns:
        dict: The JSON-ready record (keys in docs/design.md).

    Raises:
        ValueError: Bad budgets or ``num_subsets``, < 2 images, or different skip modes.
    """
    if feature_adapter.skip_mode != logit_adapter.skip_mode:
        raise ValueError(f'the adapters skip differently: {feature_adapter.skip_mode!r} and '
                         f'{logit_adapter.skip_mode!r}')
    candidates = list(feature_adapter.candidate_layers)
    ks = check_budgets(range(1, len(candidates) + 1) if ks is None else ks, len(candidates))
    num_images = sum(int(t.numel()) for t in labels)
    if num_images < 2:
        raise ValueError('the analysis needs at least 2 images (entropy needs a spread)')
    full_acc, full_h = evaluate_skip(feature_adapter, logit_adapter, batches, labels)
    budgets = []
    for k in ks:
        subsets, exhaustive = sample_skip_sets(candidates, k, num_subsets, seed)
        rows = []
        for skip in subsets:
            acc, h = evaluate_skip(feature_adapter, logit_adapter, batches, labels, skip)
            rows.append(dict(skip=skip, accuracy=acc, te=transfer_entropy(full_h, h)))
            if progress is not None:
                progress()
        accs = np.array([r['accuracy'] for r in rows])
        budgets.append(dict(k=k, num_subsets=len(rows), exhaustive=exhaustive,
                            accuracy_mean=float(accs.mean()), accuracy_var=float(accs.var()),
                            accuracy_std=float(accs.std()),
                            te_mean=float(np.mean([r['te'] for r in rows])), subsets=rows))
    return dict(format=RECORD_FORMAT, version=1, features=feature_adapter.features,
                skip_mode=feature_adapter.skip_mode, candidates=candidates, seed=seed,
                num_subsets=num_subsets, num_images=num_images,
                full=dict(accuracy=full_acc, entropy=full_h), budgets=budgets)


def plot_random_skip(record: Dict[str, Any], path: str) -> None:
    """Accuracy vs TE (symlog axis) of every skipped set by ``k``, and mean +- std per ``k``.

    Args:
        record (dict): From :func:`random_skip_analysis`.
        path (str): PNG file, written atomically.
    """
    from matplotlib import cm

    from .plots import _figure, save_figure
    fig, (left, right) = _figure(10, 4, ncols=2)
    budgets = record['budgets']
    colours = cm.viridis(np.linspace(0, 1, max(len(budgets), 2)))
    for colour, budget in zip(colours, budgets):
        left.scatter([r['te'] for r in budget['subsets']],
                     [r['accuracy'] for r in budget['subsets']], s=14, color=colour,
                     label=f'k={budget["k"]}')
    left.axhline(record['full']['accuracy'], color='grey', lw=0.8, ls='--', label='no skip')
    # symlog: TE spans orders of magnitude and can be negative (docs/design.md)
    left.set_xscale('symlog', linthresh=1.0)
    left.set_xlabel('transfer entropy TE(S) = H(full) - H(S) (symlog)')
    left.set_ylabel('top-1 accuracy (%)')
    left.legend(fontsize=7, ncol=2)
    ks = [b['k'] for b in budgets]
    right.errorbar(ks, [b['accuracy_mean'] for b in budgets],
                   yerr=[b['accuracy_std'] for b in budgets], marker='o', capsize=3)
    right.set_xlabel('attention layers skipped (k)')
    right.set_ylabel('top-1 accuracy (%), mean +- std')
    right.set_xticks(ks)
    fig.suptitle(f'random attention skipping ({record.get("skip_mode", "identity")}), '
                 f'{record["num_images"]} images, '
                 f'{record["num_subsets"]} sets per k')
    save_figure(fig, path)
