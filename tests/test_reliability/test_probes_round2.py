"""Reliability probes, round 2 (issue 26): the faults and bad inputs a new user meets on the
demo configs, each with the message the user reads. Nothing may be lost (no checkpoint of
non-finite weights, no shrunk leaderboard, no stale results.json ranked) and nothing may be
silently wrong (a diluted fine-tune's checkpoints, a resume with another config).

Tools run in-process (``main(argv)``) on a tiny copy of the demo's digits data (the
ImageNet folder layout) with the demo's model; one training run is shared by the probes
that only need its checkpoints.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
import torch

from nose_mm.utils import cli
from tests.utils import REPO, import_tool

pytestmark = pytest.mark.usefixtures('one_thread')

DEMO = osp.join(REPO, 'configs', 'demo')
BASE_CFG = osp.join(DEMO, 'deit-demo_baseline_digits-16px.py')
NOSE_CFG = osp.join(DEMO, 'deit-demo_nose_digits-16px.py')
DEIT3_CFG = osp.join(DEMO, 'deit3-demo_baseline_digits-16px.py')
ERR = 'nose_mm: error: '


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    """32 train / 16 val digits at 16 px in the ImageNet layout (the demo's data, smaller)."""
    from projects.demo.data import DIGIT_CLASSES, load_digit_images

    from nose_mm.datasets import write_image_folder
    images, labels = load_digit_images(16)
    root = str(tmp_path_factory.mktemp('digits'))
    write_image_folder(root, 'train', images[:32], labels[:32].tolist(), DIGIT_CLASSES)
    write_image_folder(root, 'val', images[32:48], labels[32:48].tolist(), DIGIT_CLASSES)
    return root


def tiny(root, *more, iters=2):
    """``--cfg-options`` for a short demo run on ``root``: ``iters`` iterations of 16."""
    return ['--cfg-options', *(f'{s}_dataloader.dataset.data_root={root}'
                               for s in ('train', 'val', 'test')),
            'train_dataloader.batch_size=16', 'val_dataloader.batch_size=16',
            'test_dataloader.batch_size=16', f'train_cfg.max_epochs={max(1, iters // 2)}',
            'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=1',
            'default_hooks.results.count_flops=False', *more]


def run(capsys, tool, *argv):
    """``tools/<tool>`` in-process: ``(status, stderr lines)``."""
    capsys.readouterr()
    status = import_tool(tool).main([str(a) for a in argv])
    return status, capsys.readouterr().err.strip().splitlines()


def error(capsys, tool, *argv):
    """The one ``nose_mm: error:`` line of a tool that must fail with exit 2."""
    status, err = run(capsys, tool, *argv)
    assert status == 2, err[-20:]
    assert err and err[-1].startswith(ERR), err[-20:]
    assert not any('Traceback' in line for line in err), err[-40:]
    return err[-1][len(ERR):]


# ---------------------------------------------------------------- data lost

def test_diverging_run_saves_no_non_finite_checkpoint_and_keeps_the_last_good(
        capsys, digits, tmp_path):
    """lr 1e10, a checkpoint every iteration, max_keep_ckpts=1: the loss of iteration 2 is
    finite but its update is not; iter_2.pth must not be written, iter_1.pth must stay."""
    work = tmp_path / 'work'
    message = error(capsys, 'train.py', BASE_CFG, '--work-dir', work,
                    *tiny(digits, 'optim_wrapper.optimizer.lr=1e10',
                          'default_hooks.checkpoint.by_epoch=False',
                          'default_hooks.checkpoint.max_keep_ckpts=1', iters=4))
    good = work / 'iter_1.pth'
    assert re.match(r'training diverged: the update left \d+ of 80 parameter tensors '
                    r'non-finite \(backbone\.cls_token, \.\.\.; loss=[\d.e+]+\) ', message)
    assert ' at iteration 2 (epoch 1); nothing after it was saved; the last checkpoint, ' \
        f'{good}, holds finite weights: start a new run from them with a lower learning rate ' \
        f'than lr=1e+10 (--cfg-options load_from={good} optim_wrapper.optimizer.lr=...) or ' \
        'clip gradients (optim_wrapper.clip_grad); --resume would bring back the diverging ' \
        'learning rate with the optimizer state' in message
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_1.pth']
    assert (work / 'last_checkpoint').read_text() == str(good)
    state = torch.load(good, map_location='cpu', weights_only=False)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    record = json.loads((work / 'results.json').read_text())
    assert (record['status'], record['error']) == ('failed', message)
    # the advice works: a new run from those weights with a sane lr trains and saves
    status, err = run(capsys, 'train.py', BASE_CFG, '--work-dir', tmp_path / 'again',
                      *tiny(digits, f'load_from={good}', 'optim_wrapper.optimizer.lr=1e-3'))
    assert status == 0, err[-10:]
    assert (tmp_path / 'again' / 'epoch_1.pth').is_file()


@pytest.fixture(scope='module')
def trained(digits, tmp_path_factory):
    """One finished demo baseline run (2 iterations, epoch_1.pth); returns its work dir."""
    work = tmp_path_factory.mktemp('trained') / 'base'
    assert import_tool('train.py').main(
        [BASE_CFG, '--work-dir', str(work), *tiny(digits)]) == 0
    assert (work / 'epoch_1.pth').is_file() and (work / 'results.json').is_file()
    return work


def _copy_run(trained, dest, **changes):
    """A copy of the trained run's results.json with ``changes`` applied; returns its path."""
    record = json.loads((trained / 'results.json').read_text())
    for key, value in changes.items():
        if key == 'top1':
            record['metrics']['top1'] = value
        else:
            record[key] = value
    dest.mkdir(parents=True)
    (dest / 'results.json').write_text(json.dumps(record))
    return dest / 'results.json'



def test_no_hook_can_save_non_finite_weights(digits, trained, tmp_path):
    """Weights made non-finite outside an iteration (a custom hook at the epoch's end,
    before the checkpoint hook): the save is refused, the last checkpoint kept and named."""
    from mmengine.hooks import Hook

    from nose_mm.apis import build_runner, load_config, setup_train_cfg
    from nose_mm.engine.hooks import TrainingDivergedError

    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))

    class SpoilAtEpochEnd(Hook):
        def after_train_epoch(self, runner):
            next(runner.model.parameters()).data.fill_(float('nan'))

    args = import_tool('train.py').parse_args(
        [BASE_CFG, *tiny(digits, 'train_cfg.max_epochs=2')])
    cfg = load_config(BASE_CFG, args.cfg_options)
    runner = build_runner(setup_train_cfg(cfg, BASE_CFG, work_dir=str(work), resume='auto'))
    runner.register_hook(SpoilAtEpochEnd())
    with pytest.raises(TrainingDivergedError) as info:
        runner.train()
    assert re.match(r'training diverged: the checkpoint to save holds 1 of \d+ parameter '
                    r'tensors non-finite \(backbone\.cls_token, \.\.\.; refused\) at '
                    r'iteration \d+ \(epoch 2\); ', str(info.value)), str(info.value)
    assert f'nothing after it was saved; the last checkpoint, {work / "epoch_1.pth"}, holds ' \
        'finite weights' in str(info.value)
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')


