"""Safe checkpoint loading: real files of every kind load, a payload never runs.

The legitimate files are written here by the code that writes them for users:
an mmengine Runner (mmpretrain, with the NOSE selection, dilution and EMA hooks,
best checkpoint), an mmseg Runner, timm's ``CheckpointSaver``, the reference
code's (lambda_vit / DeiT ``main.py``) training checkpoint, official DeiT
releases (``{'model': state_dict}``, also in the pre-1.6 non-zip format), an
mmcv 1.x era zoo file, and nose_mm's prune / convert outputs.
"""
import argparse
import io
import json
import os
import os.path as osp
import zipfile

import numpy as np
import pytest
import torch

from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import Runner

import nose_mm  # noqa: F401  (registries, the checkpoint loader)
from nose_mm.datasets import write_ade20k, write_cifar100
from nose_mm.models.convert import convert_deit_checkpoint, convert_lambda_vit
from nose_mm.models.dilution import META_COMPENSATE, META_DILUTED, META_LAM
from nose_mm.models.prune import convert_checkpoint_file, prune_checkpoint
from nose_mm.checkpoint.files import load_checkpoint_file, save_checkpoint_file
from nose_mm.checkpoint.reader import (TRUST_ENV, TRUST_NAMED, CheckpointLoadError,
                                     UnsafeCheckpointError, apply_trust_checkpoint, is_trusted,
                                     safe_torch_load, trust_scope)
from nose_mm.checkpoint.unpickler import ALLOWED_GLOBALS, is_allowed_global, scan_globals
from tests.utils import TEST_CONFIGS, data_root_options, import_tool, run_tool

CLS_CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')
SEG_CFG = osp.join(TEST_CONFIGS, 'tiny-upernet_ade20k.py')
OPT_IN = (f'pass --trust-checkpoint (or set {TRUST_ENV}=1, or trust_checkpoint = True in '
          'the config) if you trust this file')
NOT_TRUSTED = {TRUST_ENV: '0'}

pytestmark = pytest.mark.usefixtures('one_thread')


class Payload:
    """Unpickling this object runs ``exec``, which writes ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").write("payload ran")', )


def refusal(path, held="'builtins.exec'"):
    return (f'checkpoint {str(path)!r} holds {held}, which is not allowed in a safely '
            f'loaded checkpoint; {OPT_IN}')


def _images(rng, n, size):
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def _no_trust_from_outside(monkeypatch):
    # setenv first records the caller's state, so opt-ins set by a test are undone
    monkeypatch.setenv(TRUST_ENV, '0')


@pytest.fixture(scope='module')
def cifar(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = str(tmp_path_factory.mktemp('cifar'))
    write_cifar100(root, _images(rng, 8, 32), rng.integers(0, 100, 8).tolist(),
                   _images(rng, 4, 32), rng.integers(0, 100, 4).tolist())
    return root


def _timm_vit():
    import timm
    torch.manual_seed(0)
    return timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=4, num_heads=2, mlp_ratio=2,
        num_classes=100)


def _run_cls(cifar, work):
    """Two epochs of a NOSE run: selection hook, dilution to lam = 0, EMA, best ckpt."""
    cfg = Config.fromfile(CLS_CFG)
    cfg.model.backbone.type = 'NoseVisionTransformer'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = cifar
    cfg.work_dir = str(work)
    cfg.log_level = 'WARNING'
    cfg.custom_hooks = [
        dict(type='NoseSelectionHook', num_layers=2, num_samples=8, batch_size=4,
             progress=False),
        dict(type='DilutionHook', end=1),
        dict(type='EMAHook'),
    ]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, save_best='auto')
    Runner.from_cfg(cfg).train()


def _run_seg(tmp_path_factory, work):
    rng = np.random.default_rng(2)
    root = str(tmp_path_factory.mktemp('ade'))
    for split in ('training', 'validation'):
        labels = np.zeros((2, 64, 64), np.uint8)
        labels[:, 32:] = 3
        write_ade20k(root, split, _images(rng, 2, 64), labels)
    cfg = Config.fromfile(SEG_CFG)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = osp.join(root, 'ADEChallengeData2016')
    cfg.work_dir = str(work)
    cfg.log_level = 'WARNING'
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=2)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
    Runner.from_cfg(cfg).train()
    return str(work / 'iter_2.pth')


def _reference_training_checkpoint(path):
    """What the reference's ``main_lambda.py`` (as DeiT's ``main.py``) saves each epoch."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV2, NativeScaler, get_state_dict
    model = _timm_vit()
    args = argparse.Namespace(  # the kinds of values its argparse arguments hold
        model='deit_small_patch16_224', batch_size=128, epochs=300, lr=5e-4, opt='adamw',
        opt_betas=None, sched='cosine', model_ema=True, model_ema_decay=0.99996,
        repeated_aug=True, color_jitter=0.3, smoothing=0.1, data_path='/data/imagenet',
        output_dir='out', resume='', distributed=False, gpu=0, world_size=1,
        dist_url='env://', nb_classes=1000, pruned=[0, 3], decay_epochs=30)
    optimizer = create_optimizer_v2(model, 'adamw', lr=5e-4, weight_decay=0.05)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    scheduler, _ = create_scheduler_v2(optimizer, 'cosine', num_epochs=3, warmup_epochs=1)
    scheduler.step(1)
    torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                'lr_scheduler': scheduler.state_dict(), 'epoch': 1,
                'model_ema': get_state_dict(ModelEmaV2(model)),
                'scaler': NativeScaler().state_dict(), 'args': args}, path)


