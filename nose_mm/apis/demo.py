"""The built-in demo: the whole benchmark pipeline on scikit-learn's digits.

Each step runs the project's own command-line tool in a subprocess, exactly as
a user would (its log goes to ``<work_dir>/logs/<step>.log``):

1. write the digit data (ImageNet layout for classification, ADE20k layout for
   segmentation) unless present;
2. train the baseline ViT (``configs/demo/deit-demo_baseline_digits-16px.py``);
3. select attention layers to remove with NOSE, random and first-K
   (``tools/nose_select.py``), and plot the NOSE TE heatmap;
4. per selection: dilution fine-tune to lam = 0 (``NoseSelectionHook`` with the
   selection file + ``DilutionHook``), ``tools/prune.py``, ``tools/test.py`` on
   the pruned model, ``tools/benchmark.py`` pruned vs baseline;
5. UperNet on the digit canvases from the baseline and each pruned backbone
   (mIoU);
6. ``tools/leaderboard.py`` over all runs (markdown + accuracy/throughput PNG).

Run-specific settings (data roots, checkpoints, selection files, removed
layers) go into small derived configs under ``<work_dir>/configs/`` that
inherit the demo configs, so every run's ``results.json`` names a real config.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

__all__ = ['DEMO_METHODS', 'run_demo']

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIGS = osp.join(REPO, 'configs', 'demo')
#: selection methods compared by the demo (tools/nose_select.py --method)
DEMO_METHODS = ('nose', 'random', 'first')
#: layers removed out of the demo ViT's 6
NUM_REMOVED = 2


class _Pipeline:
    """Runs the steps, times them and keeps their logs."""

    def __init__(self, work_dir: str, quick: bool) -> None:
        self.work_dir = osp.abspath(work_dir)
        self.quick = quick
        self.logs = osp.join(self.work_dir, 'logs')
        self.cfg_dir = osp.join(self.work_dir, 'configs')
        os.makedirs(self.logs, exist_ok=True)
        os.makedirs(self.cfg_dir, exist_ok=True)
        self.timings: Dict[str, float] = {}

    def tool(self, step: str, tool: str, *args) -> str:
        """Run ``python tools/<tool> args``; return its stdout. Raise on failure."""
        cmd = [sys.executable, osp.join(REPO, 'tools', tool), *map(str, args)]
        env = dict(os.environ)
        env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
        log = osp.join(self.logs, f'{step}.log')
        start = time.time()
        print(f'[demo] {step:<22} {tool} ...', end='', flush=True)
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        with open(log, 'w') as f:
            f.write('$ ' + ' '.join(cmd) + '\n' + proc.stdout + proc.stderr)
        self.timings[step] = time.time() - start
        if proc.returncode != 0:
            print(' FAILED')
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-25:]
            raise RuntimeError(f'demo step {step!r} failed (exit {proc.returncode}); log: {log}\n'
                               + '\n'.join(tail))
        print(f' {self.timings[step]:5.1f} s')
        return proc.stdout

    def derived_config(self, name: str, base: str, settings: Sequence[str]) -> str:
        """Write ``<work_dir>/configs/<name>.py`` inheriting ``base`` plus ``settings``."""
        path = osp.join(self.cfg_dir, f'{name}.py')
        text = [f'_base_ = [{base!r}]'] + list(settings)
        with open(path, 'w') as f:
            f.write('\n'.join(text) + '\n')
        return path

    def dir(self, *parts: str) -> str:
        return osp.join(self.work_dir, *parts)


#: written last into a demo data folder: a folder without it is rebuilt
DATA_DONE = '.nose_mm_demo_data_complete'


def _build_once(root: str, build) -> bool:
    """Build demo data into ``root`` unless a previous build completed there."""
    if osp.isfile(osp.join(root, DATA_DONE)):
        return False
    if osp.isdir(root) and os.listdir(root):  # never delete a folder we did not finish
        raise RuntimeError(f'{root} exists but holds no completed demo data (no {DATA_DONE}, '
                           f'e.g. an interrupted build): remove it or choose another folder')
    build()
    with open(osp.join(root, DATA_DONE), 'w') as f:
        f.write('complete\n')
    return True


def _last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def _data_settings(root: str) -> List[str]:
    return [f'train_dataloader = dict(dataset=dict(data_root={root!r}))',
            f'val_dataloader = dict(dataset=dict(data_root={root!r}))',
            f'test_dataloader = dict(dataset=dict(data_root={root!r}))']


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def run_demo(work_dir: str = 'work_dirs/demo', data_root: str = 'data/digits',
             seg_data_root: str = 'data/digits_seg', quick: bool = False,
             methods: Sequence[str] = DEMO_METHODS) -> Dict[str, object]:
    """Run the demo pipeline; return a summary (also written to ``summary.json``).

    Args:
        work_dir (str): Where every run, log, plot and the leaderboard go.
            Defaults to ``'work_dirs/demo'``.
        data_root (str): Digit classification data (written if missing).
            Defaults to ``'data/digits'``.
        seg_data_root (str): Digit segmentation data (written if missing).
            Defaults to ``'data/digits_seg'``.
        quick (bool): A shortened run (a few epochs / iterations) for tests;
            the numbers are then not meaningful. Defaults to False.
        methods (sequence of str): Selection methods to compare, from
            :data:`DEMO_METHODS`; ``'nose'`` must be among them. Defaults to all.

    Returns:
        dict: Top-1 / mIoU / params / throughput of each run and the step timings.
    """
    bad = [m for m in methods if m not in DEMO_METHODS]
    if bad or 'nose' not in methods:
        raise ValueError(f'methods must include "nose" and come from {DEMO_METHODS}, got '
                         f'{list(methods)}')
    from nose_mm.datasets import build_digits_classification, build_digits_segmentation
    from nose_mm.utils.fileio import atomic_write, atomic_write_json

    start = time.time()
    p = _Pipeline(work_dir, quick)
    data_root, seg_root = osp.abspath(data_root), osp.abspath(seg_data_root)
    if _build_once(data_root, lambda: build_digits_classification(data_root, size=16)):
        print(f'[demo] wrote digit images to {data_root}')
    seg_data = osp.join(seg_root, 'ADEChallengeData2016')
    if _build_once(seg_root, lambda: build_digits_segmentation(seg_root)):
        print(f'[demo] wrote digit canvases to {seg_data}')

    # -- 1. baseline ----------------------------------------------------------
    quick_cls = ['train_cfg = dict(max_epochs=3, val_interval=3)',
                 'default_hooks = dict(checkpoint=dict(interval=3))'] if quick else []
    base_cfg = p.derived_config('baseline', osp.join(DEMO_CONFIGS,
                                                     'deit-demo_baseline_digits-16px.py'),
                                _data_settings(data_root) + quick_cls)
    p.tool('train baseline', 'train.py', base_cfg, '--work-dir', p.dir('baseline'))
    base_ckpt = _last_checkpoint(p.dir('baseline'))

    # -- 2. selections --------------------------------------------------------
    selections = {}
    for method in methods:
        out = p.dir(f'selection_{method}.json')
        p.tool(f'select {method}', 'nose_select.py', base_cfg, base_ckpt, '--num-layers',
               NUM_REMOVED, '--num-samples', 64 if quick else 512, '--batch-size', 64,
               '--method', method, '--seed', 0, '--no-progress', '--out', out)
        selections[method] = sorted(_read_json(out)['selection'])
    p.tool('plot TE heatmap', 'analysis/plot_te_heatmap.py', p.dir('selection_nose.json'),
           '--out', p.dir('plots'))

    # -- 3. dilute, prune, test, benchmark ------------------------------------
    quick_ft = ['train_cfg = dict(max_epochs=2, val_interval=2)',
                'default_hooks = dict(checkpoint=dict(interval=2))',
                "custom_hooks = [dict(type='NoseSelectionHook', selection_file={sel!r}),"
                " dict(type='DilutionHook', schedule='linear', begin=0, end=1)]"] if quick else []
    pruned_ckpts = {}
    for method in methods:
        sel = p.dir(f'selection_{method}.json')
        settings = _data_settings(data_root) + [
            f'load_from = {base_ckpt!r}',
            "custom_hooks = [dict(type='NoseSelectionHook', selection_file=" + repr(sel) + '),'
            " dict(type='DilutionHook', schedule='linear', begin=0, end=12)]",
        ] + [s.format(sel=sel) for s in quick_ft]
        ft_cfg = p.derived_config(f'dilute_{method}',
                                  osp.join(DEMO_CONFIGS, 'deit-demo_nose_digits-16px.py'),
                                  settings)
        p.tool(f'dilute {method}', 'train.py', ft_cfg, '--work-dir', p.dir(f'dilute_{method}'))
        pruned = p.dir(f'pruned_{method}.pth')
        p.tool(f'prune {method}', 'prune.py', _last_checkpoint(p.dir(f'dilute_{method}')), pruned)
        pruned_ckpts[method] = pruned
        pruned_cfg = p.derived_config(
            f'pruned_{method}', osp.join(DEMO_CONFIGS, 'deit-demo_pruned_digits-16px.py'),
            _data_settings(data_root) +
            [f'model = dict(backbone=dict(removed_layers={selections[method]}))'])
        p.tool(f'test pruned {method}', 'test.py', pruned_cfg, pruned, '--work-dir',
               p.dir(f'pruned_{method}'))
        bench = p.dir(f'pruned_{method}', 'benchmark.json')
        p.tool(f'benchmark {method}', 'benchmark.py', base_cfg, base_ckpt, '--compare',
               pruned_cfg, pruned, '--batch-size', 256, '--repeats', 3 if quick else 15,
               '--warmup', 1 if quick else 3, '--device', 'cpu', '--out', bench)
        if method == 'nose':  # the same measurement serves the baseline row
            atomic_write(p.dir('baseline', 'benchmark.json'),
                         lambda tmp, src=bench: shutil.copyfile(src, tmp))

    # -- 4. segmentation transfer ---------------------------------------------
    quick_seg = ['train_cfg = dict(max_iters=4, val_interval=4)',
                 'default_hooks = dict(checkpoint=dict(interval=4))',
                 "param_scheduler = [dict(type='PolyLR', power=1.0, begin=0, end=4, "
                 'by_epoch=False)]'] if quick else []
    seg_root_settings = [
        f'train_dataloader = dict(dataset=dict(data_root={seg_data!r}))',
        f'val_dataloader = dict(dataset=dict(data_root={seg_data!r}))',
        f'test_dataloader = dict(dataset=dict(data_root={seg_data!r}))']
    backbones = [('baseline', base_ckpt, None)] + \
        [(m, pruned_ckpts[m], selections[m]) for m in methods]
    for name, ckpt, removed in backbones:
        seg_cfg = p.derived_config(
            f'seg_{name}', osp.join(DEMO_CONFIGS, 'upernet_deit-demo_digits-seg-64px.py'),
            seg_root_settings + quick_seg + [
                f'model = dict(backbone=dict(removed_layers={removed!r}, '
                f'init_cfg=dict(checkpoint={ckpt!r})))'])
        p.tool(f'segmentation {name}', 'train.py', seg_cfg, '--work-dir', p.dir(f'seg_{name}'))

    # -- 5. leaderboard -------------------------------------------------------
    run_dirs = [p.dir('baseline')] + [p.dir(f'pruned_{m}') for m in methods] + \
        [p.dir(f'seg_{name}') for name, _, _ in backbones]
    # the demo's own tables (printed), then md / csv / html with the published rows
    board = p.dir('leaderboard_demo.md')
    p.tool('leaderboard', 'leaderboard.py', *run_dirs, '--no-reference', '--format', 'md',
           '--out', board, '--plot', p.dir('plots', 'accuracy_vs_throughput.png'))
    for fmt in ('md', 'csv', 'html'):
        p.tool(f'leaderboard {fmt}', 'leaderboard.py', *run_dirs, '--format', fmt, '--out',
               p.dir(f'leaderboard.{fmt}'))

    summary = _summarize(p, methods, selections)
    summary['seconds'] = round(time.time() - start, 1)
    summary['timings'] = {k: round(v, 1) for k, v in p.timings.items()}
    atomic_write_json(p.dir('summary.json'), summary)
    with open(board) as f:
        print('\n' + f.read())
    _print_summary(summary)
    return summary


def _summarize(p: _Pipeline, methods: Sequence[str], selections: Dict[str, list]) -> dict:
    def metric(folder, key):
        data = _read_json(p.dir(folder, 'results.json')) or {}
        return (data.get('metrics') or {}).get(key), data.get('params')

    base_top1, base_params = metric('baseline', 'top1')
    out = {'baseline': {'top1': base_top1, 'params': base_params}, 'pruned': {}}
    for method in methods:
        top1, params = metric(f'pruned_{method}', 'top1')
        bench = _read_json(p.dir(f'pruned_{method}', 'benchmark.json')) or {}
        ratios = bench.get('ratios') or {}
        out['pruned'][method] = {
            'removed_layers': selections[method], 'top1': top1, 'params': params,
            'throughput_ratio': ratios.get('throughput'), 'flop_ratio': ratios.get('flops')}
    out['segmentation'] = {name: metric(f'seg_{name}', 'mIoU')[0]
                           for name in ('baseline', *methods)}
    return out


def _fmt(value, spec='.2f'):
    return '-' if value is None else format(value, spec)


def _print_summary(summary: dict) -> None:
    base = summary['baseline']
    print(f"[demo] baseline top-1 {_fmt(base['top1'])} (chance 10.00), "
          f"{_fmt(base['params'], ',')} params")
    for method, row in summary['pruned'].items():
        delta = None if row['top1'] is None or base['top1'] is None else \
            row['top1'] - base['top1']
        print(f"[demo] {method:<6} removed {row['removed_layers']}: top-1 {_fmt(row['top1'])} "
              f"({_fmt(delta, '+.2f')} vs baseline), {_fmt(row['params'], ',')} params, "
              f"throughput x{_fmt(row['throughput_ratio'], '.3f')} "
              f"(FLOPs x{_fmt(row['flop_ratio'], '.3f')})")
    seg = ', '.join(f'{name} {_fmt(value)}' for name, value in summary['segmentation'].items())
    print(f'[demo] UperNet mIoU by backbone: {seg}')
    print(f"[demo] finished in {summary['seconds']:.0f} s")
