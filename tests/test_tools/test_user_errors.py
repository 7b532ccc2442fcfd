"""User errors as a new user makes them: one ``nose_mm: error:`` line, exit 2, every tool.

Tools run in-process (``main(argv)``) on tiny data written in the real formats;
two subprocess tests show the exit status / single stderr line and ``--debug``.
"""
import os.path as osp
import subprocess
import time

import numpy as np
import pytest
import torch
from PIL import Image

from nose_mm.utils import cli
from tests.utils import REPO, TEST_CONFIGS, data_root_options, import_tool, run_tool

pytestmark = pytest.mark.usefixtures('one_thread')

CLS_CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')
SEG_CFG = osp.join(TEST_CONFIGS, 'tiny-upernet_ade20k.py')


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)


def _error(capsys, tool, *argv):
    """Run ``tools/<tool>`` in-process; return its one stderr line (exit status 2)."""
    capsys.readouterr()
    status = import_tool(tool).main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert err[-1].startswith('nose_mm: error: '), err
    return err[-1][len('nose_mm: error: '):]


def test_unregistered_type_names_registry_and_custom_imports(capsys, tiny_cifar100, tmp_path):
    message = _error(capsys, 'train.py', CLS_CFG, '--work-dir', tmp_path / 'w', '--cfg-options',
                     *data_root_options(tiny_cifar100), 'model.backbone.type=VisionTransformr')
    assert message == (
        "unknown type 'VisionTransformr': it is not in the mmpretrain::model registry (did you "
        "mean 'VisionTransformer'?); check the type names in the config, or register it by "
        "importing its module with custom_imports = dict(imports=[...])")


def test_misspelt_cfg_option_key_is_refused(capsys, tmp_path):
    message = _error(capsys, 'train.py', CLS_CFG, '--work-dir', tmp_path / 'w',
                     '--cfg-options', 'train_cfg.max_epoch=1')
    assert message == ("--cfg-options train_cfg.max_epoch: no key 'max_epoch' in train_cfg; "
                       "did you mean train_cfg.max_epochs? (keys there: by_epoch, max_epochs, "
                       "val_interval)")
    message = _error(capsys, 'nose_select.py', CLS_CFG, 'x.pth', '-k', '1', '--cfg-options',
                     'trian_dataloader.batch_size=2')
    assert message == (
        "--cfg-options trian_dataloader.batch_size: no key 'trian_dataloader' in the top level "
        "of the config; did you mean train_dataloader.batch_size? (keys there: custom_imports, "
        "data_preprocessor, data_root, dataset_type, default_hooks, default_scope, env_cfg, "
        "load_from, log_level, model, optim_wrapper, param_scheduler, ...)")
    # New keys unlike every key at their level are merged, as mmengine does.
    from nose_mm.utils.config import load_config
    cfg = load_config(CLS_CFG, {'model.backbone.init_cfg': None, 'train_cfg.max_epochs': 1,
                                'custom_hooks': []})
    assert cfg.train_cfg.max_epochs == 1 and 'init_cfg' in cfg.model.backbone


def test_empty_data_root(capsys, tmp_path):
    root = tmp_path / 'ade' / 'ADEChallengeData2016'
    for sub in ('images', 'annotations'):
        for split in ('training', 'validation'):
            (root / sub / split).mkdir(parents=True)
    message = _error(capsys, 'train.py', SEG_CFG, '--work-dir', tmp_path / 'w', '--cfg-options',
                     *data_root_options(root, ('train', 'val')))
    assert message == (f"cannot read ADE20KDataset at data_root '{root}' (a folder without any "
                       f"file): ValueError: need at least one array to concatenate")