def _timm_saver_checkpoint(folder):
    """timm's own train.py checkpoint (``CheckpointSaver``: args, EMA, metric, version)."""
    from timm.utils import CheckpointSaver, ModelEmaV3
    folder.mkdir()
    model = _timm_vit()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    saver = CheckpointSaver(model, optimizer, args=argparse.Namespace(model='vit', lr=0.1),
                            model_ema=ModelEmaV3(model), checkpoint_dir=str(folder),
                            recovery_dir=str(folder), max_history=1)
    saver.save_checkpoint(epoch=0, metric=0.5)
    return str(folder / 'last.pth.tar')


@pytest.fixture(scope='module')
def files(cifar, tmp_path_factory):
    """Every kind of legitimate checkpoint, by name -> path."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('ckpts')
    try:
        _run_cls(cifar, tmp / 'cls')
        out = {'runner': str(tmp / 'cls' / 'epoch_2.pth'),
               'runner_best': str(next((tmp / 'cls').glob('best_*.pth'))),
               'runner_seg': _run_seg(tmp_path_factory, tmp / 'seg')}
        out['pruned'] = str(tmp / 'pruned.pth')
        convert_checkpoint_file(out['runner'], out['pruned'], prune_checkpoint)
        vit = _timm_vit()
        out['deit_official'] = str(tmp / 'deit.pth')
        torch.save({'model': vit.state_dict()}, out['deit_official'])
        out['deit_legacy_format'] = str(tmp / 'deit_legacy.pth')
        torch.save({'model': vit.state_dict()}, out['deit_legacy_format'],
                   _use_new_zipfile_serialization=False)
        out['deit_converted'] = str(tmp / 'deit_mm.pth')
        convert_checkpoint_file(out['deit_official'], out['deit_converted'],
                                convert_deit_checkpoint)
        out['reference_training'] = str(tmp / 'checkpoint.pth')
        _reference_training_checkpoint(out['reference_training'])
        pruned_ref = {k: v for k, v in vit.state_dict().items()
                      if not k.startswith(('blocks.0.norm1', 'blocks.0.attn'))}
        out['reference_pruned'] = str(tmp / 'lambda.pth')
        torch.save({'model': pruned_ref}, out['reference_pruned'])
        out['reference_converted'] = str(tmp / 'lambda_nose.pth')
        convert_checkpoint_file(out['reference_pruned'], out['reference_converted'],
                                convert_lambda_vit)
        out['timm_saver'] = _timm_saver_checkpoint(tmp / 'timm')
        # mmcv 1.x era zoo file (mmseg 0.x / mmcls 0.x): meta with CLASSES / PALETTE.
        out['mmcv1_zoo'] = str(tmp / 'mmcv1.pth')
        torch.save({'meta': {'env_info': 'sys.platform: linux', 'config': 'model = dict()',
                             'mmcv_version': '1.3.0', 'time': 'Mon Jun 14 2021',
                             'CLASSES': ('wall', 'building'), 'PALETTE': [[120, 120, 120],
                                                                          [180, 120, 120]],
                             'epoch': 160, 'iter': 160000, 'hook_msgs': {}},
                    'state_dict': vit.state_dict(),
                    'optimizer': torch.optim.SGD(vit.parameters(), lr=0.1).state_dict()},
                   out['mmcv1_zoo'])
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope='module')
def payload(files, tmp_path_factory):
    """A real Runner checkpoint whose meta also carries a :class:`Payload`."""
    folder = tmp_path_factory.mktemp('payload')
    marker = folder / 'PAYLOAD_RAN'
    ckpt = torch.load(files['runner'], map_location='cpu', weights_only=False)
    ckpt['meta']['note'] = Payload(marker)
    path = folder / 'downloaded.pth'
    torch.save(ckpt, path)
    return path, marker


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (HistoryBuffer, argparse.Namespace)):
        return type(a) is type(b) and _same(vars(a), vars(b))
    if isinstance(a, dict):
        return (type(a) is type(b) and a.keys() == b.keys()
                and all(_same(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    return type(a) is type(b) and a == b


def test_every_kind_of_legit_checkpoint_loads_without_the_opt_in(files):
    for name, path in files.items():
        loaded = safe_torch_load(path, map_location='cpu')
        assert _same(loaded, torch.load(path, map_location='cpu', weights_only=False)), name
    runner = safe_torch_load(files['runner'])
    assert runner['meta']['dilution_lam'] == 0.0 and len(runner['meta']['dilution_layers']) == 2
    assert isinstance(runner['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert safe_torch_load(files['reference_training'])['args'].model_ema is True


def _pickled_globals(path):
    """Every global the main pickle of a torch file names, in either format."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith('/data.pkl')))
        return {f'{m}.{n}' for m, n in scan_globals(io.BytesIO(data))}
    with open(path, 'rb') as f:  # magic number, protocol, sys info, then the object
        for _ in range(3):
            scan_globals(f)
        return {f'{m}.{n}' for m, n in scan_globals(f)}


