"""Leaderboard: every run's ``results.json`` side by side with published numbers.

One table per (task, dataset) from the runs under the given work dirs and the
reported rows of ``benchmarks/reference.yml``, sorted by the main metric, with
the delta to each row's baseline (rules: ``benchmarks/README.md``, "Leaderboard").
Malformed or partial files are reported (``problems``) and skipped, never written.
"""
import csv
import datetime
import html
import io
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from prettytable import PrettyTable, TableStyle

from nose_mm.utils.fileio import atomic_write

from .info import ARCH_NAMES, BENCHMARK_FILE, RESULTS_FILE, TASKS
from .results import MAIN_METRIC, load_json, load_run, match_benchmark
from .seeds import SEED_FOLDER, SPREAD_FACTOR, SeedGroup, beyond_spread, group_seed_runs, mean_std

__all__ = [
    'FORMATS', 'REFERENCE_FORMAT', 'COLUMNS', 'SPREAD_COLUMN', 'columns', 'Row', 'Table',
    'find_results', 'rows_from_runs',
    'load_reference', 'build_tables', 'build_leaderboard', 'format_markdown', 'format_csv',
    'format_html', 'render', 'write_leaderboard', 'plot_leaderboard'
]

FORMATS = ('md', 'csv', 'html')
REFERENCE_FORMAT = 'nose_mm.reference'

_METRIC_COLUMNS = {
    'classification': (('top1', 'Top-1'), ('top5', 'Top-5')),
    'segmentation': (('mIoU', 'mIoU'), ('mIoU_ms_flip', 'mIoU(ms+flip)'), ('mAcc', 'mAcc')),
}
_TAIL = ('Params (M)', 'GFLOPs', 'img/s', 'Speed vs baseline', 'Mem (MiB)',
         'Throughput setting')
#: Column saying whether a row's Δ exceeds the run-to-run spread.
SPREAD_COLUMN = 'Δ vs spread'


def columns(task: str, fmt: str = 'md') -> Tuple[str, ...]:
    """The columns of a task's table in a format.

    ``md``: metrics as ``mean ± std`` over seeds; ``html`` adds the seeds and
    the main metric per seed; ``csv`` also gives each metric's std in its own
    column (numbers only in the metric columns).
    """
    metrics = _METRIC_COLUMNS[task]
    main = metrics[0][1]
    out = ['#', 'Model', 'Run / method', 'Removed layers']
    for _, title in metrics:
        out += [title, f'{title} std'] if fmt == 'csv' else [title]
    out += ['n', f'Δ {main}', SPREAD_COLUMN, *_TAIL]
    if fmt == 'csv':
        out.insert(out.index('Speed vs baseline') + 1, 'Speed q1')
        out.insert(out.index('Speed q1') + 1, 'Speed q3')
    if fmt in ('csv', 'html'):
        out += ['Timed in run', 'Seeds', f'{main} per seed']
    return tuple(out + ['Source'])


#: Columns of each task's Markdown tables.
COLUMNS = {task: columns(task) for task in _METRIC_COLUMNS}
_NOTES = (
    'GFLOPs are multiply-accumulates per image (the model zoos\' "GFLOPs"), attention '
    'products included. img/s: inference, median of repeats, at the stated throughput '
    'setting (compare img/s only between rows measured alike). Mem: peak memory of one '
    'forward at that setting (CUDA max allocated; not measured on CPU). Δ: main '
    'metric minus the baseline row\'s (runs: the latest run of the same arch with no '
    'removed or diluted layers; reported rows: the baseline their source names). '
    'Seeds: runs of one config that differ only in randomness.seed are one row, '
    'metrics as mean ± sample std over its n seeds. '
    f'{SPREAD_COLUMN}: "beyond" when |Δ| > {SPREAD_FACTOR:g} s_p, s_p the pooled sample std '
    'of the row\'s and its baseline\'s seeds (s_p² = Σ(n_i - 1) s_i² / Σ(n_i - 1)), '
    '"within" otherwise, "spread unknown" when either has a single run (n = 1). '
    'Speed vs baseline: the median over timing rounds of the per-round img/s ratio to '
    'the row\'s baseline, the row and its baseline timed interleaved in one run '
    '(tools/benchmark.py --compare ...), with its interquartile range. img/s marked † '
    'comes from another timing run than its baseline\'s: not comparable with it. Rows of '
    'different archs may be timed in different runs (the CSV / HTML column "Timed in run" '
    'says which): compare their img/s only within one run. '
    'Source "reported" = published numbers (benchmarks/reference.yml), "measured" = a run.')


