"""Building the tables: seed statistics, deltas, speed ratios (rules: ``benchmarks/README.md``)."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..info import TASKS
from ..records import MAIN_METRIC, BenchmarkSettings
from ..seeds import SeedGroup, beyond_spread, group_seed_runs, mean_std
from .collect import collect_runs, load_reference

__all__ = ['Row', 'Table', 'rows_from_runs', 'build_tables', 'build_leaderboard']


@dataclass
class Row:
    """One leaderboard row (a run, or its seed runs, or a reported reference).

    Attributes:
        task, dataset, model, label, arch (str): Display names, run folder or method, arch.
        removed_layers, diluted_layers (list[int]): Removed (None: unknown) / diluted layers.
        metrics, metrics_std, per_seed (dict): Mean over seeds, sample std (n >= 2), values.
        seeds (list[int | None]): Seeds of the runs averaged into the row.
        params_m, gflops (float | None): Parameters (millions), G MACs per image.
        img_per_s, mem_mib, setting: Median img/s, peak MiB and setting of the timing run.
        working_load, budget_gb (int | float | None): Largest batch within that run's
            memory budget (GiB), by its memory method.
        speed_ratio (dict | None): Paired img/s ratio to model ``'a'`` of that run.
        runtime (str | None): Where the img/s were timed (``torch``, ``onnxruntime``...).
        timed_together, bench_name (str | None): That run's id, the row's model in it.
        source (str), reported (bool), date (str | None): Provenance, published?, ISO date.
        ref_id, baseline_id (str | None): Reference id, and its baseline's.
        delta, is_baseline, beyond_spread, speed_mark: Filled by :func:`build_tables`.
        removed_sets (list[list[int]]): Seed runs that draw their removed layers per seed
            (``seed_varies``): the distinct sets, by seed; ``removed_layers`` is the first.
    """

    task: str
    dataset: str
    model: str
    label: str
    arch: str
    removed_layers: Optional[List[int]]
    diluted_layers: List[int] = field(default_factory=list)
    metrics: Dict[str, float] = field(default_factory=dict)
    metrics_std: Dict[str, float] = field(default_factory=dict)
    per_seed: Dict[str, List[float]] = field(default_factory=dict)
    seeds: List[Optional[int]] = field(default_factory=list)
    params_m: Optional[float] = None
    gflops: Optional[float] = None
    img_per_s: Optional[float] = None
    mem_mib: Optional[float] = None
    working_load: Optional[int] = None
    working_load_capped: bool = False
    budget_gb: Optional[float] = None
    setting: str = ''
    speed_ratio: Optional[Dict[str, float]] = None
    runtime: Optional[str] = None
    timed_together: Optional[str] = None
    bench_name: Optional[str] = None
    source: str = ''
    reported: bool = False
    date: Optional[str] = None
    ref_id: Optional[str] = None
    baseline_id: Optional[str] = None
    delta: Optional[float] = None
    is_baseline: bool = False
    beyond_spread: Optional[bool] = None
    speed_mark: bool = False
    #: the distinct removed sets of seed runs that draw one per seed (``seed_varies``)
    removed_sets: List[List[int]] = field(default_factory=list)

    @property
    def main(self) -> Optional[float]:
        """The task's main metric (top-1 or mIoU; the mean over seeds), or None."""
        return self.metrics.get(MAIN_METRIC[self.task])

    @property
    def main_std(self) -> Optional[float]:
        """Sample std of the main metric over the seeds (None for n < 2)."""
        return self.metrics_std.get(MAIN_METRIC[self.task])

    @property
    def n(self) -> int:
        """Number of runs averaged (1 for a single run or a reported row)."""
        return max(1, len(self.seeds))


@dataclass
class Table:
    """The rows of one (task, dataset), sorted."""

    task: str
    dataset: str
    rows: List[Row]

    @property
    def title(self) -> str:
        """``'classification / ImageNet-1k'``."""
        return f'{self.task} / {self.dataset}'