def test_the_allow_list_is_what_the_files_hold(files):
    held = set().union(*(_pickled_globals(p) for p in files.values()))
    assert all(is_allowed_global(*n.rsplit('.', 1)) for n in held), held
    storages = {n for n in held if n.endswith('Storage')}
    # what legitimate checkpoints name, beyond torch's storage types ...
    assert held - storages == {
        'collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', '_codecs.encode',
        'argparse.Namespace', '__builtin__.getattr',
        'mmengine.logging.history_buffer.HistoryBuffer', 'numpy.core.multiarray._reconstruct',
        'numpy.core.multiarray.scalar', 'numpy.dtype', 'numpy.ndarray'}
    # ... and what is allowed besides: other tensor dtypes, numpy 2's module names,
    # protocols 3 to 5, bytes / sets / complex / sizes / devices, parameters
    assert {'torch._utils._rebuild_tensor_v3', 'numpy._core.multiarray._reconstruct',
            'torch._utils._rebuild_parameter', 'torch.Size', 'torch.device'} <= ALLOWED_GLOBALS
    assert not {'torch._tensor._rebuild_from_type_v2', 'collections.Counter',
                'torch._utils._rebuild_parameter_with_state', 'builtins.eval'} & ALLOWED_GLOBALS


def test_a_payload_is_refused_before_it_runs(payload, files, tmp_path):
    path, marker = payload
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(path)
    assert str(info.value) == refusal(path)
    assert isinstance(info.value, ValueError)
    # the pre-1.6 (non-zip) format goes through torch's restricted unpickler
    legacy = tmp_path / 'legacy.pth'
    torch.save({'model': {'w': torch.ones(1)}, 'x': Payload(marker)}, legacy,
               _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(legacy)
    assert str(info.value) == refusal(legacy)
    # an allowed class asked to build a disallowed one is named too
    torch.save({'args': argparse.Namespace(x=Payload(marker))}, tmp_path / 'ns.pth')
    with pytest.raises(UnsafeCheckpointError, match="holds 'builtins.exec'"):
        safe_torch_load(tmp_path / 'ns.pth')
    # getattr is allowed only as HistoryBuffer pickles its statistics methods, and gives
    # no callable even then
    torch.save({'m': _GetAttr(HistoryBuffer, 'mean')}, tmp_path / 'ok.pth')
    with pytest.raises(UnsafeCheckpointError, match='_Statistic, which is not plain data'):
        safe_torch_load(tmp_path / 'ok.pth')
    torch.save({'m': _GetAttr(HistoryBuffer, '__init__')}, tmp_path / 'ga.pth')
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(tmp_path / 'ga.pth')
    assert str(info.value) == (
        f"checkpoint {str(tmp_path / 'ga.pth')!r} cannot be loaded safely (it calls getattr("
        f"mmengine.logging.history_buffer.HistoryBuffer, '__init__'); only getattr("
        f"HistoryBuffer, one of ['min', 'max', 'current', 'mean']) is allowed); {OPT_IN}")
    assert not marker.exists()


class _GetAttr:

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


def test_the_payload_is_live_with_the_opt_in(payload, monkeypatch, tmp_path):
    path, marker = payload
    live = tmp_path / 'live.pth'
    ckpt = {'meta': {'note': Payload(tmp_path / 'ran')}, 'state_dict': {}}
    torch.save(ckpt, live)
    safe_torch_load(live, trust=True)
    assert (tmp_path / 'ran').read_text() == 'payload ran'
    os.remove(tmp_path / 'ran')
    monkeypatch.setenv(TRUST_ENV, '1')
    safe_torch_load(live)
    assert (tmp_path / 'ran').exists()
    assert not marker.exists()


def test_unreadable_files_name_the_file(tmp_path, files):
    empty, text, cut = tmp_path / 'empty.pth', tmp_path / 'text.pth', tmp_path / 'cut.pth'
    empty.write_bytes(b'')
    text.write_text('not a checkpoint')
    data = open(files['deit_official'], 'rb').read()
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointLoadError) as info:
        safe_torch_load(empty)
    assert str(info.value) == f'cannot read checkpoint {str(empty)!r}: the file is empty'
    with pytest.raises(CheckpointLoadError) as info:
        safe_torch_load(text)
    assert str(info.value) == (f'cannot read checkpoint {str(text)!r}: not a torch checkpoint '
                               f'(neither a zip archive nor a pickle) nor a safetensors file')
    with pytest.raises(CheckpointLoadError) as info:
        safe_torch_load(cut)
    assert str(info.value).startswith(
        f'cannot read checkpoint {str(cut)!r} (truncated or corrupt?): ')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        safe_torch_load(tmp_path / 'missing.pth')


