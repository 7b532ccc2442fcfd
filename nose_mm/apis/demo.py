"""The built-in demo: the whole benchmark pipeline on scikit-learn's digits.

Every step runs one of the project's command-line tools, as a user would, but
inside two long-lived worker processes (one per core; see :class:`_Workers`)
instead of a new interpreter per step: the tool's ``main(argv)`` with the
same arguments (:func:`nose_mm.apis.inprocess.run_tool`), its output in
``<work_dir>/logs/<step>.log``. Steps run as soon as what they need exists;
the throughput measurements run alone.

1. write the digit data (ImageNet layout for classification, ADE20k layout for
   segmentation) unless present;
2. train the baseline ViT (``configs/demo/deit-demo_baseline_digits-16px.py``)
   with seeds 0, 1, 2 (``baseline/seed<k>``);
3. select attention layers to remove with NOSE, random and first-K
   (``tools/nose_select.py``) on the seed-0 baseline, and plot the NOSE TE
   heatmap;
4. per selection and seed: dilution fine-tune of the seed-0 baseline to
   lam = 0 (``NoseSelectionHook`` + ``DilutionHook``, ``randomness.seed=k``),
   ``tools/prune.py``, ``tools/test.py`` on the pruned model; the pruned NOSE
   models are also tested with token merging (ToMe, :data:`TOME`);
5. the same classification pipeline with NOSE on each family of
   :data:`DEMO_FAMILIES` (a DeiT-III-style model the size of the ViT:
   ``deit3_baseline/seed<k>``, ``deit3_pruned_nose/seed<k>``);
6. UperNet on the digit canvases from the seed-0 baseline and each seed-0
   pruned backbone (mIoU);
7. ``tools/benchmark.py`` runs, each alone on the machine: the baseline,
   every pruned model and NOSE + ToMe timed interleaved (ratios to the
   baseline with their spread); each family with its own baseline; the
   UperNet models likewise;
8. ``tools/leaderboard.py`` over all runs: one row per model, mean ± std over
   the seeds (each family's rows compared with its own baseline).

The seeds measure the run-to-run spread of what each row trains: the
baseline's training from scratch, the fine-tune of one baseline (seed 0) for
the pruned rows (the selection is made once, on that baseline: a paired
comparison of the methods). Run-specific settings (data roots, selection
files, removed layers) go into small derived configs under
``<work_dir>/configs/``; checkpoints and seeds go on the command line, so the
seed runs of a step share one config.
"""
import json
import multiprocessing
import os
import os.path as osp
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from nose_mm.utils.cli import UserError

__all__ = ['DEMO_FAMILIES', 'DEMO_METHODS', 'DEMO_SEEDS', 'TOME', 'DemoFamily', 'run_demo']

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIGS = osp.join(REPO, 'configs', 'demo')
#: selection methods compared by the demo (tools/nose_select.py --method)
DEMO_METHODS = ('nose', 'random', 'first')
#: seeds of every classification row
DEMO_SEEDS = (0, 1, 2)
#: layers removed out of the demo ViT's 6
NUM_REMOVED = 2
#: Token merging on the pruned NOSE model at test time. The demo ViT sees 16
#: patch tokens + CLS (16 px, patch 4); 4 of its 6 layers keep attention. From
#: the second of them on (start=1, the reference's setting) each merges r = 4
#: pairs: 16 -> 12 -> 8 -> 4 patch tokens, 75% of them merged by the last layer,
#: the share of the reference's DeiT-B 40% + r = 24 (6 merging layers x 24 of 196).
TOME = dict(r=4, start=1, prop_attn=True)
#: threads per worker (the demo ViT is too small for intra-op parallelism)
WORKER_THREADS = 1


class DemoStepFailed(UserError):
    """A demo step (one tool run) exited with an error; its log says why."""


@dataclass
class _Step:
    """One tool run: ``tools/<tool> args`` once every step in ``after`` is done."""

    name: str
    tool: str
    args: Union[Sequence, Callable[[], Sequence]]
    after: Tuple[str, ...] = ()
    alone: bool = False  # a timing: nothing else runs meanwhile