def test_leaderboard_with_a_mistyped_folder_writes_nothing(capsys, trained, tmp_path):
    other = tmp_path / 'runs' / 'second'
    _copy_run(trained, other)
    out = tmp_path / 't.md'
    status, _ = run(capsys, 'leaderboard.py', trained, other, '--no-reference', '--out', out)
    assert status == 0
    good = out.read_bytes()
    assert good.count(b'measured (train)') == 2
    typo = tmp_path / 'runs' / 'secnod'
    message = error(capsys, 'leaderboard.py', trained, typo, '--no-reference', '--out', out)
    assert message == (
        f"1 input(s) cannot be used (listed above; first: {typo}: no such file or folder); "
        f"{str(out)!r} not written: fix or remove them, or pass --allow-partial to write a "
        f"table that lists them as skipped")
    assert out.read_bytes() == good
    # the explicit flag writes the partial table and says in it what was skipped
    status, _ = run(capsys, 'leaderboard.py', trained, typo, '--no-reference', '--out', out,
                    '--allow-partial')
    text = out.read_text()
    assert status == 0 and text.count('measured (train)') == 1
    assert f'## Skipped inputs (this leaderboard is partial)\n\n- {typo}: no such file or ' \
        f'folder\n' in text


@pytest.mark.parametrize('changes, reason', [
    (dict(version=99), 'schema version 99: this nose_mm reads nose_mm.results version 2 only; '
                       "write the file again with nose_mm's ResultsHook (tools/train.py, "
                       'tools/test.py)'),
    (dict(top1=250.0), '"metrics.top1" is 250.0, expected a percentage in [0, 100]'),
])
def test_leaderboard_refuses_impossible_results_naming_the_file(capsys, trained, tmp_path,
                                                                 changes, reason):
    bad = _copy_run(trained, tmp_path / 'bad', **changes)
    out = tmp_path / 't.md'
    message = error(capsys, 'leaderboard.py', trained, bad.parent, '--no-reference', '--out',
                    out)
    assert message.startswith(f'1 input(s) cannot be used (listed above; first: {bad}: '
                              f'{reason}); ')
    assert not out.exists()