def test_opt_in_switches(monkeypatch, files, tmp_path):
    monkeypatch.delenv(TRUST_ENV)
    mine, other = files['deit_official'], files['deit_converted']
    with trust_scope():
        assert apply_trust_checkpoint(None, [mine]) == frozenset()
        assert apply_trust_checkpoint(None, [mine], Config(dict(trust_checkpoint=False))) == set()
        assert not is_trusted(mine)
        with pytest.raises(ValueError) as info:
            apply_trust_checkpoint(None, [mine], Config(dict(trust_checkpoint=1)))
        assert str(info.value) == ('config key trust_checkpoint must be True, False or a list '
                                   'of checkpoint files, got 1')
        with pytest.raises(ValueError, match="checkpoint to trust 'nope.pth' does not exist"):
            apply_trust_checkpoint(['nope.pth'])
        # the bare flag: the tool's own checkpoint, nothing else, and no environment change
        assert apply_trust_checkpoint([TRUST_NAMED], [mine, None]) == {osp.realpath(mine)}
        assert is_trusted(mine) and not is_trusted(other) and TRUST_ENV not in os.environ
        # another spelling of the same file is the same file
        assert is_trusted(osp.join(osp.dirname(mine), '.', osp.basename(mine)))
        with trust_scope():  # a nested tool run adds its own files and forgets them
            apply_trust_checkpoint(None, [mine], Config(dict(trust_checkpoint=[other])))
            assert is_trusted(other)
        assert not is_trusted(other) and is_trusted(mine)
    assert not is_trusted(mine)
    monkeypatch.setenv(TRUST_ENV, 'maybe')
    with pytest.raises(ValueError) as info:
        apply_trust_checkpoint()
    assert str(info.value) == f"{TRUST_ENV}='maybe' is not allowed; use 1 (trust checkpoints) or 0"
    monkeypatch.setenv(TRUST_ENV, '1')  # the process-wide opt-in
    assert is_trusted(mine) and is_trusted(other)