def _worker_main(conn, threads: int) -> None:
    """A worker: run ``(name, tool, argv, log)`` jobs until ``None``; reply with the status."""
    import torch
    torch.set_num_threads(threads)
    from nose_mm.apis.inprocess import run_tool
    while True:
        job = conn.recv()
        if job is None:
            return
        name, tool, argv, log = job
        wall, cpu = time.time(), time.process_time()
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        with open(log, 'w') as f:
            f.write(f'$ python tools/{tool} ' + ' '.join(argv) + '\n')
            f.flush()
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            try:
                status = run_tool(tool, argv)
            except BaseException:  # noqa: BLE001 - reported with its traceback in the log
                traceback.print_exc()
                status = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
        conn.send((name, status, time.time() - wall, time.process_time() - cpu))


class _Workers:
    """Worker processes forked after the imports, each running tools in-process."""

    def __init__(self, count: int, threads: int = WORKER_THREADS) -> None:
        ctx = multiprocessing.get_context('fork')
        self.conns, self.procs = [], []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, threads), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs):
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


class _Pipeline:
    """Runs the steps on the workers, times them and keeps their logs."""

    def __init__(self, work_dir: str, quick: bool) -> None:
        self.work_dir = osp.abspath(work_dir)
        self.quick = quick
        self.logs = osp.join(self.work_dir, 'logs')
        self.cfg_dir = osp.join(self.work_dir, 'configs')
        os.makedirs(self.logs, exist_ok=True)
        os.makedirs(self.cfg_dir, exist_ok=True)
        self.timings: Dict[str, float] = {}
        self.cpu: Dict[str, float] = {}

    def run(self, steps: Sequence[_Step], workers: _Workers) -> None:
        """Run ``steps`` (list order = priority) on ``workers``; raise on the first failure."""
        pending = list(steps)
        names = {s.name for s in steps}
        for step in steps:
            missing = [d for d in step.after if d not in names]
            if missing:
                raise ValueError(f'step {step.name!r} waits for unknown steps {missing}')
        idle = list(range(len(workers.conns)))
        running: Dict[int, _Step] = {}
        done = set()
        while pending or running:
            while idle and not any(s.alone for s in running.values()):
                ready = next((s for s in pending if all(d in done for d in s.after)), None)
                if ready is None or (ready.alone and running):
                    break
                pending.remove(ready)
                worker = idle.pop(0)
                args = ready.args() if callable(ready.args) else ready.args
                log = osp.join(self.logs, ready.name.replace(' ', '_') + '.log')
                workers.conns[worker].send((ready.name, ready.tool, [str(a) for a in args],
                                            log))
                running[worker] = ready
                print(f'[demo] start  {ready.name}', flush=True)
            if not running:
                raise RuntimeError(f'demo steps wait for each other: '
                                   f'{[s.name for s in pending]}')
            by_conn = {workers.conns[w]: w for w in running}
            for conn in wait(list(by_conn)):
                worker = by_conn[conn]
                step = running.pop(worker)
                try:
                    name, status, seconds, cpu = conn.recv()
                except EOFError:
                    name, status, seconds, cpu = step.name, 'died', 0.0, 0.0
                idle.append(worker)
                self.timings[name], self.cpu[name] = seconds, cpu
                log = osp.join(self.logs, name.replace(' ', '_') + '.log')
                if status != 0:
                    tail = open(log).read().strip().splitlines()[-25:] \
                        if osp.isfile(log) else []
                    print(f'[demo] step {name!r} failed; the end of {log}:\n'
                          + '\n'.join(tail), file=sys.stderr, flush=True)
                    raise DemoStepFailed(f'demo step {name!r} failed (exit {status}); its log: '
                                         f'{log}')
                done.add(name)
                print(f'[demo] done   {name:<28} {seconds:6.1f} s ({cpu:5.1f} s CPU)',
                      flush=True)

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
        raise UserError(f'{root} exists but holds no completed demo data (no {DATA_DONE}, '
                           f'e.g. an interrupted build): remove it or choose another folder')
    build()
    with open(osp.join(root, DATA_DONE), 'w') as f:
        f.write('complete\n')
    return True


def _last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def _data_settings(root: str, subset: Optional[Dict[str, int]] = None) -> List[str]:
    """Config lines setting every loader's data root (and ``indices``: the first N images)."""
    subset = subset or {}
    lines = []
    for split in ('train', 'val', 'test'):
        extra = f', indices={subset[split]}' if split in subset else ''
        lines.append(f'{split}_dataloader = dict(dataset=dict(data_root={root!r}{extra}))')
    return lines


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _benchmark_args(models: Sequence[Tuple[str, str]], out: str, quick: bool,
                    batch_size: int, repeats: int = 15) -> List[str]:
    """``tools/benchmark.py`` arguments timing ``models`` (the first is the baseline) together."""
    (base_cfg, base_ckpt), others = models[0], models[1:]
    args = [base_cfg, base_ckpt]
    for cfg, ckpt in others:
        args += ['--compare', cfg, ckpt]
    return args + ['--batch-size', batch_size, '--repeats', 3 if quick else repeats,
                   '--warmup', 1 if quick else 3, '--device', 'cpu', '--threads',
                   WORKER_THREADS, '--clock', 'process', '--no-memory', '--out', out]