@dataclass
class Row:
    """One leaderboard row (a run or a reported reference).

    Attributes:
        task (str): ``'classification'`` or ``'segmentation'``.
        dataset (str): Display name (``'ImageNet-1k'``...).
        model (str): Backbone display name (``'DeiT-B'``...).
        label (str): Run folder or reported method.
        arch (str): Backbone arch name (baseline matching).
        removed_layers (list[int] | None): Removed attention layers.
        diluted_layers (list[int]): Diluted attention layers.
        metrics (dict): Normalised metrics (percent).
        params_m (float | None): Parameters in millions.
        gflops (float | None): G multiply-accumulates per image.
        img_per_s (float | None): Median inference throughput.
        mem_mib (float | None): Peak memory in MiB.
        setting (str): Throughput setting (device, precision, batch, size).
        source (str): Where the numbers come from.
        reported (bool): Published numbers (True) or a run (False).
        date (str | None): ISO date of a run.
        path (str | None): The run's ``results.json``.
        ref_id (str | None): Reference id.
        baseline_id (str | None): Reference id of a reference row's baseline.
        delta (float | None): Main metric minus the baseline's (filled by
            :func:`build_tables`).
        is_baseline (bool): The row is a baseline of its table.
        seeds (list[int | None]): Seeds of the runs averaged into the row
            (:mod:`nose_mm.benchmark.seeds`); empty for reported rows.
        metrics_std (dict): Sample std of each metric over the seeds (n >= 2).
        per_seed (dict): Each metric's value per seed, in ``seeds`` order.
        beyond_spread (bool | None): ``|delta| > 2 x`` the pooled std of the
            row and its baseline; None when unknown (n < 2 on either side).
        speed_ratio (dict | None): Throughput ratio to the first model of the
            row's benchmark run (``median``, ``q1``, ``q3`` over its rounds).
        timed_together (str | None): Id of the benchmark run that timed the
            row (rows of one run are comparable).
        bench_name (str | None): The row's model in that run (``'a'`` is the
            reference of the ratios).
        speed_mark (bool): img/s comes from another timing run than the
            table's baseline (filled by :func:`build_tables`).
    """

    task: str
    dataset: str
    model: str
    label: str
    arch: str
    removed_layers: Optional[List[int]]
    diluted_layers: List[int] = field(default_factory=list)
    metrics: Dict[str, float] = field(default_factory=dict)
    params_m: Optional[float] = None
    gflops: Optional[float] = None
    img_per_s: Optional[float] = None
    mem_mib: Optional[float] = None
    setting: str = ''
    source: str = ''
    reported: bool = False
    date: Optional[str] = None
    path: Optional[str] = None
    ref_id: Optional[str] = None
    baseline_id: Optional[str] = None
    delta: Optional[float] = None
    is_baseline: bool = False
    seeds: List[Optional[int]] = field(default_factory=list)
    metrics_std: Dict[str, float] = field(default_factory=dict)
    per_seed: Dict[str, List[float]] = field(default_factory=dict)
    beyond_spread: Optional[bool] = None
    speed_ratio: Optional[Dict[str, float]] = None
    timed_together: Optional[str] = None
    bench_name: Optional[str] = None
    speed_mark: bool = False

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


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------
def find_results(paths: Sequence[str], depth: int = 2) -> Tuple[List[Tuple[str, str]], List[str]]:
    """Find ``results.json`` files.

    Args:
        paths (sequence of str): Work dirs, folders of work dirs, or
            ``results.json`` files.
        depth (int): Folder levels searched below each path. Defaults to 2.

    Returns:
        tuple: ``([(root, results.json path)], problems)``, each file once.
    """
    found: Dict[str, str] = {}
    problems = []
    for root in paths:
        if osp.isfile(root):
            found.setdefault(osp.abspath(root), root)
            continue
        if not osp.isdir(root):
            problems.append(f'{root}: no such file or folder')
            continue
        hits = []
        level = [root]
        for _ in range(depth + 1):
            nxt = []
            for folder in level:
                candidate = osp.join(folder, RESULTS_FILE)
                if osp.isfile(candidate):
                    hits.append(candidate)
                try:
                    nxt += [osp.join(folder, d) for d in sorted(os.listdir(folder))
                            if osp.isdir(osp.join(folder, d))]
                except OSError:
                    continue
            level = nxt
        if not hits:
            problems.append(f'{root}: no {RESULTS_FILE} in it or up to {depth} levels below')
        for hit in hits:
            found.setdefault(osp.abspath(hit), root)
    return [(root, path) for path, root in found.items()], problems