# Every entry point that reads a checkpoint, as a user runs it on a downloaded file.
ENTRY_POINTS = {
    'test.py': lambda ck, root, tmp: ['test.py', CLS_CFG, ck, '--work-dir', tmp / 'w',
                                      '--cfg-options', *data_root_options(root)],
    'train.py load_from': lambda ck, root, tmp: [
        'train.py', CLS_CFG, '--work-dir', tmp / 'w', '--cfg-options',
        *data_root_options(root), f'load_from={ck}'],
    'train.py --resume': lambda ck, root, tmp: [
        'train.py', CLS_CFG, '--work-dir', tmp / 'w', '--resume', ck, '--cfg-options',
        *data_root_options(root)],
    'train.py init_cfg Pretrained': lambda ck, root, tmp: [
        'train.py', CLS_CFG, '--work-dir', tmp / 'w', '--cfg-options',
        *data_root_options(root), 'model.backbone.init_cfg.type=Pretrained',
        f'model.backbone.init_cfg.checkpoint={ck}', 'model.backbone.init_cfg.prefix=backbone.'],
    'prune.py': lambda ck, root, tmp: ['prune.py', ck, tmp / 'out.pth'],
    'nose_select.py': lambda ck, root, tmp: [
        'nose_select.py', CLS_CFG, ck, '-k', 1, '-n', 4, '--out', tmp / 's.json',
        '--cfg-options', *data_root_options(root)],
    'benchmark.py': lambda ck, root, tmp: ['benchmark.py', CLS_CFG, ck, '--repeats', 1,
                                           '--warmup', 0, '--no-memory'],
    'convert/deit_to_mmpretrain.py': lambda ck, root, tmp: [
        'convert/deit_to_mmpretrain.py', ck, tmp / 'out.pth'],
    'convert/lambda_vit_to_nose.py': lambda ck, root, tmp: [
        'convert/lambda_vit_to_nose.py', ck, tmp / 'out.pth'],
    'analysis/block_entropy.py': lambda ck, root, tmp: [
        'analysis/block_entropy.py', CLS_CFG, ck, '-n', 4, '--out', tmp / 'o',
        '--cfg-options', *data_root_options(root)],
    'analysis/frequency.py': lambda ck, root, tmp: [
        'analysis/frequency.py', CLS_CFG, ck, '-n', 4, '--out', tmp / 'o',
        '--cfg-options', *data_root_options(root)],
    'analysis/random_skip.py': lambda ck, root, tmp: [
        'analysis/random_skip.py', CLS_CFG, ck, '--ks', 1, '-m', 1, '-n', 4, '--out', tmp / 'o',
        '--cfg-options', *data_root_options(root)],
    'analysis/selection_stability.py': lambda ck, root, tmp: [
        'analysis/selection_stability.py', CLS_CFG, ck, '-k', 1, '-n', 4, '--seeds', 0,
        '--splits', 'train', '--out', tmp / 'o', '--cfg-options', *data_root_options(root)],
}


@pytest.fixture(scope='module')
def forged(files, tmp_path_factory):
    """A real Runner checkpoint with the forged-pointer chain of issue 20 in its meta."""
    from tests.test_checkpoint.test_unpickler import FORGED_POINTER
    ckpt = torch.load(files['runner'], map_location='cpu', weights_only=False)
    ckpt['meta']['dilution_lam'] = FORGED_POINTER  # read as float() by tools/prune.py
    path = tmp_path_factory.mktemp('forged') / 'forged.pth'
    torch.save(ckpt, path)
    return path


def forged_refusal(path):
    return (f'checkpoint {str(path)!r} cannot be loaded safely (numpy dtype \'O\' is not '
            f'allowed (only the numeric types b1, c16, c8, f2, f4, f8, i1, i2, i4, i8, u1, u2, '
            f'u4, u8)); {OPT_IN}')


@pytest.mark.parametrize('entry', list(ENTRY_POINTS))
def test_entry_point_refuses_a_payload(entry, payload, forged, cifar, tmp_path, capsys):
    path, marker = payload
    for ckpt, expected in ((path, refusal(path)), (forged, forged_refusal(forged))):
        tool, *argv = ENTRY_POINTS[entry](ckpt, cifar, tmp_path)
        assert import_tool(tool).main([str(a) for a in argv]) == 2
        assert not marker.exists(), f'{entry} ran the payload'
        assert capsys.readouterr().err.strip().splitlines()[-1] == f'nose_mm: error: {expected}'
        assert not (tmp_path / 'out.pth').exists()