def test_truncated_and_non_checkpoint_files(capsys, tiny_cifar100, tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(100, 100)}, 'meta': {}}, good)
    data = good.read_bytes()
    trunc = tmp_path / 'trunc.pth'
    trunc.write_bytes(data[:len(data) // 2])
    message = _error(capsys, 'test.py', CLS_CFG, trunc, '--work-dir', tmp_path / 'w',
                     '--cfg-options', *data_root_options(tiny_cifar100))
    # What follows is torch's reason, which depends on where the file was cut.
    assert message.startswith(f"cannot read checkpoint '{trunc}' (truncated or corrupt?): ")
    junk = tmp_path / 'notes.pth'
    junk.write_text('not a checkpoint')
    message = _error(capsys, 'train.py', CLS_CFG, '--work-dir', tmp_path / 'w', '--cfg-options',
                     *data_root_options(tiny_cifar100), f'load_from={junk}')
    assert message == (f"cannot read checkpoint '{junk}': not a torch checkpoint (neither a zip "
                       f"archive nor a pickle) nor a safetensors file")


def test_resume_from_weights_only_checkpoint(capsys, tiny_cifar100, tmp_path):
    pruned = tmp_path / 'pruned.pth'  # what tools/prune.py writes: weights and meta, no state
    torch.save({'state_dict': {'backbone.ln1.weight': torch.ones(32)},
                'meta': {'pruned_layers': [0]}}, pruned)
    message = _error(capsys, 'train.py', CLS_CFG, '--work-dir', tmp_path / 'w', '--resume',
                     pruned, '--cfg-options', *data_root_options(tiny_cifar100))
    assert message == (
        f"cannot resume from '{pruned}': it holds no training state (no meta (epoch, iter), "
        f"message_hub), e.g. a pruned or converted weights-only checkpoint; resume from a "
        f"checkpoint that training wrote (epoch_N.pth / iter_N.pth), or start a new run from "
        f"these weights with --cfg-options load_from={pruned}")


def _ade_with(tiny_ade20k, broken):
    """``tiny_ade20k`` with training annotation 2 replaced by ``broken(path)``."""
    path = osp.join(tiny_ade20k, 'annotations', 'training', 'ADE_train_00000002.png')
    broken(path)
    image = osp.join(tiny_ade20k, 'images', 'training', 'ADE_train_00000002.jpg')
    return path, image


def test_ade20k_annotation_of_another_size(capsys, tiny_ade20k, tmp_path):
    path, image = _ade_with(tiny_ade20k, lambda p: Image.fromarray(
        np.ones((48, 64), np.uint8)).save(p))
    message = _error(capsys, 'train.py', SEG_CFG, '--work-dir', tmp_path / 'w', '--cfg-options',
                     *data_root_options(tiny_ade20k, ('train', 'val')))
    assert message == (f"annotation '{path}' is 48x64 pixels but its image '{image}' is 64x64; "
                       f"an annotation must have its image's size")


def test_ade20k_truncated_annotation(tiny_ade20k):
    from mmengine.config import Config

    from nose_mm.datasets.checks import DataError, build_dataset

    def truncate(p):
        data = open(p, 'rb').read()
        open(p, 'wb').write(data[:len(data) // 3])

    path, image = _ade_with(tiny_ade20k, truncate)
    cfg = Config.fromfile(SEG_CFG).train_dataloader.dataset
    cfg.data_root = tiny_ade20k
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    dataset = build_dataset(cfg.to_dict())
    index = [dataset.get_data_info(i)['seg_map_path'] for i in range(len(dataset))].index(path)
    with pytest.raises(DataError) as info:
        dataset[index]
    assert str(info.value) == (f"cannot load sample '{image}', '{path}': "
                               f"UnidentifiedImageError: cannot identify image file "
                               f"<_io.BytesIO object>")


@pytest.mark.parametrize('tool, argv', [
    ('nose_select.py', [CLS_CFG, 'x.pth', '-k', '1', '--out', '{bad}/sel.json']),
    ('benchmark.py', [CLS_CFG, '--out', '{bad}/bench.json']),
    ('leaderboard.py', ['work_dirs', '--out', '{bad}/lb.md']),
    ('prune.py', ['x.pth', '{bad}/pruned.pth']),
    ('convert/deit_to_mmpretrain.py', ['x.pth', '{bad}/out.pth']),
    ('analysis/frequency.py', [CLS_CFG, 'x.pth', '--out', '{bad}/freq']),
])
def test_unwritable_output_refused_before_any_work(capsys, tmp_path, tool, argv):
    bad = tmp_path / 'a_file'
    bad.write_text('')
    flag = argv[argv.index('--out')] if '--out' in argv else (
        'OUT' if tool == 'prune.py' else 'DST')
    out = [a for a in argv if '{bad}' in a][0].format(bad=bad)
    message = _error(capsys, tool, *[a.format(bad=bad) for a in argv])
    assert message == f"{flag} '{out}' cannot be written: '{bad}' is a file, not a folder"


def test_unwritable_work_dir_and_folders(capsys, tiny_cifar100, tmp_path):
    start = time.perf_counter()
    message = _error(capsys, 'train.py', CLS_CFG, '--work-dir', '/proc/nose_mm_work',
                     '--cfg-options', *data_root_options(tiny_cifar100))
    assert message.startswith("work dir '/proc/nose_mm_work' cannot be written: cannot create "
                              "files in '/proc' (")
    assert message.endswith('); choose a writable location')
    assert time.perf_counter() - start < 5  # refused before the Runner is built
    message = _error(capsys, 'leaderboard.py', 'work_dirs', '--out', tmp_path)
    assert message == f"--out '{tmp_path}' is a folder, expected a file name"


def test_benchmark_batch_too_large_for_memory(capsys):
    message = _error(capsys, 'benchmark.py', CLS_CFG, '--batch-size', 10 ** 7, '--img-size',
                     '32', '--no-memory', '--repeats', 1, '--warmup', 0)
    assert message == ('--batch-size 10000000 does not fit in cpu memory; pass a smaller one, '
                       'e.g. --batch-size 5000000')


@pytest.mark.parametrize('script, argv, usage', [
    ('dist_train.sh', [], 'bash tools/dist_train.sh CONFIG NPROC [train.py args...]'),
    ('dist_test.sh', ['a.py', 'b.pth'],
     'bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]'),
    ('slurm_train.sh', [], 'bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR '
                           '[train.py args...]'),
])
def test_launch_scripts_without_arguments(script, argv, usage):
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', script), *argv],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr == f'nose_mm: error: usage: {usage}\n'
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), 'a.py', 'two'],
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stderr) == (
        2, "nose_mm: error: NPROC must be a whole number of processes >= 1, got 'two'\n")


def test_known_errors_and_worker_messages():
    assert cli.user_error_message(KeyError('Foo is not in the mmseg::model registry. Please '
                                           'check...')) == (
        "unknown type 'Foo': it is not in the mmseg::model registry; check the type names in "
        "the config, or register it by importing its module with custom_imports = "
        "dict(imports=[...])")
    assert cli.user_error_message(KeyError('a bug')) is None
    assert cli.user_error_message(RuntimeError('shape mismatch')) is None
    oom = torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
    assert cli.user_error_message(oom) == (
        'out of memory (CUDA out of memory. Tried to allocate 2.00 GiB); use a smaller batch '
        'size, e.g. --cfg-options train_dataloader.batch_size=N')
    # A DataLoader worker's error is re-raised with the worker's traceback in its text.
    from nose_mm.datasets.checks import DataError
    wrapped = DataError('Caught DataError in DataLoader worker process 0.\nOriginal Traceback '
                        '(most recent call last):\n  File "x.py", line 1, in f\n'
                        'nose_mm.datasets.checks.DataError: cannot load sample \'a.jpg\'\n')
    assert cli.user_error_message(wrapped) == "cannot load sample 'a.jpg'"


def test_exit_status_single_line_and_debug_traceback(tmp_path):
    argv = ('train.py', CLS_CFG, '--work-dir', tmp_path / 'w', '--cfg-options',
            'train_cfg.max_epoch=1')
    proc = run_tool(*argv, check=False, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "nose_mm: error: --cfg-options train_cfg.max_epoch: no key 'max_epoch' in train_cfg; "
        "did you mean train_cfg.max_epochs? (keys there: by_epoch, max_epochs, val_interval)"]
    proc = run_tool(*argv, '--debug', check=False, timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and lines[0] == 'Traceback (most recent call last):'
    assert 'nose_mm.utils.cli.UserError: --cfg-options train_cfg.max_epoch' in proc.stderr
    assert lines[-1].startswith('nose_mm: error: --cfg-options train_cfg.max_epoch')


def test_every_tool_lists_debug(capsys):
    for tool in ('train.py', 'prune.py', 'analysis/selection_stability.py'):
        with pytest.raises(SystemExit):
            import_tool(tool).main(['--help'])
        assert '--debug' in capsys.readouterr().out


def test_unexpected_errors_keep_their_traceback(monkeypatch, tmp_path):
    """A bug (not a user error) propagates, so the tool prints its traceback."""
    from nose_mm.benchmark import leaderboard

    def bug(*args, **kwargs):
        raise ZeroDivisionError('a bug')

    monkeypatch.setattr(leaderboard, 'build_leaderboard', bug)
    with pytest.raises(ZeroDivisionError, match='a bug'):
        import_tool('leaderboard.py').main([str(tmp_path), '--out', str(tmp_path / 'lb.md')])