def _setting(s: BenchmarkSettings, runtime: str = 'torch') -> str:
    h, w = s.img_size
    size = f'{h}x{w}' if h != w else f'{h}px'
    tracked = (s.memory_method or '').startswith('tracked')
    memory = ' '.join(p for p in ('train-step' if s.memory_train else '',
                                  'tracked' if tracked else '')
                      if p and s.memory_method and runtime == 'torch')  # torch entries only
    return ' '.join(p for p in (runtime, s.device, s.precision, f'bs{s.batch_size}', size,
                                f'{s.clock} clock' if s.clock != 'wall' else '',
                                f'{memory} mem' if memory else '') if p)


def _row_from_group(group: SeedGroup) -> Row:
    """One row for a group of seed runs (mean, std and per-seed values, the first timing)."""
    first = group.runs[0].results
    stats = {key: mean_std(group.values(key))
             for key in dict.fromkeys(k for run in group.runs for k in run.results.metrics)}
    paths = [run.path for run in group.runs]
    where = paths[0] if group.n == 1 else \
        osp.commonpath([osp.dirname(osp.abspath(p)) for p in paths])
    seeds_text = '' if group.n == 1 else \
        ', seeds ' + ','.join('?' if s is None else str(s) for s in group.seeds)
    row = Row(
        task=first.task, dataset=first.dataset, model=first.model.display,
        label=group.label + (f' (set: {first.model.selected_on})'
                             if first.model.selected_on else ''),
        arch=first.model.arch_name, removed_layers=list(first.model.removed_layers),
        diluted_layers=list(first.model.diluted_layers),
        metrics={k: mean for k, (mean, _) in stats.items()},
        metrics_std={k: std for k, (_, std) in stats.items() if std is not None},
        per_seed={k: group.values(k) for k in stats} if group.n > 1 else {},
        seeds=group.seeds, params_m=None if first.params is None else first.params / 1e6,
        gflops=None if first.flops is None else first.flops / 1e9,
        source=f'measured ({first.mode}'
               f'{", autocast " + first.autocast if first.autocast else ""}{seeds_text}): '
               f'{where}',
        date=max(run.results.date for run in group.runs))
    sets = list(dict.fromkeys(tuple(run.results.model.removed_layers) for run in group.runs))
    if len(sets) > 1:
        row.removed_sets = [list(layers) for layers in sets]
    timing = next((run.timing for run in group.runs if run.timing), None)
    if timing:
        record, entry = timing
        mem = entry.peak_memory_bytes
        row.img_per_s, row.mem_mib = record.img_per_s(entry), None if mem is None else mem / 2**20
        row.setting, row.timed_together = _setting(record.settings, entry.runtime), \
            record.run_id
        row.speed_ratio, row.bench_name = record.ratios(entry).paired_ratio, entry.name
        if entry.largest_batch:
            row.working_load = entry.largest_batch.batch_size
            row.budget_gb = record.settings.memory_budget_gb
            row.working_load_capped = entry.largest_batch.capped
        row.runtime = entry.runtime
    return row


def rows_from_runs(paths: Sequence[str], depth: int = 2,
                   runtime: Optional[str] = None) -> Tuple[List[Row], List[str]]:
    """Rows of every rankable ``results.json`` under ``paths``, seed replicates as one row.

    Args:
        paths (sequence of str): Where to look (see :func:`.collect.collect_runs`).
        depth (int): Folder levels searched. Defaults to 2.
        runtime (str, optional): Timings of this runtime (default: each file's first).

    Returns:
        tuple: ``(rows, problems)``, problems and seed-grouping warnings.
    """
    runs, problems = collect_runs(paths, depth, runtime)
    groups, warnings = group_seed_runs(runs)
    return [_row_from_group(group) for group in groups], problems + warnings