def test_tools_name_an_unreadable_checkpoint(cifar, tmp_path, capsys):
    garbage = tmp_path / 'garbage.pth'
    garbage.write_text('not a checkpoint')
    argv = ENTRY_POINTS['test.py'](garbage, cifar, tmp_path)[1:]
    assert import_tool('test.py').main([str(a) for a in argv]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f'nose_mm: error: cannot read checkpoint {str(garbage)!r}: not a torch checkpoint '
        f'(neither a zip archive nor a pickle) nor a safetensors file')


def test_a_user_running_test_py_on_a_payload(payload, cifar, tmp_path):
    path, marker = payload
    proc = run_tool(*ENTRY_POINTS['test.py'](path, cifar, tmp_path), env=NOT_TRUSTED,
                    check=False)
    assert not marker.exists()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == f'nose_mm: error: {refusal(path)}'


@pytest.mark.parametrize('how', ['--trust-checkpoint', 'environment', 'config'])
def test_entry_point_opt_in_runs_a_trusted_file(how, files, payload, cifar, tmp_path):
    _, shared_marker = payload
    ckpt = torch.load(files['runner'], map_location='cpu', weights_only=False)
    if how == 'config':  # test.py on the undiluted test config: a checkpoint that fits it
        for key in (META_DILUTED, META_LAM, META_COMPENSATE):
            ckpt['meta'].pop(key, None)
    ckpt['meta']['note'] = Payload(tmp_path / 'ran')
    trusted = tmp_path / 'trusted.pth'
    torch.save(ckpt, trusted)
    if how == 'config':  # the train / test tools honour `trust_checkpoint = True`
        argv = ENTRY_POINTS['test.py'](trusted, cifar, tmp_path)[1:] + ['trust_checkpoint=True']
        assert import_tool('test.py').main([str(a) for a in argv]) == 0
    elif how == 'environment':  # as a user exports it, for every process
        run_tool('prune.py', trusted, tmp_path / 'out.pth', env={TRUST_ENV: '1'})
    else:
        assert import_tool('prune.py').main([str(trusted), str(tmp_path / 'out.pth'), how]) == 0
    assert (tmp_path / 'ran').read_text() == 'payload ran'
    assert not shared_marker.exists()


def test_trust_is_scoped_to_the_named_files(files, payload, cifar, tmp_path, capsys):
    """``--trust-checkpoint`` trusts the tool's checkpoint argument, for that run only."""
    path, marker = payload
    ran = tmp_path / 'ran'
    ckpt = torch.load(files['runner'], map_location='cpu', weights_only=False)
    ckpt['meta']['note'] = Payload(ran)
    trusted = tmp_path / 'mine.pth'
    torch.save(ckpt, trusted)
    # benchmark: CHECKPOINT trusted, the --compare checkpoint is not
    argv = ENTRY_POINTS['benchmark.py'](trusted, cifar, tmp_path)[1:] + [
        '--compare', CLS_CFG, path, '--trust-checkpoint']
    assert import_tool('benchmark.py').main([str(a) for a in argv]) == 2
    assert ran.exists() and not marker.exists()
    assert capsys.readouterr().err.strip().splitlines()[-1] == f'nose_mm: error: {refusal(path)}'
    # train: the init_cfg file is not the run's checkpoint; naming it trusts it
    argv = [str(a) for a in ENTRY_POINTS['train.py init_cfg Pretrained'](path, cifar, tmp_path)]
    assert import_tool('train.py').main(argv[1:] + ['--trust-checkpoint']) == 2
    assert not marker.exists()
    assert TRUST_ENV not in os.environ or os.environ[TRUST_ENV] == '0'
    # after the runs nothing stays trusted in this process
    assert not is_trusted(trusted) and not is_trusted(path)
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(trusted)
    # a child process of a trusted run does not inherit the trust
    os.remove(ran)
    proc = run_tool('prune.py', trusted, tmp_path / 'out.pth', '--trust-checkpoint', path,
                    env=NOT_TRUSTED, check=False)
    assert proc.returncode == 2 and not ran.exists()
    assert proc.stderr.strip().splitlines()[-1] == f'nose_mm: error: {refusal(trusted)}'


