"""The demo's steps as a table: what each tool run gets, writes and waits for.

:func:`demo_steps` lists every step (list order = priority); run folders are
``<work_dir>/<family>_baseline/seed<k>``, ``<family>_pruned_<method>/seed<k>``
(no prefix for the demo ViT), ``tome_nose/seed<k>`` and ``seg_<backbone>``;
derived configs (data roots, selection files, removed layers) land in
``<work_dir>/configs/``, checkpoints and seeds go on the command line, so the
seed runs of a step share one config.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from nose_mm.benchmark.info import BENCHMARK_FILE

from .scheduler import REPO, Derived, LastCheckpoint, Selected, Step

CONFIGS = osp.join(REPO, 'configs', 'demo')
#: selection methods compared by the demo (tools/nose_select.py --method)
DEMO_METHODS = ('nose', 'random', 'first')
#: seeds of every classification row
DEMO_SEEDS = (0, 1, 2)
#: methods that draw their own layer set per seed (``--seed k``): the random baseline's
#: row is then the mean +- std over as many random sets (paper Fig. 3), not over three
#: fine-tunes of one draw; its runs declare ``seed_varies`` so they form one row
PER_SEED_METHODS = ('random', )
#: what those runs vary between seeds (``seed_varies``, nose_mm/benchmark/seeds.py)
PER_SEED_VARIES = ['model.backbone.removed_layers']
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
#: The memory budget (GiB) of the leaderboard's working load (tracked training steps):
#: small enough that no demo model reaches the search's 4,096-image cap (the pruned
#: NOSE + ToMe model fits 4,860 images in 1 GiB, which would be cut to a capped 4,096).
MEMORY_BUDGET_GB = 0.5


@dataclass(frozen=True)
class DemoFamily:
    """A backbone family the demo runs through the classification pipeline.

    Args:
        key (str): Prefix of the family's run folders, files and step names
            (``'deit3'``: ``deit3_baseline/seed0``); ``''`` for the demo ViT.
        baseline (str): Baseline config under ``configs/demo/`` (trained per seed).
        nose (str): Dilution fine-tune config (its first custom hook, the
            ``NoseSelectionHook``, gets the selection file; ``load_from`` the
            seed-0 baseline).
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
#: further families run through the same pipeline with NOSE (baseline seeds,
#: selection, dilution, pruning, test, benchmark against their own baseline)
DEMO_FAMILIES = {
    'deit3': DemoFamily('deit3', 'deit3-demo-l6_baseline_digits-16px.py',
                        'deit3-demo-l6_nose_digits-16px.py',
                        'deit3-demo-l6_pruned_digits-16px.py'),
}


def _data(root: str, subset: Optional[Dict[str, int]]) -> Dict[str, Any]:
    """Options setting every loader's data root (and ``indices``: the first N images)."""
    options = {}
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.dataset.data_root'] = root
        if subset and split in subset:
            options[f'{split}_dataloader.dataset.indices'] = subset[split]
    return options


def _quick(iters: int, by: str) -> Dict[str, Any]:
    return {f'train_cfg.max_{by}': iters, 'train_cfg.val_interval': iters,
            'default_hooks.checkpoint.interval': iters}


def _seeded(k: int) -> List[str]:
    return ['--cfg-options', f'randomness.seed={k}']


def _benchmark(models: Sequence, out: str, quick: bool, batch_size: int,
               repeats: int = 15) -> tuple:
    """``tools/benchmark.py`` arguments timing ``(config, checkpoint)`` pairs, baseline first."""
    (base_cfg, base_ckpt), others = models[0], models[1:]
    args = [base_cfg, base_ckpt]
    for cfg, ckpt in others:
        args += ['--compare', cfg, ckpt]
    return (*args, '--batch-size', batch_size, '--repeats', 3 if quick else repeats,
            '--warmup', 1 if quick else 3, '--device', 'cpu', '--threads', WORKER_THREADS,
            '--clock', 'process', '--train-memory', '--memory-budget-gb',
            MEMORY_BUDGET_GB, '--attention', 'fused', '--out', out)