def _place_benchmark(src: str, run_dirs: Sequence[str]) -> None:
    """Copy one benchmark.json into the folder of every run it measured (atomically)."""
    from nose_mm.benchmark.info import BENCHMARK_FILE
    from nose_mm.utils.fileio import atomic_write
    for folder in run_dirs:
        atomic_write(osp.join(folder, BENCHMARK_FILE),
                     lambda tmp: shutil.copyfile(src, tmp))


@dataclass(frozen=True)
class DemoFamily:
    """A backbone family the demo runs through the classification pipeline.

    Args:
        key (str): Prefix of the family's run folders, files and step names
            (``'deit3'``: ``deit3_baseline/seed0``); ``''`` for the demo ViT.
        baseline (str): Baseline config under ``configs/demo/`` (trained per seed).
        nose (str): Dilution fine-tune config (its ``NoseSelectionHook`` gets
            the selection file, ``load_from`` the seed-0 baseline).
        pruned (str): Pruned-model config (``removed_layers`` set from the selection).
    """

    key: str
    baseline: str
    nose: str
    pruned: str

    def name(self, what: str) -> str:
        """``what`` prefixed with the family key (folder and file names)."""
        return f'{self.key}_{what}' if self.key else what


#: the demo's main model: a 6-layer DeiT-style ViT, every selection method, 3 seeds
VIT = DemoFamily('', 'deit-demo_baseline_digits-16px.py', 'deit-demo_nose_digits-16px.py',
                 'deit-demo_pruned_digits-16px.py')
#: further families run through the same pipeline (baseline seeds, NOSE selection,
#: dilution, pruning, test, benchmark against their own baseline, leaderboard)
DEMO_FAMILIES = {
    'deit3': DemoFamily('deit3', 'deit3-demo-l6_baseline_digits-16px.py',
                        'deit3-demo-l6_nose_digits-16px.py',
                        'deit3-demo-l6_pruned_digits-16px.py'),
}


def _seeded(k: int) -> List[str]:
    return ['--cfg-options', f'randomness.seed={k}']