def _assign_baselines(rows: List[Row]) -> Dict[int, Row]:
    """Fill ``delta`` / ``is_baseline``; return ``{id(row): its baseline}`` per row that has one."""
    by_id = {r.ref_id: r for r in rows if r.reported and r.ref_id}
    runs = [r for r in rows if not r.reported]
    bases: Dict[int, Row] = {}
    for row in rows:
        if row.reported:
            base = by_id.get(row.baseline_id) if row.baseline_id else None
        else:
            candidates = [r for r in runs if r.arch == row.arch and not r.removed_layers
                          and not r.diluted_layers and r.main is not None]
            base = max(candidates, key=lambda r: (r.date or '', r.label)) if candidates else None
        if base is None or base.main is None or row.main is None:
            continue
        bases[id(row)] = base
        if base is row:
            row.is_baseline = True
        else:
            base.is_baseline = True
            row.delta = row.main - base.main
            if not row.reported:
                row.beyond_spread = beyond_spread(row.main, row.main_std, row.n, base.main,
                                                  base.main_std, base.n)
    return bases


def _mark_separate_timings(rows: List[Row], bases: Dict[int, Row]) -> None:
    """Mark img/s timed in another run than the row's baseline; drop ratios to another model."""
    timed = [r for r in rows if r.img_per_s is not None and not r.reported]
    groups: Dict[int, Tuple[Optional[Row], List[Row]]] = {}
    for row in timed:
        base = bases.get(id(row))
        groups.setdefault(id(base), (base, []))[1].append(row)
    for base, members in groups.values():
        if base is not None and base.img_per_s is not None and base.timed_together:
            reference = base.timed_together
        else:
            ids = [r.timed_together for r in members if r.timed_together]
            reference = max(set(ids), key=ids.count) if ids else None
        base_is_first = base is not None and base.timed_together == reference and \
            base.bench_name == 'a'
        for row in members:
            row.speed_mark = len(timed) > 1 and (row.timed_together is None
                                                 or row.timed_together != reference
                                                 or (base is not None
                                                     and base.runtime != row.runtime))
            if row.speed_mark or not base_is_first:  # a ratio to another model
                row.speed_ratio = None


def build_tables(rows: Sequence[Row]) -> List[Table]:
    """Group rows by (task, dataset), fill the deltas and sort by the main metric."""
    groups: Dict[Tuple[str, str], List[Row]] = {}
    for row in rows:
        groups.setdefault((row.task, row.dataset), []).append(row)
    tables = []
    for (task, dataset), members in sorted(groups.items(),
                                           key=lambda kv: (TASKS.index(kv[0][0]), kv[0][1])):
        _mark_separate_timings(members, _assign_baselines(members))
        members.sort(key=lambda r: (r.main is None, -(r.main or 0.0), r.reported, r.label))
        tables.append(Table(task, dataset, members))
    return tables


def build_leaderboard(work_dirs: Sequence[str], reference: Optional[str] = None,
                      depth: int = 2, runtime: Optional[str] = None
                      ) -> Tuple[List[Table], List[str]]:
    """Read runs (and references) and build the tables.

    Args:
        work_dirs (sequence of str): Where to look for ``results.json``.
        reference (str, optional): Reference YAML. Defaults to None (no reported rows).
        depth (int): Folder levels searched. Defaults to 2.
        runtime (str, optional): Timings of this runtime (default: each benchmark.json's
            first; a row timed in another runtime than its baseline gets no ratio).

    Returns:
        tuple: ``(tables, problems)``.
    """
    rows, problems = rows_from_runs(work_dirs, depth, runtime)
    if reference:
        refs, ref_problems = load_reference(reference)
        rows += [Row(task=r.task, dataset=r.dataset, model=r.model, label=r.method,
                     arch=r.arch or r.model, removed_layers=r.removed_layers,
                     metrics=dict(r.metrics), params_m=r.params_m, gflops=r.gflops,
                     source=f'reported: {r.source}', reported=True, ref_id=r.id,
                     baseline_id=r.baseline) for r in refs]
        problems += ref_problems
    return build_tables(rows), problems