def _run_label(root: str, path: str) -> str:
    folder = osp.dirname(osp.abspath(path))
    root = osp.abspath(root)
    if osp.isfile(root) or folder == root:
        return osp.basename(folder)
    return osp.relpath(folder, root)


def _setting(bench: Dict[str, Any]) -> str:
    t = bench.get('throughput') or {}
    size = t.get('img_size') or []
    size_text = f'{size[0]}x{size[1]}' if len(size) == 2 and size[0] != size[1] else \
        (f'{size[0]}px' if size else '')
    parts = [str(t.get('device', '')), str(t.get('precision', '')),
             f'bs{t["batch_size"]}' if t.get('batch_size') else '', size_text,
             f'{t["clock"]} clock' if t.get('clock') not in (None, 'wall') else '']
    return ' '.join(p for p in parts if p)


def _family_dir(group: SeedGroup) -> Optional[str]:
    """The folder holding a group's ``seed<k>`` run folders (None: not seed folders)."""
    folders = {osp.dirname(osp.dirname(osp.abspath(run['_path']))) for run in group.runs}
    in_seed = all(SEED_FOLDER.match(osp.basename(osp.dirname(run['_path'])))
                  for run in group.runs)
    return folders.pop() if in_seed and len(folders) == 1 else None


def _row_from_group(group: SeedGroup) -> Tuple[Row, List[str]]:
    """One row for a group of seed runs (mean, std and per-seed values).

    img/s comes from a ``benchmark.json`` beside a run, else from one in the
    folder holding the group's ``seed<k>`` folders (one timing for the seeds:
    they share the architecture). Returns the row and notes on benchmark files
    that did not match.
    """
    data = group.runs[0]
    model = data.get('model') or {}
    arch = str(model.get('arch_name') or 'unknown')
    bench_runs = [run for run in group.runs if run.get('benchmark')]
    bench = bench_runs[0].get('benchmark') if bench_runs else {}
    notes: List[str] = []
    family = _family_dir(group)
    if not bench and family and osp.isfile(osp.join(family, BENCHMARK_FILE)):
        path = osp.join(family, BENCHMARK_FILE)  # one timing of the seeds' model
        content, error = load_json(path)
        entry, reason = (None, error) if error else match_benchmark(data, content)
        if entry is None:
            notes.append(f'{path}: not merged: {reason}')
        else:
            bench = dict(entry, file=path)
    ratio = ((bench.get('ratios') or {}).get('throughput')
             if isinstance(bench.get('ratios'), dict) else None)
    throughput = bench.get('throughput') or {}
    mem = bench.get('peak_memory_bytes')
    params, flops = data.get('params'), data.get('flops')
    metrics, metrics_std, per_seed = {}, {}, {}
    for key in dict.fromkeys(k for run in group.runs for k in run['metrics']):
        values = group.values(key)
        mean, std = mean_std(values)
        if mean is None:
            continue
        metrics[key] = mean
        if std is not None:
            metrics_std[key] = std
        if group.n > 1:
            per_seed[key] = values
    paths = [run['_path'] for run in group.runs]
    where = paths[0] if group.n == 1 else \
        osp.commonpath([osp.dirname(osp.abspath(p)) for p in paths])
    seeds_text = '' if group.n == 1 else \
        ', seeds ' + ','.join('?' if s is None else str(s) for s in group.seeds)
    return Row(
        task=data['task'], dataset=data['dataset'],
        model=str(model.get('display') or ARCH_NAMES.get(arch, arch)),
        label=group.label, arch=arch,
        removed_layers=list(data.get('removed_layers') or []),
        diluted_layers=list(data.get('diluted_layers') or []),
        metrics=metrics, metrics_std=metrics_std, per_seed=per_seed,
        params_m=params / 1e6 if params is not None else None,
        gflops=flops / 1e9 if flops is not None else None,
        img_per_s=throughput.get('img_per_s'),
        mem_mib=mem / 2**20 if isinstance(mem, (int, float)) else None,
        setting=_setting(bench) if bench else '',
        source=f'measured ({data.get("mode", "?")}{seeds_text}): {where}', reported=False,
        date=max((run.get('date') or '' for run in group.runs), default='') or None,
        path=paths[0], seeds=list(group.seeds),
        speed_ratio=ratio if isinstance(ratio, dict) and ratio.get('median') is not None
        else None, timed_together=bench.get('timed_together'),
        bench_name=bench.get('name')), notes