class _Classification:
    """The classification steps of one family: baselines per seed, selections on
    the seed-0 baseline, and per selection and seed dilute -> prune -> test.

    ``baselines[k]``, ``selects`` and ``chains[k]`` (the steps of seed ``k``) are
    step lists; run folders are ``<family>_baseline/seed<k>`` and
    ``<family>_pruned_<method>/seed<k>`` (no prefix for the demo ViT).
    """

    def __init__(self, p: _Pipeline, family: DemoFamily, methods: Sequence[str],
                 seeds: Sequence[int], settings: Dict[str, List[str]]) -> None:
        self.p, self.family, self.methods = p, family, tuple(methods)
        self._selections: Dict[str, List[int]] = {}
        data = settings['data']
        self.base_cfg = p.derived_config(family.name('baseline'),
                                         osp.join(DEMO_CONFIGS, family.baseline),
                                         data + settings['quick_cls'])
        self._data, self._quick_ft = data, settings['quick_ft']
        self.baselines = [
            _Step(self.step('train', 'baseline', k), 'train.py',
                  [self.base_cfg, '--work-dir', self.run_dir('baseline', k), *_seeded(k)])
            for k in seeds]
        base0 = self.step('train', 'baseline', 0)
        self.selects = [
            _Step(self.step('select', m), 'nose_select.py',
                  lambda m=m: [self.base_cfg, _last_checkpoint(self.run_dir('baseline', 0)),
                               '--num-layers', NUM_REMOVED, '--num-samples',
                               64 if p.quick else 512, '--batch-size', 64, '--method', m,
                               '--seed', 0, '--no-progress', '--out', self._selection_file(m)],
                  after=(base0, )) for m in self.methods]
        self.selects.append(_Step(self.step('plot TE heatmap'), 'analysis/plot_te_heatmap.py',
                                  [self._selection_file('nose'), '--out',
                                   p.dir('plots', family.key)],
                                  after=(self.step('select', 'nose'), )))
        self.chains = [[step for m in self.methods for step in self._chain(m, k)]
                       for k in seeds]
        self._hooks: Optional[List[dict]] = None  # the dilution config's custom_hooks

    # names -----------------------------------------------------------------------
    def step(self, verb: str, what: str = '', k: Optional[int] = None) -> str:
        """A step name: ``'<verb> [<family>] <what> [s<k>]'``."""
        parts = [verb, self.family.key, what, '' if k is None else f's{k}']
        return ' '.join(x for x in parts if x)

    def run_dir(self, what: str, k: int) -> str:
        return self.p.dir(self.family.name(what), f'seed{k}')

    def _selection_file(self, method: str) -> str:
        return self.p.dir(self.family.name(f'selection_{method}') + '.json')

    def result_dirs(self) -> List[str]:
        """The folders holding this family's leaderboard rows (their seed runs)."""
        return [self.p.dir(self.family.name('baseline'))] + \
            [self.p.dir(self.family.name(f'pruned_{m}')) for m in self.methods]

    # derived configs and files ------------------------------------------------------
    def selection(self, method: str) -> List[int]:
        """The layers ``method`` selected (read once its selection step is done)."""
        if method not in self._selections:
            record = _read_json(self._selection_file(method))
            if record is None:
                raise RuntimeError(f'no readable selection file {self._selection_file(method)}')
            self._selections[method] = sorted(record['selection'])
        return self._selections[method]

    def selections(self) -> Dict[str, List[int]]:
        """Every method's selection, keyed ``<family>_<method>`` (read from the files)."""
        return {self.family.name(m): self.selection(m) for m in self.methods}

    def pruned_ckpt(self, method: str, k: int) -> str:
        return self.p.dir('checkpoints', self.family.name(f'pruned_{method}_seed{k}.pth'))

    def pruned_cfg(self, method: str, tome: bool = False) -> str:
        merge = f', token_merge={TOME!r}' if tome else ''
        return self.p.derived_config(
            self.family.name(f'pruned_{method}' + ('_tome' if tome else '')),
            osp.join(DEMO_CONFIGS, self.family.pruned),
            self._data + [f'model = dict(backbone=dict(removed_layers='
                          f'{self.selection(method)}{merge}))'])

    def dilute_cfg(self, method: str) -> str:
        """The fine-tune config: the family's dilution config, this selection file."""
        base = osp.join(DEMO_CONFIGS, self.family.nose)
        if self._hooks is None:  # read once: every method and seed shares them
            from mmengine.config import Config
            self._hooks = [h.to_dict() for h in Config.fromfile(base).custom_hooks]
        sel = self._selection_file(method)
        hooks = [dict(h, selection_file=sel) if h['type'] == 'NoseSelectionHook' else h
                 for h in self._hooks]
        return self.p.derived_config(
            self.family.name(f'dilute_{method}'), base,
            self._data + [f'load_from = {_last_checkpoint(self.run_dir("baseline", 0))!r}',
                          f'custom_hooks = {hooks!r}']
            + [q.format(sel=sel) for q in self._quick_ft])

    def _chain(self, method: str, k: int) -> List[_Step]:
        dilute = self.step('dilute', method, k)
        prune = self.step('prune', method, k)
        return [
            _Step(dilute, 'train.py',
                  lambda: [self.dilute_cfg(method), '--work-dir',
                           self.run_dir(f'dilute_{method}', k), *_seeded(k)],
                  after=(self.step('train', 'baseline', 0), self.step('select', method))),
            _Step(prune, 'prune.py',
                  lambda: [_last_checkpoint(self.run_dir(f'dilute_{method}', k)),
                           self.pruned_ckpt(method, k)], after=(dilute, )),
            _Step(self.step('test pruned', method, k), 'test.py',
                  lambda: [self.pruned_cfg(method), self.pruned_ckpt(method, k), '--work-dir',
                           self.run_dir(f'pruned_{method}', k), *_seeded(k)],
                  after=(prune, ))]


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
            :data:`DEMO_METHODS`; ``'nose'`` must be among them. Defaults to all.
        seeds (sequence of int): Seeds of the classification runs (distinct,
            seed 0 first: its baseline is selected on and fine-tuned).
            Defaults to :data:`DEMO_SEEDS`.
        workers (int): Worker processes (one per core). Defaults to 2.
        families (sequence of str): Further backbone families from
            :data:`DEMO_FAMILIES` run through the classification pipeline with
            NOSE (baseline seeds, selection, dilution, pruning, test, their own
            benchmark run). Defaults to all (``('deit3', )``).

    Returns:
        dict: Every leaderboard row of the demo (mean, std, n, per-seed
        values, params, FLOPs, throughput ratio with its spread), the
        selections and the step timings.
    """
    bad = [m for m in methods if m not in DEMO_METHODS]
    if bad or 'nose' not in methods:
        raise ValueError(f'methods must include "nose" and come from {DEMO_METHODS}, got '
                         f'{list(methods)}')
    seeds = list(seeds)
    if not seeds or seeds[0] != 0 or len(set(seeds)) != len(seeds) or \
            not all(isinstance(k, int) and k >= 0 for k in seeds):
        raise ValueError(f'seeds must be distinct integers >= 0 starting with 0, got {seeds}')
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f'workers must be an integer >= 1, got {workers!r}')
    families = list(families)
    bad = [f for f in families if f not in DEMO_FAMILIES]
    if bad or len(set(families)) != len(families):
        raise ValueError(f'families must be distinct names from {sorted(DEMO_FAMILIES)}, got '
                         f'{families}')
    import mmseg.models  # noqa: F401 - imported once here, shared by the forked workers

    from nose_mm.datasets import build_digits_classification, build_digits_segmentation
    from nose_mm.utils.fileio import atomic_write_json

    start = time.time()
    p = _Pipeline(work_dir, quick)
    data_root, seg_root = osp.abspath(data_root), osp.abspath(seg_data_root)
    if _build_once(data_root, lambda: build_digits_classification(data_root, size=16)):
        print(f'[demo] wrote digit images to {data_root}')
    seg_data = osp.join(seg_root, 'ADEChallengeData2016')
    if _build_once(seg_root, lambda: build_digits_segmentation(seg_root)):
        print(f'[demo] wrote digit canvases to {seg_data}')

    # quick: a subset of the images, a few epochs / iterations
    subset = dict(train=320, val=128) if quick else None
    quick_cls = ['train_cfg = dict(max_epochs=2, val_interval=2)',
                 'default_hooks = dict(checkpoint=dict(interval=2))'] if quick else []
    quick_ft = ['train_cfg = dict(max_epochs=2, val_interval=2)',
                'default_hooks = dict(checkpoint=dict(interval=2))',
                "custom_hooks = [dict(type='NoseSelectionHook', selection_file={sel!r}),"
                " dict(type='DilutionHook', schedule='linear', begin=0, end=1)]"] if quick else []
    quick_seg = ['train_cfg = dict(max_iters=4, val_interval=4)',
                 'default_hooks = dict(checkpoint=dict(interval=4))',
                 "param_scheduler = [dict(type='PolyLR', power=1.0, begin=0, end=4, "
                 'by_epoch=False)]'] if quick else []
    data = _data_settings(data_root, subset)

    os.makedirs(p.dir('checkpoints'), exist_ok=True)
    settings = dict(data=data, quick_cls=quick_cls, quick_ft=quick_ft)
    vit = _Classification(p, VIT, methods, seeds, settings)
    fams = [_Classification(p, DEMO_FAMILIES[name], ('nose', ), seeds, settings)
            for name in families]
    base0 = vit.run_dir('baseline', 0)

    # NOSE + ToMe: the pruned NOSE ViT tested with token merging
    tome_steps = [_Step(f'test nose+tome s{k}', 'test.py',
                        lambda k=k: [vit.pruned_cfg('nose', tome=True), vit.pruned_ckpt('nose', k),
                                     '--work-dir', p.dir('tome_nose', f'seed{k}'), *_seeded(k)],
                        after=(vit.step('prune', 'nose', k), )) for k in seeds]

    # -- segmentation transfer (seed-0 ViT backbones) -----------------------------
    seg_root_settings = _data_settings(seg_data, dict(val=16) if quick else None)
    seg_names = ['baseline', *methods]

    def seg_cfg(name: str) -> str:
        removed = None if name == 'baseline' else vit.selection(name)
        ckpt = _last_checkpoint(base0) if name == 'baseline' else vit.pruned_ckpt(name, 0)
        return p.derived_config(
            f'seg_{name}', osp.join(DEMO_CONFIGS, 'upernet_deit-demo_digits-seg-64px.py'),
            seg_root_settings + quick_seg + [
                f'model = dict(backbone=dict(removed_layers={removed!r}, '
                f'init_cfg=dict(checkpoint={ckpt!r})))'])

    seg_steps = [_Step(f'segmentation {name}', 'train.py',
                       lambda n=name: [seg_cfg(n), '--work-dir', p.dir(f'seg_{n}')],
                       after=(vit.step('train', 'baseline', 0), ) if name == 'baseline' else
                       (vit.step('prune', name, 0), )) for name in seg_names]

    # -- the timings, alone, once the workers have nothing else to run ------------
    bench_steps, bench_places = [], []
    for chain in [vit] + fams:
        tome, what = chain is vit, chain.family.key or 'classification'
        out = p.dir(f'benchmark_{what}.json')
        bench_steps.append(_Step(
            f'benchmark {what}', 'benchmark.py',
            lambda c=chain, out=out, tome=tome: _benchmark_args(
                [(c.base_cfg, _last_checkpoint(c.run_dir('baseline', 0)))]
                + [(c.pruned_cfg(m), c.pruned_ckpt(m, 0)) for m in c.methods]
                + ([(c.pruned_cfg('nose', tome=True), c.pruned_ckpt('nose', 0))] if tome
                   else []), out, quick, 256),
            after=(chain.step('train', 'baseline', 0),
                   *(chain.step('test pruned', m, 0) for m in chain.methods),
                   *(['test nose+tome s0'] if tome else [])), alone=True))
        bench_places.append((out, chain.result_dirs() + ([p.dir('tome_nose')] if tome else [])))
    seg_bench = p.dir('benchmark_segmentation.json')
    bench_steps.append(_Step(
        'benchmark segmentation', 'benchmark.py',
        lambda: _benchmark_args(
            [(osp.join(p.cfg_dir, f'seg_{n}.py'), _last_checkpoint(p.dir(f'seg_{n}')))
             for n in seg_names], seg_bench, quick, 16, repeats=8),
        after=tuple(f'segmentation {n}' for n in seg_names), alone=True))
    seg_dirs = [p.dir(f'seg_{n}') for n in seg_names]
    bench_places.append((seg_bench, seg_dirs))

    # Priority (list order): the seed-0 chains that everything waits for, the long
    # segmentation runs, then the other seeds; the timings last (they run alone).
    chains = [vit] + fams
    steps: List[_Step] = [
        *(s for c in chains for s in c.baselines[:1]), *(s for c in chains for s in c.selects),
        *(s for c in chains for s in c.chains[0]), *seg_steps,
        *(s for c in chains for chain in c.chains[1:] for s in chain),
        *(s for c in chains for s in c.baselines[1:]), *tome_steps, *bench_steps]

    # -- leaderboard ----------------------------------------------------------------
    cls_dirs = [d for c in chains for d in c.result_dirs()]
    cls_dirs.insert(len(vit.result_dirs()), p.dir('tome_nose'))
    board = p.dir('leaderboard_demo.md')

    def board_args() -> List[str]:
        for src, dirs in bench_places:
            _place_benchmark(src, dirs)
        return [*cls_dirs, *seg_dirs, '--no-reference', '--format', 'md', '--out', board,
                '--plot', p.dir('plots', 'accuracy_vs_throughput.png')]

    everything = tuple(s.name for s in steps)
    steps.append(_Step('leaderboard', 'leaderboard.py', board_args, after=everything))
    for fmt in ('md', 'csv', 'html'):
        steps.append(_Step(f'leaderboard {fmt}', 'leaderboard.py',
                           [*cls_dirs, *seg_dirs, '--format', fmt, '--out',
                            p.dir(f'leaderboard.{fmt}')], after=('leaderboard', )))

    pool = _Workers(workers)
    try:
        p.run(steps, pool)
    finally:
        pool.close()

    selections = {k: v for c in chains for k, v in c.selections().items()}
    summary = _summarize(cls_dirs + seg_dirs, selections)
    summary['seconds'] = round(time.time() - start, 1)
    summary['timings'] = {k: round(v, 1) for k, v in p.timings.items()}
    summary['cpu_seconds'] = {k: round(v, 1) for k, v in p.cpu.items()}
    summary['workers'] = workers
    atomic_write_json(p.dir('summary.json'), summary)
    with open(board) as f:
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
            print(f"[demo] {label:<18} {metric} {_fmt(row['metric'])}{spread} "
                  f"(n={row['n']}), removed {row['removed_layers']}{speed}{ips}")
    print(f"[demo] finished in {summary['seconds']:.0f} s with {summary['workers']} workers "
          f"({sum(summary['cpu_seconds'].values()):.0f} s CPU in the steps)")