class _Family:
    """Names, configs and steps of one family's classification runs."""

    def __init__(self, work: str, family: DemoFamily, methods: Sequence[str],
                 seeds: Sequence[int], data: Dict[str, Any], quick: bool) -> None:
        self.work, self.family, self.methods, self.seeds = work, family, tuple(methods), seeds
        self.data, self.quick = data, quick
        self.base_cfg = Derived(family.name('baseline'), osp.join(CONFIGS, family.baseline),
                                {**data, **(_quick(2, 'epochs') if quick else {})})
        self.base0 = LastCheckpoint(self.run_dir('baseline', 0))

    def step(self, verb: str, what: str = '', k: Optional[int] = None) -> str:
        """A step name: ``'<verb> [<family>] <what> [s<k>]'``."""
        parts = [verb, self.family.key, what, '' if k is None else f's{k}']
        return ' '.join(x for x in parts if x)

    def dir(self, *parts: str) -> str:
        return osp.join(self.work, *parts)

    def run_dir(self, what: str, k: int) -> str:
        return self.dir(self.family.name(what), f'seed{k}')

    def selection_file(self, method: str, k: int = 0) -> str:
        """The method's selection (a per-seed method's for seed ``k``; seed 0: the plain name)."""
        per_seed = f'_seed{k}' if k and method in PER_SEED_METHODS else ''
        return self.dir(self.family.name(f'selection_{method}{per_seed}') + '.json')

    def select_step(self, method: str, k: int = 0) -> str:
        """The step writing :meth:`selection_file` of ``method`` (and seed ``k``)."""
        return self.step('select', method, k if k and method in PER_SEED_METHODS else None)

    def pruned_ckpt(self, method: str, k: int) -> str:
        return self.dir('checkpoints', self.family.name(f'pruned_{method}_seed{k}.pth'))

    def result_dirs(self) -> List[str]:
        """The folders holding this family's leaderboard rows (their seed runs)."""
        return [self.dir(self.family.name('baseline'))] + \
            [self.dir(self.family.name(f'pruned_{m}')) for m in self.methods]

    def pruned_cfg(self, method: str, tome: bool = False, k: int = 0) -> Derived:
        merge = {'model.backbone.token_merge': TOME} if tome else {}
        per_seed = method in PER_SEED_METHODS
        varies = {'seed_varies': PER_SEED_VARIES} if per_seed else {}
        return Derived(self.family.name(f'pruned_{method}' + ('_tome' if tome else '')
                                        + (f'_s{k}' if per_seed and k else '')),
                       osp.join(CONFIGS, self.family.pruned),
                       {**self.data, 'model.backbone.removed_layers':
                        Selected(self.selection_file(method, k)), **merge, **varies})

    def dilute_cfg(self, method: str, k: int = 0) -> Derived:
        """The family's dilution config on this selection, from the seed-0 baseline."""
        sel = self.selection_file(method, k)
        hooks = {'custom_hooks': [
            dict(type='NoseSelectionHook', selection_file=sel),
            dict(type='DilutionHook', schedule='linear', begin=0, end=1)]} if self.quick \
            else {'custom_hooks.0.selection_file': sel}
        name = f'dilute_{method}' + (f'_s{k}' if k and method in PER_SEED_METHODS else '')
        return Derived(self.family.name(name), osp.join(CONFIGS, self.family.nose),
                       {**self.data, 'load_from': self.base0,
                        **(_quick(2, 'epochs') if self.quick else {}), **hooks})

    def baselines(self) -> List[Step]:
        return [Step(self.step('train', 'baseline', k), 'train.py',
                     (self.base_cfg, '--work-dir', self.run_dir('baseline', k), *_seeded(k)))
                for k in self.seeds]

    def selects(self) -> List[Step]:
        base0 = self.step('train', 'baseline', 0)
        steps = [Step(self.select_step(m, k), 'nose_select.py',
                      (self.base_cfg, self.base0, '--num-layers', NUM_REMOVED, '--num-samples',
                       64 if self.quick else 512, '--batch-size', 64, '--method', m, '--seed', k,
                       '--no-progress', '--out', self.selection_file(m, k)), after=(base0, ))
                 for m in self.methods
                 for k in (self.seeds if m in PER_SEED_METHODS else self.seeds[:1])]
        return steps + [Step(self.step('plot TE heatmap'), 'analysis/plot_te_heatmap.py',
                             (self.selection_file('nose'), '--out',
                              self.dir('plots', self.family.key)),
                             after=(self.step('select', 'nose'), ))]

    def chain(self, k: int) -> List[Step]:
        """Per method, seed ``k``: dilution fine-tune, prune, test the pruned model."""
        steps = []
        for m in self.methods:
            dilute, prune = self.step('dilute', m, k), self.step('prune', m, k)
            steps += [
                Step(dilute, 'train.py',
                     (self.dilute_cfg(m, k), '--work-dir', self.run_dir(f'dilute_{m}', k),
                      *_seeded(k)),
                     after=(self.step('train', 'baseline', 0), self.select_step(m, k))),
                Step(prune, 'prune.py', (LastCheckpoint(self.run_dir(f'dilute_{m}', k)),
                                         self.pruned_ckpt(m, k)), after=(dilute, )),
                Step(self.step('test pruned', m, k), 'test.py',
                     (self.pruned_cfg(m, k=k), self.pruned_ckpt(m, k), '--work-dir',
                      self.run_dir(f'pruned_{m}', k), *_seeded(k)), after=(prune, ))]
        return steps

    def benchmark(self, with_tome: bool) -> Step:
        """One interleaved timing of the seed-0 baseline and pruned models (and NOSE + ToMe)."""
        what = self.family.key or 'classification'
        out = self.dir(f'benchmark_{what}.json')
        models = [(self.base_cfg, self.base0)] + \
            [(self.pruned_cfg(m), self.pruned_ckpt(m, 0)) for m in self.methods] + \
            ([(self.pruned_cfg('nose', tome=True), self.pruned_ckpt('nose', 0))]
             if with_tome else [])
        folders = self.result_dirs() + ([self.dir('tome_nose')] if with_tome else [])
        return Step(f'benchmark {what}', 'benchmark.py', _benchmark(models, out, self.quick, 256),
                    after=(self.step('train', 'baseline', 0),
                           *(self.step('test pruned', m, 0) for m in self.methods),
                           *(['test nose+tome s0'] if with_tome else [])),
                    alone=True, copies=tuple((out, osp.join(f, BENCHMARK_FILE))
                                             for f in folders))