def test_a_killed_rerun_leaves_no_stale_results_and_gone_checkpoints_are_refused(
        capsys, digits, trained, tmp_path):
    """The earlier run's results.json (status ok) must not outlive the run that replaces it:
    a rerun moves it aside at its start; a record whose checkpoint is gone is refused."""
    from mmengine.hooks import Hook

    from nose_mm.apis import build_runner, load_config, setup_train_cfg

    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    record = json.loads((work / 'results.json').read_text())

    class KillAfterFirstIter(Hook):  # a Ctrl-C of the rerun, after its first iteration
        def after_train_iter(self, runner, *args, **kwargs):
            raise KeyboardInterrupt

    args = import_tool('train.py').parse_args([BASE_CFG, *tiny(digits)])
    cfg = load_config(BASE_CFG, args.cfg_options)
    runner = build_runner(setup_train_cfg(cfg, BASE_CFG, work_dir=str(work)))
    runner.register_hook(KillAfterFirstIter())
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    assert not (work / 'results.json').exists()
    assert json.loads((work / 'results.json.previous').read_text()) == record
    out = tmp_path / 't.md'
    message = error(capsys, 'leaderboard.py', trained, work, '--no-reference', '--out', out)
    assert message.startswith(
        f"1 input(s) cannot be used (listed above; first: {work}: a run started there and did "
        f"not finish (still running, or killed): no results.json, the earlier run's record is "
        f"results.json.previous); ")
    # a record from before this rule, whose checkpoint a later run removed: refused
    stale = _copy_run(trained, tmp_path / 'stale',
                      checkpoint=str(tmp_path / 'gone' / 'epoch_1.pth'))
    message = error(capsys, 'leaderboard.py', trained, stale.parent, '--no-reference', '--out',
                    out)
    assert message.startswith(
        f"1 input(s) cannot be used (listed above; first: {stale}: its checkpoint "
        f"{tmp_path / 'gone' / 'epoch_1.pth'} no longer exists (removed, or overwritten by a "
        f"later run in the same work dir): the record no longer describes a model that "
        f"exists); ")


# ---------------------------------------------------------------- silently wrong

