"""How much a NOSE selection depends on its calibration subset (docs/design.md)."""
import re
from collections import Counter
from itertools import takewhile
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch

from nose_mm.selection.loading import build_calibration_loader, collect_batches
from nose_mm.selection.runner import run_selection
from nose_mm.selection.settings import SelectionSettings

__all__ = ['RECORD_FORMAT', 'check_num_samples_grid', 'measure_selection_stability',
           'stability_rows', 'smallest_stable_n', 'stability_markdown']

#: ``format`` of the JSON record.
RECORD_FORMAT = 'nose_mm.selection_stability'

NumSamples = Union[int, str]


def check_num_samples_grid(values: Sequence[Any]) -> List[NumSamples]:
    """``N`` values: distinct ints >= 2 (ascending) then ``'all'`` if given.

    Raises:
        ValueError: A value that is neither an int >= 2 nor ``'all'``, or a repeat.
    """
    ints = []
    for value in values:
        if value == 'all':
            continue
        text = str(value).strip()
        if isinstance(value, bool) or not re.fullmatch('[1-9][0-9]*', text) or int(text) < 2:
            raise ValueError(f"num_samples {value!r} must be an int >= 2 or 'all'")
        ints.append(int(text))
    if not values:
        raise ValueError('no num_samples given')
    if len(set(ints)) != len(ints) or list(values).count('all') > 1:
        raise ValueError(f'num_samples values given twice: {list(values)}')
    return sorted(ints) + (['all'] if 'all' in values else [])


def measure_selection_stability(model: torch.nn.Module,
                                datasets: Dict[str, Any],
                                num_layers: Sequence[int],
                                num_samples: Sequence[NumSamples],
                                seeds: Sequence[int],
                                skip_modes: Sequence[str] = ('identity', ),
                                settings: Optional[SelectionSettings] = None,
                                num_workers: int = 0,
                                progress: Optional[Callable[[], None]] = None
                                ) -> List[Dict[str, Any]]:
    """Run the NOSE selection for every split, ``N``, seed and skip mode.

    Args:
        model (nn.Module): A classifier supported by the selection adapters.
        datasets (dict): Calibration dataset per split name.
        num_layers (Sequence[int]): Budgets ``K`` (one run with ``max(K)`` gives all).
        num_samples (Sequence[int | str]): ``N`` values (``'all'``: the whole split).
        seeds (Sequence[int]): Calibration subset seeds.
        skip_modes (Sequence[str]): Skip modes. Defaults to ``('identity', )``.
        settings (SelectionSettings, optional): Other settings. Defaults to None.
        num_workers (int): Loader workers. Defaults to 0.
        progress (callable, optional): Called after every selection run. Defaults to None.

    Returns:
        list[dict]: One run per (split, N, seed, skip mode), with ``selection`` and ``te_first``.

    Raises:
        ValueError: Bad ``N`` values, budgets, seeds or settings.
    """
    grid = check_num_samples_grid(num_samples)
    base = SelectionSettings.build(settings, method='nose', num_layers=max(num_layers))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f'seeds must be distinct and at least one, got {list(seeds)}')
    runs = []
    for split, dataset in datasets.items():
        for n in grid:
            size = len(dataset) if n == 'all' else n
            if size > len(dataset):
                continue
            for seed in (seeds[:1] if size == len(dataset) else seeds):
                batches = collect_batches(model, build_calibration_loader(
                    dataset, size, base.batch_size, seed, num_workers))
                for mode in skip_modes:
                    run = SelectionSettings.build(base, num_samples=size, seed=seed, split=split,
                                                  skip_mode=mode)
                    record = run_selection(model, None, settings=run, batches=batches,
                                           progress=False)
                    runs.append(dict(split=split, n=n, num_samples=size, seed=seed,
                                     skip_mode=mode, selection=record['selection'],
                                     te_first=record['te_table'][0],
                                     time_s=record['timing']['total_s']))
                    if progress is not None:
                        progress()
    return runs


