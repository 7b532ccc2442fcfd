"""The built-in demo: the whole benchmark pipeline on scikit-learn's digits.

Writes the digit data unless present (:mod:`.data`), then runs the table of
steps of :mod:`.steps` (README, "The demo": baselines over 3 seeds, NOSE /
random / first-K selection, dilution, pruning, test, NOSE + ToMe, a DeiT-III
family, UperNet transfer, interleaved timings, the leaderboard). Every step
runs one of the project's command-line tools, as a user would, but in one of
the long-lived worker processes of :mod:`.scheduler` (one per core) instead
of a new interpreter per step, its output in ``<work_dir>/logs/<step>.log``;
the timings run alone. The leaderboard is printed and summarised in
``<work_dir>/summary.json``.
"""
import json
import os
import os.path as osp
import time
from typing import Callable, Dict, Sequence

from nose_mm.utils.cli import UserError
from nose_mm.utils.fileio import atomic_write, atomic_write_json

from .data import build_digits_classification, build_digits_segmentation
from .reproducibility import machine_record, near_ties, report_lines
from .scheduler import Workers, run_steps
from .steps import (DEMO_FAMILIES, DEMO_METHODS, DEMO_SEEDS, MEMORY_BUDGET_GB, WORKER_THREADS,
                    demo_steps)

#: written last into a demo data folder: a folder without it is rebuilt
DATA_DONE = '.nose_mm_demo_data_complete'


def _build_once(root: str, build: Callable[[], None]) -> bool:
    """Build demo data into ``root`` unless a previous build completed there."""
    if osp.isfile(osp.join(root, DATA_DONE)):
        return False
    if osp.isdir(root) and os.listdir(root):  # never delete a folder we did not finish
        raise UserError(f'{root} exists but holds no completed demo data (no {DATA_DONE}, '
                        f'e.g. an interrupted build): remove it or choose another folder')
    build()

    def mark(tmp: str) -> None:
        with open(tmp, 'w') as f:
            f.write('complete\n')

    atomic_write(osp.join(root, DATA_DONE), mark)
    return True


def _check(methods: Sequence[str], seeds: list, workers: int, families: list) -> None:
    """Raise ValueError naming the bad argument (before anything is written)."""
    bad = [m for m in methods if m not in DEMO_METHODS]
    if bad or 'nose' not in methods:
        raise ValueError(f'methods must include "nose" and come from {DEMO_METHODS}, got '
                         f'{list(methods)}')
    if not seeds or seeds[0] != 0 or len(set(seeds)) != len(seeds) or \
            not all(isinstance(k, int) and k >= 0 for k in seeds):
        raise ValueError(f'seeds must be distinct integers >= 0 starting with 0, got {seeds}')
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f'workers must be an integer >= 1, got {workers!r}')
    bad = [f for f in families if f not in DEMO_FAMILIES]
    if bad or len(set(families)) != len(families):
        raise ValueError(f'families must be distinct names from {sorted(DEMO_FAMILIES)}, got '
                         f'{families}')