#: The segmentation comparison's layer sets: how each is chosen (the rows' ``selected_on``)
#: and the ``tools/nose_select.py`` features (None: the classification NOSE selection).
SEG_SETS = {
    'transferred': ('transferred (classifier NOSE)', None),
    'task': ('seg_logits (trained UperNet)', 'seg_logits'),
    'dense': ('dense (classifier backbone)', 'dense'),
}
SEG_DILUTE = 'upernet_deit-demo_dilute_digits-seg-64px.py'
SEG_CONFIG = 'upernet_deit-demo_digits-seg-64px.py'


def seg_selection_steps(vit: _Family, seg_base: Derived, seg_opts: Dict[str, Any],
                        seeds: Sequence[int], quick: bool) -> Dict[str, Any]:
    """Sets selected on the segmentation task against the transferred one, same recipe.

    ``task``: NOSE on the trained demo UperNet's decode-head output (``--features
    seg_logits``); ``dense``: NOSE on the classification backbone's out_indices features at
    the segmentation resolution (``--features dense``, no checkpoint: the backbone the config
    initialises); ``transferred``: the classification NOSE selection. Each set: a dilution
    fine-tune of the trained UperNet per seed (:data:`SEG_DILUTE`; ``quick``: the first
    seed only), prune, test.

    Returns:
        dict: ``steps``, ``dirs`` (row folders), ``timed`` (seed-0 ``(config, checkpoint)``
        pairs for the segmentation timing) and ``selections`` (``{'seg_<set>': file}``).
    """
    seg0 = LastCheckpoint(vit.dir('seg_baseline'))
    steps, dirs, timed, selections = [], [], [], {}
    for name, (label, features) in SEG_SETS.items():
        sel = vit.selection_file('nose') if features is None else \
            vit.dir(f'seg_selection_{name}.json')
        if features is None:
            picked = vit.step('select', 'nose')
        else:
            picked = f'select seg {name}'
            source = (seg_base, seg0) if features == 'seg_logits' else (Derived(
                'seg_dense_select', osp.join(CONFIGS, SEG_CONFIG),
                {**seg_opts, 'model.backbone.init_cfg.checkpoint': vit.base0}), )
            steps.append(Step(picked, 'nose_select.py',
                              (*source, '--features', features, '--num-layers', NUM_REMOVED,
                               '--num-samples', 32 if quick else 64, '--batch-size', 32,
                               '--no-progress', '--out', sel),
                              after=('segmentation baseline', ) if features == 'seg_logits'
                              else (vit.step('train', 'baseline', 0), )))
            selections[f'seg_{name}'] = sel
        hooks = {'custom_hooks.0.selection_file': sel}
        if quick:  # lam reaches 0 within the shortened run
            hooks['custom_hooks'] = [dict(type='NoseSelectionHook', selection_file=sel),
                                     dict(type='DilutionHook', schedule='linear', begin=0,
                                          end=2, by_epoch=False)]
        dilute = Derived(f'seg_dilute_{name}', osp.join(CONFIGS, SEG_DILUTE),
                         {**seg_opts, 'load_from': seg0, 'selected_on': label, **hooks})
        pruned = Derived(f'seg_pruned_{name}', osp.join(CONFIGS, SEG_CONFIG),
                         {**seg_opts, 'model.backbone.removed_layers': Selected(sel),
                          'model.backbone.init_cfg': None, 'selected_on': label})
        for k in seeds[:1] if quick else seeds:  # the quick run: one seed per set
            run, ckpt = vit.dir(f'seg_dilute_{name}', f'seed{k}'), \
                vit.dir('checkpoints', f'seg_pruned_{name}_seed{k}.pth')
            steps += [
                Step(f'dilute seg {name} s{k}', 'train.py',
                     (dilute, '--work-dir', run, *_seeded(k)),
                     after=('segmentation baseline', picked)),
                Step(f'prune seg {name} s{k}', 'prune.py', (LastCheckpoint(run), ckpt),
                     after=(f'dilute seg {name} s{k}', )),
                Step(f'test seg {name} s{k}', 'test.py',
                     (pruned, ckpt, '--work-dir', vit.dir(f'seg_pruned_{name}', f'seed{k}'),
                      *_seeded(k)), after=(f'prune seg {name} s{k}', ))]
        dirs.append(vit.dir(f'seg_pruned_{name}'))
        timed.append((pruned, vit.dir('checkpoints', f'seg_pruned_{name}_seed{seeds[0]}.pth')))
    return dict(steps=steps, dirs=dirs, timed=timed, selections=selections)