def rows_from_runs(paths: Sequence[str], depth: int = 2) -> Tuple[List[Row], List[str]]:
    """Rows of every readable ``results.json`` under ``paths``, seed runs merged.

    Runs that differ only in their seed become one row (mean, std, n and the
    per-seed values; :func:`nose_mm.benchmark.seeds.group_seed_runs`).

    Returns:
        tuple: ``(rows, problems)``; each problem names the file and what is
        wrong (unusable files are skipped, benchmark files that do not match
        are not merged, seed runs that do not match their siblings are kept
        apart).
    """
    files, problems = find_results(paths, depth)
    runs = []
    for root, path in files:
        data, issues = load_run(path)
        problems += issues
        if data is not None:
            data['_path'] = path
            label = _run_label(root, path)
            if SEED_FOLDER.match(label):  # name a seed run by its family too
                label = osp.join(osp.basename(osp.dirname(osp.dirname(osp.abspath(path)))),
                                 label)
            runs.append((label, data))
    groups, warnings = group_seed_runs(runs)
    rows = []
    for group in groups:
        row, notes = _row_from_group(group)
        rows.append(row)
        problems += notes
    return rows, problems + warnings


_REF_REQUIRED = ('id', 'task', 'dataset', 'model', 'method', 'metrics', 'source')