def test_only_regular_files_are_read(tmp_path, files):
    fifo = tmp_path / 'x.pth'
    os.mkfifo(fifo)  # reading would block for ever
    with pytest.raises(CheckpointLoadError) as info:
        load_checkpoint_file(str(fifo))
    assert str(info.value) == (f'cannot read checkpoint {str(fifo)!r}: not a regular file (a '
                               f'FIFO, socket or device); pass the checkpoint file itself')
    with pytest.raises(CheckpointLoadError, match='not a regular file'):
        safe_torch_load('/dev/zero')
    # a link to a checkpoint is read; a TorchScript archive (code) is refused
    os.symlink(files['pruned'], tmp_path / 'link.pth')
    assert safe_torch_load(tmp_path / 'link.pth')['meta']['pruned_layers']
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / 'script.pt')
    with pytest.raises(CheckpointLoadError, match='it is a TorchScript archive'):
        safe_torch_load(tmp_path / 'script.pt')
    # the tar format of torch < 0.4 (torch's legacy loader extracts it) is refused
    import tarfile
    # (a member name starting with byte 0x80 makes it look like a pickle too)
    with tarfile.open(tmp_path / 'old.pth', 'w', format=tarfile.USTAR_FORMAT,
                      encoding='utf-8', errors='surrogateescape') as tar:
        tar.add(files['pruned'], arcname='\udc80pickle')
    assert (tmp_path / 'old.pth').read_bytes()[:1] == b'\x80'
    with pytest.raises(CheckpointLoadError, match='the tar format of torch < 0.4 is not'):
        safe_torch_load(tmp_path / 'old.pth')


def test_safetensors_round_trip_through_the_tools(files, cifar, tmp_path):
    """Pruned and converted models written as .safetensors; every tool reads them."""
    out = tmp_path / 'pruned.safetensors'
    run_tool('prune.py', files['runner'], out)
    as_pth = load_checkpoint_file(files['pruned'])
    as_st = load_checkpoint_file(str(out))
    assert as_st['meta']['pruned_layers'] == as_pth['meta']['pruned_layers']
    assert as_st['meta']['removed_layers'] == as_pth['meta']['removed_layers']
    assert as_st['meta']['dilution_lam'] == as_pth['meta']['dilution_lam'] == 0.0
    assert as_st['state_dict'].keys() == as_pth['state_dict'].keys()
    assert all(torch.equal(as_st['state_dict'][k], v) for k, v in as_pth['state_dict'].items())
    with open(out, 'rb') as f:  # no pickle in the file: a JSON header, then raw tensors
        assert b'\x80\x02' not in f.read(int.from_bytes(f.read(8), 'little'))
    # the converters write it too, and read timm's own safetensors weights
    from safetensors.torch import save_file
    save_file(_timm_vit().state_dict(), str(tmp_path / 'timm.safetensors'))
    run_tool('convert/deit_to_mmpretrain.py', tmp_path / 'timm.safetensors',
             tmp_path / 'mm.safetensors')
    converted = load_checkpoint_file(str(tmp_path / 'mm.safetensors'))
    reference = load_checkpoint_file(files['deit_converted'])
    assert converted['meta'] == reference['meta']
    assert all(torch.equal(converted['state_dict'][k], v)
               for k, v in reference['state_dict'].items())
    # a Runner checkpoint's weights as safetensors give the same test metric
    st_runner = tmp_path / 'runner.safetensors'
    full = load_checkpoint_file(files['runner'])
    save_checkpoint_file({'state_dict': full['state_dict'], 'meta': full['meta']}, str(st_runner))
    scores = []
    for ckpt in (files['runner'], st_runner):
        work = tmp_path / f'w{len(scores)}'
        run_tool(*ENTRY_POINTS['test.py'](ckpt, cifar, tmp_path)[:3], '--work-dir', work,
                 '--cfg-options', *data_root_options(cifar),
                 'model.backbone.type=NoseVisionTransformer')
        scores.append(json.load(open(next(work.rglob('results.json'))))['metrics'])
    assert scores[0] == scores[1]


def test_load_benchmark_tool_times_the_three_loaders(tmp_path):
    keep = tmp_path / 'runner.pth'
    proc = run_tool('analysis/benchmark_load.py', '--arch', 'deit-small', '--rounds', 1,
                    '--no-optimizer', '--keep', keep)
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith('deit-small Runner checkpoint, ') and '1 rounds' in lines[0]
    ratios = {line.split()[0]: float(line.split('= ')[-1]) for line in lines[1:]}
    assert set(ratios) == {'nose_mm', 'torch_weights_only', 'torch_unsafe'}
    assert ratios['nose_mm'] == 1.0 and all(r > 0 for r in ratios.values())
    # the file it timed is a Runner checkpoint the safe loader reads
    loaded = safe_torch_load(keep)
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
