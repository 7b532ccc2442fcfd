"""A shortened built-in demo runs end to end, and its leaderboard holds that run's numbers."""
import json
import os.path as osp
import statistics

import pytest

from tests.test_benchmark.test_tools import _md_table
from projects.demo.steps import MEMORY_BUDGET_GB
from tests.utils import run_tool


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_demo_end_to_end(tmp_path):
    work = tmp_path / 'demo'
    proc = run_tool('demo.py', '--quick', '--work-dir', work, '--data-root', tmp_path / 'digits',
                    '--seg-data-root', tmp_path / 'digits_seg', timeout=900)
    summary = json.load(open(work / 'summary.json'))
    cls, seg = summary['classification'], summary['segmentation']

    # real data: the scikit-learn digits, 10 classes, 1797 images
    assert len(list((tmp_path / 'digits' / 'train').iterdir())) == 10
    # each method removed 2 layers, NOSE's come from its selection file
    nose_sel = json.load(open(work / 'selection_nose.json'))
    assert sorted(nose_sel['selection']) == cls['pruned_nose']['removed_layers']
    assert len(nose_sel['te_table']) == 2
    assert cls['pruned_first']['removed_layers'] == [0, 1]
    assert set(cls) == {'baseline', 'pruned_nose', 'pruned_random', 'pruned_first',
                        'tome_nose', 'deit3_baseline', 'deit3_pruned_nose'}
    # the second family: NOSE on a DeiT-III-style model, its own selection and baseline
    deit3_sel = json.load(open(work / 'deit3_selection_nose.json'))
    assert sorted(deit3_sel['selection']) == cls['deit3_pruned_nose']['removed_layers']
    assert summary['selections']['deit3_nose'] == cls['deit3_pruned_nose']['removed_layers']
    deit3_res = json.load(open(work / 'deit3_pruned_nose' / 'seed0' / 'results.json'))
    assert deit3_res['model']['backbone'] == 'NoseDeiT3'
    assert cls['deit3_baseline']['timed_together'] != cls['baseline']['timed_together']
    board = open(work / 'leaderboard_demo.md').read()
    table = {r['Run / method']: r for r in _md_table(board, 'classification / '
                                                     'CustomDataset(digits)')}
    for label, row in cls.items():
        # three seeds per row, mean ± std of this run's results files
        top1 = [json.load(open(work / label / f'seed{k}' / 'results.json'))['metrics']['top1']
                for k in (0, 1, 2)]
        assert row['n'] == 3 and row['seeds'] == [0, 1, 2] and row['per_seed'] == top1
        assert row['metric'] == pytest.approx(statistics.fmean(top1))
        assert row['std'] == pytest.approx(statistics.stdev(top1))
        assert table[label]['Top-1'] == f'{statistics.fmean(top1):.2f} ± ' \
            f'{statistics.stdev(top1):.2f}'
        assert table[label]['n'] == '3'
        base = cls['deit3_baseline' if label.startswith('deit3') else 'baseline']
        if not label.endswith('baseline'):
            assert len(row['removed_layers']) == 2
            assert row['params'] < base['params']
            assert table[label]['Δ vs spread'] in ('beyond', 'within')
            # the throughput ratio with its spread, from the one interleaved run
            ratio = row['throughput_ratio']
            assert 0 < ratio['q1'] <= ratio['median'] <= ratio['q3']
            assert table[label]['Speed vs baseline'] == (
                f"{ratio['median']:.3f} (IQR {ratio['q1']:.3f}-{ratio['q3']:.3f})")
            # timed in one run with its own baseline (each family in its own run)
            assert row['timed_together'] == base['timed_together'] is not None
            assert row['delta'] == pytest.approx(row['metric'] - base['metric'])
            assert table[label]['Δ Top-1'] == f"{row['delta']:+.2f}"
            # tracked memory of a training step: less without attention, more images in
            # the budget, and never the search's cap (a lower bound, not a working load)
            assert 0 < row['mem_mib'] < base['mem_mib']
            assert row['working_load'] > base['working_load'] > 0
            assert table[label]['Working load @ budget'] == \
                f"{row['working_load']} @ {MEMORY_BUDGET_GB:g} GiB"
    assert 'spread unknown' not in board.split('## classification')[1].split('## seg')[0]
    # NOSE + ToMe: the pruned NOSE weights, fewer FLOPs with the merged tokens
    tome = cls['tome_nose']
    assert tome['removed_layers'] == cls['pruned_nose']['removed_layers']
    assert tome['params'] == cls['pruned_nose']['params']
    assert tome['gflops'] < cls['pruned_nose']['gflops']
    tome_res = json.load(open(work / 'tome_nose' / 'seed0' / 'results.json'))
    assert tome_res['model']['token_merge'] == {'r': 4, 'start': 1, 'prop_attn': True}

    # pruned checkpoints really lack the removed attention
    import torch
    for label in ('pruned_nose', 'deit3_pruned_nose'):
        keys = torch.load(work / 'checkpoints' / f'{label}_seed0.pth',
                          weights_only=False)['state_dict']
        assert any(k.startswith('backbone.layers.') and '.attn.' in k for k in keys)
        for i in cls[label]['removed_layers']:
            assert not any(k.startswith(f'backbone.layers.{i}.attn.') for k in keys)

    # segmentation: one run per backbone, with img/s from one interleaved run
    from projects.demo.steps import SEG_SETS
    transfers = {'seg_baseline', 'seg_nose', 'seg_random', 'seg_first'}
    # and the sets chosen on the task vs transferred, one recipe, three seeds, labelled
    sets = {f'seg_pruned_{name} (set: {how})': name for name, (how, _) in SEG_SETS.items()}
    assert set(seg) == transfers | set(sets)
    seg_table = {r['Run / method']: r for r in _md_table(board, 'segmentation / '
                                                         'BaseSegDataset')}
    for label, row in seg.items():
        assert row['img_per_s'] > 0 and float(seg_table[label]['img/s']) > 0
        assert row['mem_mib'] > 0 and row['working_load'] > 0
        if label != 'seg_baseline':
            assert row['working_load'] > seg['seg_baseline']['working_load']
        if label in transfers:
            res = json.load(open(work / label / 'results.json'))
            assert row['n'] == 1 and row['metric'] == res['metrics']['mIoU']
            continue
        # the quick run fine-tunes each set with the first seed only
        miou = [json.load(open(work / f'seg_pruned_{sets[label]}' / 'seed0' /
                               'results.json'))['metrics']['mIoU']]
        assert row['n'] == 1 and row['metric'] == miou[0]
        assert not (work / f'seg_pruned_{sets[label]}' / 'seed1').exists()
        chosen = 'selection_nose.json' if sets[label] == 'transferred' else \
            f'seg_selection_{sets[label]}.json'
        assert row['removed_layers'] == sorted(json.load(open(work / chosen))['selection'])
    task = json.load(open(work / 'seg_selection_task.json'))
    assert task['task'] == 'segmentation' and task['features'] == 'seg_logits'
    assert len({row['timed_together'] for row in seg.values()}) == 1

    assert 'finished in' in proc.stdout and 'top-1' in proc.stdout
    for name in ('leaderboard.md', 'leaderboard.csv', 'leaderboard.html'):
        assert osp.getsize(work / name) > 0
    assert (work / 'plots' / 'accuracy_vs_throughput.png').is_file()
    assert list((work / 'plots').glob('*heatmap*.png'))