def load_reference(path: str) -> Tuple[List[Row], List[str]]:
    """Reported rows from a reference YAML (see ``benchmarks/reference.yml``).

    Returns:
        tuple: ``(rows, problems)``; a malformed entry is skipped and named.
    """
    import yaml
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        return [], [f'{path}: cannot be read ({exc.strerror or exc})']
    except yaml.YAMLError as exc:
        return [], [f'{path}: is not valid YAML ({exc})']
    if not isinstance(data, dict) or data.get('format') != REFERENCE_FORMAT or \
            not isinstance(data.get('references'), list):
        return [], [f'{path}: expected format: {REFERENCE_FORMAT} and a "references" list']
    rows, problems, ids = [], [], set()
    for i, ref in enumerate(data['references']):
        where = f'{path}: references[{i}]'
        if not isinstance(ref, dict):
            problems.append(f'{where}: not a mapping')
            continue
        missing = [k for k in _REF_REQUIRED if ref.get(k) in (None, '')]
        if missing:
            problems.append(f'{where}: missing {", ".join(missing)}')
            continue
        if ref['task'] not in TASKS:
            problems.append(f'{where}: task {ref["task"]!r} not one of {", ".join(TASKS)}')
            continue
        if ref.get('reported') is not True:
            problems.append(f'{where} ({ref["id"]}): reference rows must say reported: true')
            continue
        if ref['id'] in ids:
            problems.append(f'{where}: duplicate id {ref["id"]!r}')
            continue
        metrics = ref['metrics'] if isinstance(ref['metrics'], dict) else {}
        if not any(isinstance(v, (int, float)) for v in metrics.values()):
            problems.append(f'{where} ({ref["id"]}): no numeric metric')
            continue
        bad = [k for k in ('params_m', 'gflops') if ref.get(k) is not None
               and (isinstance(ref[k], bool) or not isinstance(ref[k], (int, float)))]
        if bad:
            problems.append(f'{where} ({ref["id"]}): ' + ', '.join(
                f'{k} is {ref[k]!r}, expected a number' for k in bad))
            continue
        ids.add(ref['id'])
        removed = ref.get('removed_layers')
        rows.append(Row(
            task=ref['task'], dataset=str(ref['dataset']), model=str(ref['model']),
            label=str(ref['method']), arch=str(ref.get('arch') or ref['model']),
            removed_layers=list(removed) if isinstance(removed, list) else None,
            metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
            params_m=ref.get('params_m'), gflops=ref.get('gflops'),
            source=f'reported: {ref["source"]}', reported=True, ref_id=str(ref['id']),
            baseline_id=ref.get('baseline')))
    return rows, problems


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------
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
    """Mark img/s timed in another run than the row's baseline; drop ratios to another model.

    Rows are checked against their own baseline (a table may hold several
    families, each timed with its baseline in its own run); rows without a
    baseline form one group, checked against their most common timing run.
    """
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
                                                 or row.timed_together != reference)
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
                      depth: int = 2) -> Tuple[List[Table], List[str]]:
    """Read runs (and references) and build the tables.

    Args:
        work_dirs (sequence of str): Where to look for ``results.json``.
        reference (str, optional): Reference YAML. Defaults to None (no
            reported rows).
        depth (int): Folder levels searched. Defaults to 2.

    Returns:
        tuple: ``(tables, problems)``.
    """
    rows, problems = rows_from_runs(work_dirs, depth)
    if reference:
        ref_rows, ref_problems = load_reference(reference)
        rows += ref_rows
        problems += ref_problems
    return build_tables(rows), problems


# ---------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------
def _num(value: Optional[float], digits: int = 2) -> str:
    return '' if value is None else f'{value:.{digits}f}'


def _size(value: Optional[float]) -> str:
    """Two decimals, or three significant digits below 1 (tiny test models)."""
    if value is None:
        return ''
    return f'{value:.2f}' if abs(value) >= 1 or value == 0 else f'{value:.3g}'


def _spread_text(row: Row) -> str:
    if row.reported or row.is_baseline or row.delta is None:
        return ''
    if row.beyond_spread is None:
        return 'spread unknown'
    return 'beyond' if row.beyond_spread else 'within'