def _diluted_copy(trained, path, layers=(2, 5), lam=0.5):
    """The trained checkpoint as a dilution fine-tune saves it (layers diluted at lam)."""
    ckpt = torch.load(trained / 'epoch_1.pth', map_location='cpu', weights_only=False)
    ckpt['meta'].update(dilution_layers=list(layers), dilution_lam=lam)
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize('how', ['load_from', 'init_cfg'])
def test_training_from_a_diluted_checkpoint_records_the_dilution(capsys, digits, trained,
                                                                 tmp_path, how):
    """No DilutionHook in the run: the model still runs the loaded dilution, so every
    checkpoint it writes must say so, and tools/test.py must test that model."""
    diluted = _diluted_copy(trained, tmp_path / 'diluted.pth')
    work = tmp_path / 'work'
    if how == 'load_from':
        cfg, more = BASE_CFG, [f'load_from={diluted}']
    else:
        cfg, more = tmp_path / 'from_diluted.py', []
        cfg.write_text(f"_base_ = ['{BASE_CFG}']\nmodel = dict(backbone=dict(init_cfg=dict("
                       f"_delete_=True, type='Pretrained', checkpoint='{diluted}', "
                       f"prefix='backbone.')))\n")
    status, err = run(capsys, 'train.py', cfg, '--work-dir', work, *tiny(digits, *more))
    assert status == 0, err[-10:]
    meta = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)['meta']
    assert (meta['dilution_layers'], meta['dilution_lam']) == ([2, 5], 0.5)
    status, err = run(capsys, 'test.py', BASE_CFG, work / 'epoch_1.pth', '--work-dir',
                      tmp_path / 'test', *tiny(digits))
    assert status == 0, err[-10:]
    model = json.loads((tmp_path / 'test' / 'results.json').read_text())['model']
    assert (model['diluted_layers'], model['dilution_lam']) == ([2, 5], 0.5)


@pytest.fixture(scope='module')
def nose_run(digits, tmp_path_factory):
    """A dilution fine-tune of the demo (selection 'first', K = 2), one epoch; its work dir."""
    folder = tmp_path_factory.mktemp('nose')
    cfg = folder / 'nose.py'
    cfg.write_text(f"_base_ = ['{NOSE_CFG}']\ncustom_hooks = [\n"
                   f"    dict(type='NoseSelectionHook', num_layers=2, method='first'),\n"
                   f"    dict(type='DilutionHook', schedule='linear', begin=0, end=7)]\n")
    work = folder / 'work'
    assert import_tool('train.py').main([str(cfg), '--work-dir', str(work), *tiny(digits)]) == 0
    return cfg, work


@pytest.mark.parametrize('change, difference', [
    ('custom_hooks.0.method=random',
     "custom_hooks[NoseSelectionHook].method: 'first' in the checkpoint, 'random' now"),
    ('custom_hooks.0.num_layers=3',
     'custom_hooks[NoseSelectionHook].num_layers: 2 in the checkpoint, 3 now'),
    ('custom_hooks.1.end=5', 'custom_hooks[DilutionHook].end: 7 in the checkpoint, 5 now'),
    ('model.backbone.arch.num_layers=4',
     'model.backbone.arch.num_layers: 6 in the checkpoint, 4 now'),
])
def test_resume_with_settings_that_decide_the_result_changed_is_refused(
        capsys, digits, nose_run, change, difference):
    cfg, work = nose_run
    message = error(capsys, 'train.py', cfg, '--work-dir', work, '--resume',
                    *tiny(digits, change, 'train_cfg.max_epochs=2'))
    assert message == (
        f"cannot resume from '{work / 'epoch_1.pth'}': the config differs from the one it was "
        f"trained with in what decides the result ({difference}); resume with the config it "
        f"was trained with, start a new run (another --work-dir, or load_from for the "
        f"weights), or set resume_allow_changes=True to continue with the changes")


def test_resume_with_changes_when_asked_explicitly(capsys, digits, nose_run, tmp_path):
    cfg, trained_work = nose_run
    work = tmp_path / 'work'
    shutil.copytree(trained_work, work)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    status, err = run(capsys, 'train.py', cfg, '--work-dir', work, '--resume',
                      *tiny(digits, 'custom_hooks.1.end=5', 'train_cfg.max_epochs=2',
                            'resume_allow_changes=True'))
    assert status == 0, err[-10:]
    assert (work / 'epoch_2.pth').is_file()