def stability_rows(runs: Sequence[Dict[str, Any]],
                   num_layers: Sequence[int]) -> List[Dict[str, Any]]:
    """Summarise runs per ``(split, skip_mode, k, n)`` (docs/design.md).

    Args:
        runs (Sequence[dict]): From :func:`measure_selection_stability`.
        num_layers (Sequence[int]): Budgets ``K`` (each at most the runs' length).

    Returns:
        list[dict]: Per group: ``distinct``, ``agreement``, ``matches_all``, ``stable``...
    """
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run['split'], run['skip_mode'], run['n']), []).append(run)
    rows = []
    for (split, mode, n), group in groups.items():
        for k in sorted(num_layers):
            sets = [tuple(sorted(r['selection'][:k])) for r in group]
            counts = Counter(sets)
            modal, count = counts.most_common(1)[0]
            whole = groups.get((split, mode, 'all'))
            reference = tuple(sorted(whole[0]['selection'][:k])) if whole else None
            matches = None if reference is None else sum(s == reference for s in sets) / len(sets)
            rows.append(dict(split=split, skip_mode=mode, k=k, n=n,
                             num_samples=group[0]['num_samples'], seeds=len(group),
                             distinct=len(counts), modal=list(modal),
                             agreement=count / len(sets), matches_all=matches,
                             stable=len(counts) == 1 and reference in (None, modal),
                             sets=[list(s) for s in sets]))
    return rows


def smallest_stable_n(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per ``(split, skip_mode, k)``: the smallest ``N`` stable together with every larger ``N``.

    Returns:
        list[dict]: ``split``, ``skip_mode``, ``k``, ``n`` (None: never stable), ``num_samples``.
    """
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row['split'], row['skip_mode'], row['k']), []).append(row)
    out = []
    for (split, mode, k), group in groups.items():
        # the stable tail of the rows by N: its first row is the answer
        tail = list(takewhile(lambda r: r['stable'],
                              reversed(sorted(group, key=lambda r: r['num_samples']))))
        best = tail[-1] if tail else None
        out.append(dict(split=split, skip_mode=mode, k=k, n=best['n'] if best else None,
                        num_samples=best['num_samples'] if best else None))
    return out


def stability_markdown(record: Dict[str, Any]) -> str:
    """One markdown table per budget K: rows (split, skip mode), columns N.

    Args:
        record (dict): With ``rows`` and ``smallest_stable_n``.
    """
    rows, lines = record['rows'], []
    grid = sorted({r['n'] for r in rows}, key=lambda n: (n == 'all', n if n != 'all' else 0))
    by_key = {(r['split'], r['skip_mode'], r['k'], r['n']): r for r in rows}
    smallest = {(s['split'], s['skip_mode'], s['k']): s['n'] for s in record['smallest_stable_n']}
    for k in sorted({r['k'] for r in rows}):
        lines += [f'K = {k}: distinct sets over the seeds (seeds giving the all-images set)', '',
                  '| split | skip mode | ' + ' | '.join(f'N = {n}' for n in grid)
                  + ' | all-images set | smallest stable N |',
                  '|---|---|' + '---|' * (len(grid) + 2)]
        for split, mode in dict.fromkeys((r['split'], r['skip_mode']) for r in rows
                                         if r['k'] == k):
            cells, whole = [], None
            for n in grid:
                row = by_key.get((split, mode, k, n))
                if row is None:
                    cells.append('n/a')
                elif n == 'all':
                    whole = row['modal']
                    cells.append(f'{whole} ({row["num_samples"]} images)')
                elif row['matches_all'] is None:
                    cells.append(f'{row["distinct"]}')
                else:
                    matches = round(row['matches_all'] * row['seeds'])
                    cells.append(f'{row["distinct"]} ({matches}/{row["seeds"]})')
            lines.append(f'| {split} | {mode} | ' + ' | '.join(cells)
                         + f' | {whole if whole is not None else "-"} | '
                         f'{smallest.get((split, mode, k))} |')
        lines.append('')
    return '\n'.join(lines)