def _cells(table: Table, fmt: str = 'md') -> List[List[str]]:
    out = []
    rank = 0
    main_key = MAIN_METRIC[table.task]
    for row in table.rows:
        if row.main is not None:
            rank += 1
        removed = '' if row.removed_layers is None else (
            str(row.removed_layers) if row.removed_layers else 'none')
        if row.is_baseline:
            delta = 'baseline'
        else:
            delta = '' if row.delta is None else f'{row.delta:+.2f}'
        ips = row.img_per_s
        cells = [str(rank) if row.main is not None else '', row.model, row.label, removed]
        for key, _ in _METRIC_COLUMNS[table.task]:
            mean, std = row.metrics.get(key), row.metrics_std.get(key)
            if fmt == 'csv':
                cells += [_num(mean), _num(std)]
            else:
                cells.append(_num(mean) + ('' if std is None or mean is None
                                           else f' ± {std:.2f}'))
        ratio = row.speed_ratio or {}
        if fmt == 'csv':
            speed = [_num(ratio.get(k), 3) for k in ('median', 'q1', 'q3')]
        else:
            speed = ['' if not ratio else f'{ratio["median"]:.3f} (IQR {ratio["q1"]:.3f}-'
                     f'{ratio["q3"]:.3f})']
        cells += ['' if row.reported else str(row.n), delta, _spread_text(row),
                  _size(row.params_m), _size(row.gflops),
                  '' if ips is None else _num(ips, 1 if ips >= 10 else 2)
                  + (' †' if row.speed_mark else ''), *speed,
                  _num(row.mem_mib, 0 if (row.mem_mib or 0) >= 10 else 1), row.setting]
        if fmt in ('csv', 'html'):
            cells.append(row.timed_together or '')
            seeds = '; '.join('?' if s is None else str(s) for s in row.seeds) \
                if len(row.seeds) > 1 else ''
            cells += [seeds, '; '.join(f'{v:.2f}' for v in row.per_seed.get(main_key, []))]
        out.append(cells + [row.source])
    return out


def _md_escape(text: str) -> str:
    """A cell or title as Markdown text: no HTML, no links or images, one table cell.

    Run names, datasets and model fields come from files anyone can write, and
    GitHub renders raw HTML and ``[text](url)`` / ``![](url)`` in tables.
    """
    text = html.escape(str(text), quote=False).replace('](', ']\\(')
    return text.replace('|', '\\|').replace('\r', ' ').replace('\n', ' ')


_NUMBER = re.compile(r'[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?')