@pytest.mark.parametrize('key', ['cfg', 'config'])
def test_resume_never_runs_the_config_text_saved_in_a_checkpoint(
        capsys, digits, nose_run, tmp_path, key):
    cfg, trained_work = nose_run
    work, marker = tmp_path / 'work', tmp_path / 'ran'
    shutil.copytree(trained_work, work)
    ckpt = work / 'epoch_1.pth'
    checkpoint = torch.load(ckpt, map_location='cpu', weights_only=False)  # the test's own
    checkpoint['meta'][key] = (checkpoint['meta']['cfg'] if key == 'config' else '') + \
        f"\nx = __import__('os').system('touch {marker}')\n"
    torch.save(checkpoint, ckpt)
    (work / 'last_checkpoint').write_text(str(ckpt))
    message = error(capsys, 'train.py', cfg, '--work-dir', work, '--resume',
                    *tiny(digits, 'train_cfg.max_epochs=2'))
    assert message.startswith(f"cannot resume from '{ckpt}': the config saved in it "
                              f"(meta['{key}']) is not plain config data (line "), message
    assert 'nose_mm never runs code from a checkpoint' in message
    assert not marker.exists()


# ---------------------------------------------------------------- one line, not a traceback

def test_a_seed_varies_key_that_may_not_vary_is_one_line_before_anything_moves(
        capsys, digits, trained, tmp_path):
    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    message = error(capsys, 'train.py', BASE_CFG, '--work-dir', work,
                    *tiny(digits, "seed_varies=['optim_wrapper.optimizer.lr']"))
    assert message.startswith("seed_varies: 'optim_wrapper.optimizer.lr' may not vary between "
                              "the seeds of one row")
    assert message.endswith('(in the config)')
    assert (work / 'results.json').is_file()  # the earlier record is left where it was