def demo_steps(work: str, data_root: str, seg_data: str, quick: bool, methods: Sequence[str],
               seeds: Sequence[int], families: Sequence[str]) -> Dict[str, Any]:
    """The demo's table of steps and the folders of its leaderboard rows.

    Args:
        work (str): The work folder (absolute).
        data_root (str): Digit classification data (ImageNet layout, absolute).
        seg_data (str): Digit segmentation data (the ``ADEChallengeData2016``
            folder, absolute).
        quick (bool): The shortened run (a subset, a few epochs / iterations).
        methods (sequence of str): Selection methods of the demo ViT.
        seeds (sequence of int): Seeds of the classification runs (0 first).
        families (sequence of str): Keys of :data:`DEMO_FAMILIES` run with NOSE.

    Returns:
        dict: ``steps`` (list of :class:`Step`, in priority order), ``cls_dirs``
        and ``seg_dirs`` (row folders), ``board`` (``leaderboard_demo.md``)
        and ``selections`` (``{'<family>_<method>': selection file}``).
    """
    data = _data(data_root, dict(train=320, val=128) if quick else None)
    vit = _Family(work, VIT, methods, seeds, data, quick)
    fams = [_Family(work, DEMO_FAMILIES[f], ('nose', ), seeds, data, quick) for f in families]
    chains = [vit] + fams

    # NOSE + ToMe: the pruned NOSE ViT tested with token merging
    tome = [Step(f'test nose+tome s{k}', 'test.py',
                 (vit.pruned_cfg('nose', tome=True), vit.pruned_ckpt('nose', k), '--work-dir',
                  vit.dir('tome_nose', f'seed{k}'), *_seeded(k)),
                 after=(vit.step('prune', 'nose', k), )) for k in seeds]

    # segmentation transfer of the seed-0 ViT backbones, then one timing of them
    seg_names = ['baseline', *methods]
    seg_opts = {**_data(seg_data, dict(val=16) if quick else None), **({
        **_quick(4, 'iters'), 'param_scheduler': [
            dict(type='PolyLR', power=1.0, begin=0, end=4, by_epoch=False)]} if quick else {})}
    seg_cfgs = {n: Derived(f'seg_{n}', osp.join(CONFIGS, 'upernet_deit-demo_digits-seg-64px.py'),
                           {**seg_opts, 'model.backbone.removed_layers':
                            None if n == 'baseline' else Selected(vit.selection_file(n)),
                            'model.backbone.init_cfg.checkpoint':
                            vit.base0 if n == 'baseline' else vit.pruned_ckpt(n, 0)})
                for n in seg_names}
    seg = [Step(f'segmentation {n}', 'train.py', (seg_cfgs[n], '--work-dir', vit.dir(f'seg_{n}')),
                after=(vit.step('train', 'baseline', 0) if n == 'baseline'
                       else vit.step('prune', n, 0), )) for n in seg_names]
    seg_dirs = [vit.dir(f'seg_{n}') for n in seg_names]
    # selected on the segmentation task vs transferred (one dilution recipe, seeds)
    seg_sel = seg_selection_steps(vit, seg_cfgs['baseline'], seg_opts, seeds, quick) \
        if 'nose' in methods else dict(steps=[], dirs=[], timed=[], selections={})
    seg_dirs += seg_sel['dirs']
    seg_out = vit.dir('benchmark_segmentation.json')
    seg_bench = Step('benchmark segmentation', 'benchmark.py',
                     _benchmark([(seg_cfgs[n], LastCheckpoint(vit.dir(f'seg_{n}')))
                                 for n in seg_names] + seg_sel['timed'], seg_out, quick, 16,
                                repeats=8),
                     after=tuple(s.name for s in seg + seg_sel['steps']), alone=True,
                     copies=tuple((seg_out, osp.join(d, BENCHMARK_FILE)) for d in seg_dirs))

    # Priority (list order): the seed-0 chains that everything waits for, the long
    # segmentation runs, then the other seeds; the timings last (they run alone).
    steps = [*(c.baselines()[0] for c in chains), *(s for c in chains for s in c.selects()),
             *(s for c in chains for s in c.chain(seeds[0])), *seg, *seg_sel['steps'],
             *(s for c in chains for k in seeds[1:] for s in c.chain(k)),
             *(s for c in chains for s in c.baselines()[1:]), *tome,
             *(c.benchmark(with_tome=c is vit) for c in chains), seg_bench]

    cls_dirs = [d for c in chains for d in c.result_dirs()]
    cls_dirs.insert(len(vit.result_dirs()), vit.dir('tome_nose'))
    board = vit.dir('leaderboard_demo.md')
    steps.append(Step('leaderboard', 'leaderboard.py',
                      (*cls_dirs, *seg_dirs, '--no-reference', '--format', 'md', '--out', board,
                       '--plot', vit.dir('plots', 'accuracy_vs_throughput.png')),
                      after=tuple(s.name for s in steps)))
    steps += [Step(f'leaderboard {fmt}', 'leaderboard.py',
                   (*cls_dirs, *seg_dirs, '--format', fmt, '--out', vit.dir(f'leaderboard.{fmt}')),
                   after=('leaderboard', )) for fmt in ('md', 'csv', 'html')]
    selections = {c.family.name(m): c.selection_file(m) for c in chains for m in c.methods}
    selections.update({c.family.name(f'{m}_seed{k}'): c.selection_file(m, k) for c in chains
                       for m in c.methods if m in PER_SEED_METHODS for k in c.seeds[1:]})
    selections.update(seg_sel['selections'])
    return dict(steps=steps, cls_dirs=cls_dirs, seg_dirs=seg_dirs, board=board,
                selections=selections)