def _csv_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text, not runs as a formula (OWASP's rule).

    Cells starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return get a
    leading ``'``, unless they are plain numbers (``-0.74``, ``+1.20``).
    """
    text = str(value)
    if text[:1] in ('=', '+', '-', '@', '\t', '\r') and not _NUMBER.fullmatch(text):
        return "'" + text
    return value


def _generated() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    return f'Generated by tools/leaderboard.py on {now}.'


def format_markdown(tables: Sequence[Table]) -> str:
    """GitHub-flavoured Markdown: one section and table per (task, dataset)."""
    lines = ['# Leaderboard', '', _generated(), '', _NOTES, '']
    if not tables:
        lines += ['No results.', '']
    for table in tables:
        grid = PrettyTable(columns(table.task), align='l')
        grid.set_style(TableStyle.MARKDOWN)
        grid.add_rows([[_md_escape(c) for c in cells] for cells in _cells(table)])
        lines += [f'## {_md_escape(table.title)}', '', grid.get_string(), '']
    return '\n'.join(lines)


def format_csv(tables: Sequence[Table]) -> str:
    """One CSV: ``Task``, ``Dataset`` and the union of the tasks' columns."""
    header: List[str] = ['Task', 'Dataset']
    for task in TASKS:
        header += [c for c in columns(task, 'csv') if c not in header]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(header)
    for table in tables:
        names = columns(table.task, 'csv')
        for cells in _cells(table, 'csv'):
            values = dict(zip(names, cells), Task=table.task, Dataset=table.dataset)
            writer.writerow([_csv_cell(values.get(c, '')) for c in header])
    return buf.getvalue()


_HTML_STYLE = ('body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;'
               'margin-bottom:2em}th,td{border:1px solid #ccc;padding:3px 8px;'
               'text-align:right}td:nth-child(2),td:nth-child(3),td:nth-child(4),'
               'td:nth-last-child(-n+2){text-align:left}tr.reported{color:#555;'
               'font-style:italic}p.notes{max-width:70em;color:#444}')


def format_html(tables: Sequence[Table]) -> str:
    """A standalone HTML page; reported rows have the class ``reported``."""
    esc = html.escape
    parts = ['<!DOCTYPE html>', '<html><head><meta charset="utf-8">',
             '<title>nose_mm leaderboard</title>', f'<style>{_HTML_STYLE}</style>',
             '</head><body>', '<h1>Leaderboard</h1>', f'<p>{esc(_generated())}</p>',
             f'<p class="notes">{esc(_NOTES)}</p>']
    if not tables:
        parts.append('<p>No results.</p>')
    for table in tables:
        parts += [f'<h2>{esc(table.title)}</h2>', '<table>', '<thead><tr>']
        parts += [f'<th>{esc(c)}</th>' for c in columns(table.task, 'html')]
        parts += ['</tr></thead>', '<tbody>']
        for row, cells in zip(table.rows, _cells(table, 'html')):
            cls = 'reported' if row.reported else 'measured'
            parts.append(f'<tr class="{cls}">' + ''.join(f'<td>{esc(c)}</td>' for c in cells)
                         + '</tr>')
        parts += ['</tbody>', '</table>']
    parts.append('</body></html>')
    return '\n'.join(parts) + '\n'


_FORMATTERS = {'md': format_markdown, 'csv': format_csv, 'html': format_html}


def render(tables: Sequence[Table], fmt: str) -> str:
    """The leaderboard as text in ``fmt`` (``'md'``, ``'csv'`` or ``'html'``)."""
    if fmt not in FORMATS:
        raise ValueError(f'format must be one of {", ".join(FORMATS)}, got {fmt!r}')
    return _FORMATTERS[fmt](tables)


def write_leaderboard(tables: Sequence[Table], out: str, fmt: str) -> None:
    """Write :func:`render` output to ``out`` atomically."""
    text = render(tables, fmt)

    def _write(tmp: str) -> None:
        with open(tmp, 'w', encoding='utf-8', newline='') as f:
            f.write(text)

    atomic_write(out, _write)


def plot_leaderboard(tables: Sequence[Table], out: str) -> int:
    """PNG of the main metric against throughput, one panel per table with points.

    Only rows with both a main metric and img/s can be placed (reported rows
    have no throughput measured here); seed rows carry their std as an error bar.
    Points are labelled with their run;
    the throughput setting is part of the label when a panel mixes several.

    Returns:
        int: Number of points plotted (a figure saying how to get points is
        written when there are none).
    """
    from matplotlib.figure import Figure

    from nose_mm.analysis.plots import save_figure
    panels = [(t, [r for r in t.rows if r.main is not None and r.img_per_s is not None])
              for t in tables]
    panels = [(t, rows) for t, rows in panels if rows]
    fig = Figure(figsize=(6.5 * max(1, len(panels)), 4.8))
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.axis('off')
        ax.text(0.5, 0.5, 'No run has both a metric and a throughput.\nMeasure one with\n'
                'tools/benchmark.py CONFIG --out WORK_DIR/benchmark.json',
                ha='center', va='center')
        save_figure(fig, out)
        return 0
    count = 0
    for i, (table, rows) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        mixed = len({r.setting for r in rows}) > 1
        for row in rows:
            marker = 's' if row.is_baseline else 'o'
            ax.errorbar([row.img_per_s], [row.main], yerr=None if row.main_std is None
                        else [row.main_std], fmt=marker, markersize=6, capsize=3)
            text = row.label + (f' [{row.setting}]' if mixed else '')
            ax.annotate(text, (row.img_per_s, row.main), textcoords='offset points',
                        xytext=(4, 4), fontsize=8)
            count += 1
        settings = sorted({r.setting for r in rows})
        ax.set_xlabel('img/s' + (f' ({settings[0]})' if len(settings) == 1 else ''))
        metric = dict(_METRIC_COLUMNS[table.task])[MAIN_METRIC[table.task]]
        ax.set_ylabel(f'{metric} (%)')
        ax.set_title(table.title)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out)
    return count