@pytest.fixture(scope='module')
def deit3_checkpoint(tmp_path_factory):
    """The demo DeiT-III model's weights, as a Runner checkpoint holds them."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import nose_mm  # noqa: F401 - registers the backbones
    init_default_scope('mmpretrain')
    model = MODELS.build(Config.fromfile(DEIT3_CFG).model)
    path = tmp_path_factory.mktemp('deit3') / 'deit3.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


DEIT3_UNDER_VIT = ("does not fit the model: it is a DeiT-III checkpoint (family 'deit3') and "
                   "the model's backbone (NoseVisionTransformer) is family 'vit': use a config "
                   "whose backbone is of the checkpoint's family")


@pytest.mark.parametrize('how', ['test', 'load_from', 'init_cfg'])
def test_deit3_checkpoint_under_a_vit_config(capsys, digits, deit3_checkpoint, tmp_path, how):
    if how == 'test':
        argv = ['test.py', BASE_CFG, deit3_checkpoint, *tiny(digits)]
    elif how == 'load_from':
        argv = ['train.py', BASE_CFG, *tiny(digits, f'load_from={deit3_checkpoint}')]
    else:
        cfg = tmp_path / 'init.py'
        cfg.write_text(f"_base_ = ['{BASE_CFG}']\nmodel = dict(backbone=dict(init_cfg=dict("
                       f"_delete_=True, type='Pretrained', checkpoint='{deit3_checkpoint}', "
                       f"prefix='backbone.')))\n")
        argv = ['train.py', cfg, *tiny(digits)]
    message = error(capsys, *argv[:2], '--work-dir', tmp_path / 'w', *argv[2:])
    source = f'{deit3_checkpoint} [backbone.*]' if how == 'init_cfg' else deit3_checkpoint
    assert message == f"checkpoint '{source}' " + DEIT3_UNDER_VIT


def test_zero_byte_image(capsys, digits, tmp_path):
    root = tmp_path / 'digits'
    shutil.copytree(digits, root)
    empty = next((root / 'train' / 'digit_0').iterdir())
    empty.write_bytes(b'')
    message = error(capsys, 'train.py', BASE_CFG, '--work-dir', tmp_path / 'w', *tiny(root))
    assert message == f"cannot load sample '{empty}': '{empty}' is an empty file (0 bytes)"


@pytest.mark.parametrize('tool', ['test.py', 'train.py'])
def test_bare_tensor_pth(capsys, digits, tmp_path, tool):
    bare = tmp_path / 'tensor.pth'
    torch.save(torch.zeros(3), bare)
    argv = [BASE_CFG, bare, *tiny(digits)] if tool == 'test.py' else [
        BASE_CFG, *tiny(digits, f'load_from={bare}')]
    message = error(capsys, tool, *argv[:1], '--work-dir', tmp_path / 'w', *argv[1:])
    assert message == (f"cannot read checkpoint '{bare}': it holds a Tensor, not a checkpoint "
                       f"(a dict of weights, e.g. {{\"state_dict\": model.state_dict()}})")


def test_resume_when_last_checkpoint_names_a_missing_file(capsys, digits, trained, tmp_path):
    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    (work / 'epoch_1.pth').unlink()
    message = error(capsys, 'train.py', BASE_CFG, '--work-dir', work, '--resume', *tiny(digits))
    assert message == (f"--resume: {work / 'last_checkpoint'} names "
                       f"'{work / 'epoch_1.pth'}', which does not exist; the work dir holds no "
                       f"checkpoint; or remove {work / 'last_checkpoint'} to train from the start")


@pytest.mark.parametrize('out, reason', [
    ('/proc/preds.pkl', "--out '/proc/preds.pkl' cannot be written: cannot create files in "
                        "'/proc' (No such file or directory); choose a writable location"),
    ('preds.json', "--out 'preds.json': the predictions are written as a pickle; name the file "
                   "*.pkl (or *.pickle)")])
def test_test_out_checked_before_the_test(capsys, digits, trained, tmp_path, out, reason):
    message = error(capsys, 'test.py', BASE_CFG, trained / 'epoch_1.pth', '--work-dir',
                    tmp_path / 'w', '--out', out, *tiny(digits))
    assert message == reason
    assert not (tmp_path / 'w').exists()  # refused before any work


def test_storage_refusing_a_checkpoint_mid_run(capsys, digits, trained, tmp_path):
    """The file-size limit (EFBIG, as a full disk's ENOSPC or a read-only folder's EROFS)
    hits the epoch-2 checkpoint of a resumed run: one line, and epoch_1.pth still resumes."""
    import resource
    import signal

    work = tmp_path / 'work'
    shutil.copytree(trained, work)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    before = (work / 'epoch_1.pth').read_bytes()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, limits[1]))
    try:
        message = error(capsys, 'train.py', BASE_CFG, '--work-dir', work, '--resume',
                        *tiny(digits, 'train_cfg.max_epochs=2'))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert message == (f"cannot write '{work / 'epoch_2.pth'}': File too large; it was left as "
                       f"it was (the write went to a temporary file, removed): make room or "
                       f"write elsewhere")
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert (work / 'epoch_1.pth').read_bytes() == before
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')
    assert not list(work.glob('.*.nose_mm-tmp'))


@pytest.mark.slow  # one torchrun job (one process): ~10 s on the shared 2-core machine
def test_launch_script_ends_with_the_processes_line_and_exit_2(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop('PORT', None)
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_test.sh'), BASE_CFG, tmp_path / 'nope.pth', '1',
         '--work-dir', tmp_path / 'w'], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"nose_mm: error: checkpoint '{tmp_path / 'nope.pth'}' does not exist"]


def test_benchmark_threads_and_clock(capsys, trained):
    message = error(capsys, 'benchmark.py', BASE_CFG, trained / 'epoch_1.pth', '--threads', '0')
    assert message == '--threads must be a whole number >= 1 (torch intra-op threads), got 0'
    status, err = run(capsys, 'benchmark.py', BASE_CFG, trained / 'epoch_1.pth', '--threads',
                      '2', '--clock', 'process', '--batch-size', '2', '--repeats', '1',
                      '--warmup', '0', '--no-memory', '--device', 'cpu')
    assert status == 0, err[-10:]
    assert ('nose_mm: warning: --clock process sums the CPU time of all 2 torch threads, so it '
            'is not the time of one forward; use --threads 1 with it, or --clock wall') in err


def test_input_errors_keep_bugs_as_tracebacks(capsys, tmp_path):
    """INPUT_ERRORS (the tools that read user files): a missing file and nose_mm's own value
    checks are one line; a ValueError from inside a library or the interpreter, and an
    OSError that is not about a path, are bugs and keep their traceback."""
    import numpy as np

    from nose_mm.engine.hooks import DivergenceHook
    from nose_mm.utils.cli import INPUT_ERRORS, cli_main

    @cli_main(*INPUT_ERRORS)
    def main(argv=None):
        case = argv[0]
        if case == 'missing':
            open(tmp_path / 'nope.json')
        elif case == 'check':
            DivergenceHook(patience=-1)
        elif case == 'unpack':
            first, second = [1, 2, 3]
            return first + second
        elif case == 'numpy':
            np.zeros(3).reshape(2, 2)
        elif case == 'oserror':
            raise OSError('a socket broke')
        return 0

    assert main(['missing']) == 2
    assert capsys.readouterr().err == (f"nose_mm: error: [Errno 2] No such file or directory: "
                                       f"'{tmp_path / 'nope.json'}'\n")
    assert main(['check']) == 2
    assert capsys.readouterr().err == 'nose_mm: error: patience must be an integer >= 0, got -1\n'
    for case, exc in (('unpack', ValueError), ('numpy', ValueError), ('oserror', OSError)):
        with pytest.raises(exc):
            main([case])


# ---------------------------------------------------------------- reproducibility, stated

def test_demo_summary_names_the_machine_and_near_ties(capsys, digits, trained, tmp_path):
    """A real NOSE selection on the demo model (32 images): the margins come from its TE
    table; a margin below NEAR_TIE_NATS is reported as a near tie, with the CPU's name and
    the thread count the figures depend on."""
    from projects.demo.reproducibility import (NEAR_TIE_NATS, machine_record, near_ties,
                                               report_lines, selection_margins)
    out = tmp_path / 'selection.json'
    status, err = run(capsys, 'nose_select.py', BASE_CFG, trained / 'epoch_1.pth',
                      '--num-layers', '2', '--num-samples', '32', '--device', 'cpu',
                      '--no-progress', '--out', out, '--cfg-options',
                      f'train_dataloader.dataset.data_root={digits}')
    assert status == 0, err[-10:]
    record = json.loads(out.read_text())
    margins = selection_margins(record)
    assert [m['chosen'] for m in margins] == record['selection']
    for step, m in enumerate(margins):
        row = dict(zip(record['candidates'], record['te_table'][step]))
        others = [abs(v) for k, v in row.items() if v is not None and k != m['chosen']]
        assert m['margin'] == pytest.approx(min(others) - abs(row[m['chosen']]))
        assert m['margin'] >= 0  # greedy picks the smallest |TE|
    tied = dict(record, te_table=[[None if v is None else 0.0 for v in row]
                                  for row in record['te_table']])
    assert [t['step'] for t in near_ties(tied)] == [1, 2]  # equal TE: ties at every step
    machine = machine_record(workers=2, threads=1)
    lines = report_lines(machine, {'nose': near_ties(tied)[:1]}, {'nose': record['selection']})
    assert lines[0].startswith(f"ran on {machine['cpu_model']} (")
    assert lines[0].endswith('2 workers x 1 torch thread(s): the seeded figures repeat on this '
                             'CPU model at this thread count, not on other CPUs or thread '
                             'counts')
    tie = near_ties(tied)[0]
    assert lines[1] == (
        f"selection nose {record['selection']} is a near tie at step 1: layer {tie['chosen']} "
        f"beat layer {tie['runner_up']} by 0.000 nats (< {NEAR_TIE_NATS}), within the "
        f"calibration sample's noise: another sample, CPU or thread count may select the other "
        f"(README, selection stability)")