def run_demo(work_dir: str = 'work_dirs/demo', data_root: str = 'data/digits',
             seg_data_root: str = 'data/digits_seg', quick: bool = False,
             methods: Sequence[str] = DEMO_METHODS, seeds: Sequence[int] = DEMO_SEEDS,
             workers: int = 2,
             families: Sequence[str] = tuple(DEMO_FAMILIES)) -> Dict[str, object]:
    """Run the demo pipeline; return a summary (also written to ``summary.json``).

    Args:
        work_dir (str): Where every run, log, plot and the leaderboard go.
            Defaults to ``'work_dirs/demo'``.
        data_root (str): Digit classification data (written if missing).
            Defaults to ``'data/digits'``.
        seg_data_root (str): Digit segmentation data (written if missing).
            Defaults to ``'data/digits_seg'``.
        quick (bool): A shortened run (a few epochs / iterations on a subset)
            for tests; the numbers are then not meaningful. Defaults to False.
        methods (sequence of str): Selection methods to compare, from
            ``DEMO_METHODS``; ``'nose'`` must be among them. Defaults to all.
        seeds (sequence of int): Seeds of the classification runs (distinct,
            seed 0 first: its baseline is selected on and fine-tuned).
            Defaults to ``DEMO_SEEDS``.
        workers (int): Worker processes (one per core). Defaults to 2.
        families (sequence of str): Further backbone families from
            ``DEMO_FAMILIES`` run through the classification pipeline with
            NOSE (baseline seeds, selection, dilution, pruning, test, their own
            benchmark run). Defaults to all (``('deit3', )``).

    Returns:
        dict: Every leaderboard row of the demo (mean, std, n, per-seed
        values, params, FLOPs, throughput ratio with its spread), the
        selections and the step timings.

    Raises:
        ValueError: A bad argument (nothing is written then).
        UserError: A data folder left by an interrupted build, or a failed
            step (``DemoStepFailed``, naming its log).
    """
    seeds, families = list(seeds), list(families)
    _check(methods, seeds, workers, families)
    import mmseg.models  # noqa: F401 - imported once here, shared by the forked workers

    start = time.time()
    work = osp.abspath(work_dir)
    data_root, seg_root = osp.abspath(data_root), osp.abspath(seg_data_root)
    if _build_once(data_root, lambda: build_digits_classification(data_root, size=16)):
        print(f'[demo] wrote digit images to {data_root}')
    seg_data = osp.join(seg_root, 'ADEChallengeData2016')
    if _build_once(seg_root, lambda: build_digits_segmentation(seg_root)):
        print(f'[demo] wrote digit canvases to {seg_data}')
    os.makedirs(osp.join(work, 'checkpoints'), exist_ok=True)

    plan = demo_steps(work, data_root, seg_data, quick, methods, seeds, families)
    pool = Workers(workers, WORKER_THREADS)
    try:
        wall, cpu = run_steps(plan['steps'], pool, work)
    finally:
        pool.close()

    selections, ties = {}, {}
    for key, path in plan['selections'].items():
        with open(path) as f:
            record = json.load(f)
        selections[key] = sorted(record['selection'])
        ties[key] = near_ties(record)
    summary = _summarize(plan['cls_dirs'] + plan['seg_dirs'], selections)
    summary['machine'] = machine_record(workers, WORKER_THREADS)
    summary['near_ties'] = {k: v for k, v in ties.items() if v}
    summary['seconds'] = round(time.time() - start, 1)
    summary['timings'] = {k: round(v, 1) for k, v in wall.items()}
    summary['cpu_seconds'] = {k: round(v, 1) for k, v in cpu.items()}
    summary['workers'] = workers
    atomic_write_json(osp.join(work, 'summary.json'), summary)
    with open(plan['board']) as f:
        print('\n' + f.read())
    _print_summary(summary)
    return summary


def _summarize(run_dirs: Sequence[str], selections: Dict[str, list]) -> dict:
    """The demo's leaderboard rows as a dict (label -> numbers)."""
    from nose_mm.benchmark.leaderboard import build_tables, rows_from_runs
    rows, _ = rows_from_runs(run_dirs)
    out: Dict[str, dict] = {'selections': selections, 'classification': {},
                            'segmentation': {}}
    for table in build_tables(rows):
        for row in table.rows:
            out[table.task][row.label] = {
                'metric': row.main, 'std': row.main_std, 'n': row.n, 'seeds': row.seeds,
                'per_seed': row.per_seed.get('top1' if table.task == 'classification'
                                             else 'mIoU', []),
                'removed_layers': row.removed_layers, 'params': None if row.params_m is None
                else round(row.params_m * 1e6), 'gflops': row.gflops,
                'img_per_s': row.img_per_s, 'throughput_ratio': row.speed_ratio,
                'mem_mib': row.mem_mib, 'working_load': row.working_load,
                'timed_together': row.timed_together, 'delta': row.delta,
                'beyond_spread': row.beyond_spread}
    return out


def _fmt(value, spec='.2f'):
    return '-' if value is None else format(value, spec)


def _print_summary(summary: dict) -> None:
    for task, metric in (('classification', 'top-1'), ('segmentation', 'mIoU')):
        for label, row in summary[task].items():
            spread = '' if row['std'] is None else f" ± {row['std']:.2f}"
            ratio = row['throughput_ratio'] or {}
            speed = '' if not ratio else (
                f", throughput x{_fmt(ratio.get('median'), '.3f')} "
                f"[IQR {_fmt(ratio.get('q1'), '.3f')}-{_fmt(ratio.get('q3'), '.3f')}]")
            ips = '' if row['img_per_s'] is None else f", {row['img_per_s']:.1f} img/s"
            if row['working_load']:
                ips += f", working load {row['working_load']} @ {MEMORY_BUDGET_GB} GiB"
            print(f"[demo] {label:<18} {metric} {_fmt(row['metric'])}{spread} "
                  f"(n={row['n']}), removed {row['removed_layers']}{speed}{ips}")
    for line in report_lines(summary['machine'], summary['near_ties'], summary['selections']):
        print(f'[demo] {line}')
    print(f"[demo] finished in {summary['seconds']:.0f} s with {summary['workers']} workers "
          f"({sum(summary['cpu_seconds'].values()):.0f} s CPU in the steps)")