def test_demo_refuses_bad_arguments_before_running(tmp_path):
    """Bad methods, seeds, workers or families: a ValueError naming the value and what is
    allowed, before any data or run folder is written."""
    from projects.demo import DEMO_FAMILIES, run_demo
    work = tmp_path / 'demo'
    bad = [(dict(methods=('random', )), "must include \"nose\""),
           (dict(seeds=(1, 2)), 'starting with 0, got [1, 2]'),
           (dict(workers=0), 'workers must be an integer >= 1, got 0'),
           (dict(families=('swin', )), f"from {sorted(DEMO_FAMILIES)}, got ['swin']"),
           (dict(families=('deit3', 'deit3')), "got ['deit3', 'deit3']")]
    for kwargs, message in bad:
        with pytest.raises(ValueError) as info:
            run_demo(str(work), str(tmp_path / 'digits'), str(tmp_path / 'seg'), **kwargs)
        assert message in str(info.value)
    assert not any(tmp_path.iterdir())
    proc = run_tool('demo.py', '--families', 'swin', '--work-dir', work, check=False)
    assert proc.returncode == 2 and "invalid choice: 'swin'" in proc.stderr
    assert not work.exists()


def test_a_failing_step_stops_the_demo_with_one_line_naming_its_log(tmp_path):
    """A step's error: the end of its log on stderr, then one line naming the step and the
    log, exit 2; a data folder left by an interrupted build is refused, not deleted."""
    import re

    from projects.demo import DATA_DONE
    digits, seg = tmp_path / 'digits', tmp_path / 'seg'
    for root in (digits, seg):  # "complete" data folders without any data
        root.mkdir()
        (root / DATA_DONE).write_text('complete\n')
    work = tmp_path / 'demo'
    proc = run_tool('demo.py', '--quick', '--families', '--work-dir', work, '--data-root',
                    digits, '--seg-data-root', seg, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    match = re.fullmatch(r"nose_mm: error: demo step '(train baseline s\d)' failed \(exit 2\); "
                         r'its log: (\S+)', last)
    assert match, last
    log = match.group(2)
    assert log == str(work / 'logs' / (match.group(1).replace(' ', '_') + '.log'))
    assert f"No such file or directory: '{digits / 'train'}'" in open(log).read()
    assert f'the end of {log}:' in proc.stderr and 'Traceback' not in proc.stderr

    (digits / DATA_DONE).unlink()  # an interrupted build: refused, left as it is
    (digits / 'partial.png').write_text('')
    from projects.demo import run_demo
    from nose_mm.utils.cli import UserError
    with pytest.raises(UserError) as info:
        run_demo(str(work), str(digits), str(seg), quick=True)
    assert str(info.value) == (
        f'{digits} exists but holds no completed demo data (no {DATA_DONE}, '
        'e.g. an interrupted build): remove it or choose another folder')
    assert sorted(p.name for p in digits.iterdir()) == ['partial.png']


def _table(tmp_path, quick=False, families=('deit3', )):
    from projects.demo.steps import demo_steps
    return demo_steps(str(tmp_path / 'demo'), str(tmp_path / 'digits'),
                      str(tmp_path / 'seg' / 'ADEChallengeData2016'), quick,
                      ('nose', 'random', 'first'), [0, 1, 2], list(families))


def test_the_step_table(tmp_path):
    """Every step named once, waiting for known steps only; the timings alone; the
    leaderboard after everything; its benchmark files copied into the rows' folders."""
    from projects.demo.scheduler import check_steps
    plan = _table(tmp_path)
    steps = {s.name: s for s in plan['steps']}
    check_steps(plan['steps'])
    work = str(tmp_path / 'demo')
    # 3 seeds x (baseline, 3 methods x (dilute, prune, test)) for the ViT, 1 method for
    # DeiT-III; selections (random: one per seed) + heatmaps; ToMe; 4 segmentations;
    # 3 timings; 4 leaderboards; the segmentation sets: 2 selections + 3 sets x 3 seeds
    # x (dilute, prune, test)
    assert len(steps) == 3 * 10 + 3 * 4 + 6 + 2 + 3 + 4 + 3 + 4 + (2 + 3 * 3 * 3)
    # the random baseline draws its own set for every seed
    for k in (1, 2):
        assert steps[f'dilute random s{k}'].after == ('train baseline s0', f'select random s{k}')
        assert steps[f'select random s{k}'].args[-1] == osp.join(work,
                                                                 f'selection_random_seed{k}.json')
        assert steps[f'select random s{k}'].args[10:12] == ('--seed', k)
    assert steps['dilute random s0'].after == ('train baseline s0', 'select random')
    assert sorted(n for n, s in steps.items() if s.alone) == [
        'benchmark classification', 'benchmark deit3', 'benchmark segmentation']
    assert set(steps['leaderboard'].after) == set(steps) - {
        'leaderboard', 'leaderboard md', 'leaderboard csv', 'leaderboard html'}
    assert steps['dilute deit3 nose s1'].after == ('train deit3 baseline s0',
                                                   'select deit3 nose')
    assert steps['benchmark deit3'].copies == tuple(
        (osp.join(work, 'benchmark_deit3.json'), osp.join(work, d, 'benchmark.json'))
        for d in ('deit3_baseline', 'deit3_pruned_nose'))
    assert plan['cls_dirs'] == [osp.join(work, d) for d in (
        'baseline', 'pruned_nose', 'pruned_random', 'pruned_first', 'tome_nose',
        'deit3_baseline', 'deit3_pruned_nose')]
    assert len(_table(tmp_path, families=())['steps']) == len(steps) - 15


def test_derived_configs_are_the_base_config_merged(tmp_path):
    """The references resolve once their steps are done: the dilution config gets the
    selection file and the seed-0 checkpoint, the pruned one the selected layers."""
    import os

    from mmengine.config import Config

    from projects.demo.scheduler import LastCheckpoint, Resolver
    from projects.demo.steps import CONFIGS, DEMO_FAMILIES, VIT
    plan = _table(tmp_path, quick=False)
    steps = {s.name: s for s in plan['steps']}
    work = tmp_path / 'demo'
    (work / 'baseline' / 'seed0').mkdir(parents=True)
    (work / 'baseline' / 'seed0' / 'last_checkpoint').write_text('/ckpt/epoch_30.pth\n')
    (work / 'selection_nose.json').write_text(json.dumps({'selection': [4, 2]}))
    os.makedirs(work / 'configs')
    resolve = Resolver(str(work / 'configs'))
    dilute = resolve(steps['dilute nose s2'].args)
    assert dilute[1:] == ('--work-dir', str(work / 'dilute_nose' / 'seed2'), '--cfg-options',
                          'randomness.seed=2')
    assert dilute[0] == str(work / 'configs' / 'dilute_nose.py')
    cfg = Config.fromfile(dilute[0])
    base = Config.fromfile(osp.join(CONFIGS, 'deit-demo_nose_digits-16px.py'))
    assert cfg.load_from == '/ckpt/epoch_30.pth'
    assert cfg.custom_hooks[0] == dict(base.custom_hooks[0],
                                       selection_file=str(work / 'selection_nose.json'))
    assert cfg.custom_hooks[1:] == base.custom_hooks[1:]
    # the selection goes to the first custom hook: NoseSelectionHook in every family
    for family in (VIT, *DEMO_FAMILIES.values()):
        hooks = Config.fromfile(osp.join(CONFIGS, family.nose)).custom_hooks
        assert [h.type for h in hooks] == ['NoseSelectionHook', 'DilutionHook']
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == str(tmp_path / 'digits')
    assert cfg.optim_wrapper == base.optim_wrapper and cfg.train_cfg == base.train_cfg
    pruned = Config.fromfile(resolve(steps['test pruned nose s0'].args)[0])
    assert pruned.model.backbone.removed_layers == [2, 4]
    assert 'token_merge' not in pruned.model.backbone
    assert 'seed_varies' not in pruned
    # the random baseline: another set per seed, one row (seed_varies)
    (work / 'selection_random_seed1.json').write_text(json.dumps({'selection': [5, 0]}))
    random1 = Config.fromfile(resolve(steps['test pruned random s1'].args)[0])
    assert random1.model.backbone.removed_layers == [0, 5]
    assert random1.seed_varies == ['model.backbone.removed_layers']
    tome = Config.fromfile(resolve(steps['test nose+tome s1'].args)[0])
    assert tome.model.backbone.token_merge == dict(r=4, start=1, prop_attn=True)
    seg = Config.fromfile(resolve(steps['segmentation baseline'].args)[0])
    assert seg.model.backbone.init_cfg.checkpoint == '/ckpt/epoch_30.pth'
    assert seg.model.backbone.init_cfg.prefix == 'backbone.'
    assert seg.val_dataloader.dataset.data_root == str(tmp_path / 'seg' /
                                                       'ADEChallengeData2016')
    with pytest.raises(FileNotFoundError, match='last_checkpoint'):
        resolve(LastCheckpoint(str(work / 'deit3_baseline' / 'seed0')))


def test_segmentation_sets_are_chosen_on_the_task_and_share_one_recipe(tmp_path):
    """The task-selected sets come from the trained UperNet (seg_logits) and the
    classification backbone (dense, no checkpoint); every set is diluted from the trained
    UperNet by one config, its rows labelled with how the set was chosen."""
    from mmengine.config import Config

    from projects.demo.scheduler import Resolver
    plan = _table(tmp_path)
    steps = {s.name: s for s in plan['steps']}
    work = tmp_path / 'demo'
    for run in ('baseline/seed0', 'seg_baseline'):
        (work / run).mkdir(parents=True)
        (work / run / 'last_checkpoint').write_text(f'/ckpt/{run}.pth\n')
    for name, layers in (('selection_nose', [4, 2]), ('seg_selection_task', [5, 0])):
        (work / f'{name}.json').write_text(json.dumps({'selection': layers}))
    (work / 'configs').mkdir()
    resolve = Resolver(str(work / 'configs'))
    task = resolve(steps['select seg task'].args)
    assert task[1] == '/ckpt/seg_baseline.pth' and task[2:4] == ('--features', 'seg_logits')
    assert steps['select seg task'].after == ('segmentation baseline', )
    dense = resolve(steps['select seg dense'].args)
    assert dense[1:3] == ('--features', 'dense')  # no checkpoint: the config's init
    assert Config.fromfile(dense[0]).model.backbone.init_cfg.checkpoint == \
        '/ckpt/baseline/seed0.pth'
    for name, sel in (('task', 'seg_selection_task.json'), ('transferred',
                                                            'selection_nose.json')):
        args = resolve(steps[f'dilute seg {name} s1'].args)
        assert args[1:] == ('--work-dir', str(work / f'seg_dilute_{name}' / 'seed1'),
                            '--cfg-options', 'randomness.seed=1')
        cfg = Config.fromfile(args[0])
        assert cfg.load_from == '/ckpt/seg_baseline.pth'
        assert cfg.custom_hooks[0] == dict(type='NoseSelectionHook',
                                           selection_file=str(work / sel))
        assert cfg.selected_on and cfg.model.backbone.init_cfg is None
    pruned = Config.fromfile(resolve(steps['test seg task s2'].args)[0])
    assert pruned.model.backbone.removed_layers == [0, 5]
    assert pruned.selected_on == 'seg_logits (trained UperNet)'
    assert str(work / 'seg_pruned_task') in plan['seg_dirs']
    assert 'test seg dense s2' in steps['benchmark segmentation'].after


def test_the_scheduler_runs_a_table_in_order_and_stops_at_a_failure(tmp_path, capsys):
    """Real tools in forked workers: a step starts after what it waits for, its log holds
    the command and the tool's output; a failing step raises naming its log."""
    from projects.demo.scheduler import (DemoStepFailed, Step, Workers, check_steps,
                                         run_steps)
    out = tmp_path / 'out'
    steps = [Step('help b', 'prune.py', ('--help', ), after=('help a', )),
             Step('help a', 'leaderboard.py', ('--help', )),
             Step('alone', 'prune.py', ('--help', ), after=('help a', ), alone=True)]
    pool = Workers(2, threads=1)
    try:
        wall, cpu = run_steps(steps, pool, str(out))
        printed = capsys.readouterr().out.splitlines()
        assert [line.split()[1:3] for line in printed if 'start' in line] == [
            ['start', 'help'], ['start', 'help'], ['start', 'alone']]
        assert printed[0] == '[demo] start  help a' and set(wall) == set(cpu) == {
            'help a', 'help b', 'alone'}
        log = (out / 'logs' / 'help_b.log').read_text()
        assert log.startswith('$ python tools/prune.py --help\nusage: prune.py')
        bad = [Step('bad', 'prune.py', (tmp_path / 'in.pth', tmp_path / 'o.pth', '--nope'))]
        with pytest.raises(DemoStepFailed) as info:
            run_steps(bad, pool, str(out))
        assert str(info.value) == (f"demo step 'bad' failed (exit 2); its log: "
                                   f"{out / 'logs' / 'bad.log'}")
        assert 'unrecognized arguments: --nope' in capsys.readouterr().err
    finally:
        pool.close()
    with pytest.raises(ValueError, match=r"step 'x' waits for unknown steps \['y'\]"):
        check_steps([Step('x', 'prune.py', (), after=('y', ))])
    with pytest.raises(ValueError, match=r"repeated: \['x'\]"):
        check_steps([Step('x', 'prune.py', ()), Step('x', 'test.py', ())])
