"""DilutionHook on real mmengine Runners with a tiny ViT on tiny CIFAR-100."""
import os.path as osp
import uuid

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from nose_mm.engine.runner import NoseRunner

import nose_mm  # noqa: F401  (registers)
from nose_mm.engine.hooks import DilutionHook
from nose_mm.models.dilution import cosine_lam, linear_lam

TINY = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
ITERS_PER_EPOCH = 5  # 20 training images, batch 4


# Tiny models on a shared 2-core machine: one intra-op thread is much faster.
pytestmark = pytest.mark.usefixtures('one_thread')


class _Stop(Exception):
    """Raised by :class:`Interrupt` to kill a run after a checkpoint was saved."""


class Recorder(Hook):
    """Records (epoch, iter, lam, loss) per training iteration and lam per validation."""

    priority = 'LOW'  # after DilutionHook (ABOVE_NORMAL)

    def __init__(self):
        self.train, self.val, self.test = [], [], []

    @staticmethod
    def _lam(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return model.backbone.get_dilution_lam()

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._pending = (runner.epoch, runner.iter, self._lam(runner))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.train.append((*self._pending, float(outputs['loss'].detach())))

    def before_val_epoch(self, runner):
        self.val.append((runner.epoch, runner.iter, self._lam(runner)))

    def before_test_epoch(self, runner):
        self.test.append(self._lam(runner))


class Interrupt(Hook):
    """Stops training after epoch / iteration ``n`` (after its checkpoint is saved)."""

    priority = 'LOWEST'

    def __init__(self, epoch=None, iteration=None):
        self.epoch, self.iteration = epoch, iteration

    def after_train_epoch(self, runner):
        if self.epoch is not None and runner.epoch + 1 == self.epoch:
            raise _Stop

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.iteration is not None and runner.iter + 1 == self.iteration:
            raise _Stop


def _dataloader(root, split, iter_based=False):
    sampler = dict(type='InfiniteSampler' if iter_based else 'DefaultSampler',
                   shuffle=split == 'train', seed=0)
    return dict(batch_size=4, num_workers=0, sampler=sampler,
                dataset=dict(type='NoseCIFAR100', data_root=root, split=split,
                             download=False, verify_md5=False,
                             pipeline=[dict(type='PackInputs')]))


def _runner(work_dir, root, hook, *extra_hooks, max_epochs=3, max_iters=None, val=False,
            checkpoint=None, diluted=(0, 2), **kwargs):
    iter_based = max_iters is not None
    train_cfg = (dict(by_epoch=False, max_iters=max_iters, val_interval=1000) if iter_based
                 else dict(by_epoch=True, max_epochs=max_epochs, val_interval=1))
    model = dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=100,
                               mean=[129.3, 124.1, 112.4], std=[68.2, 65.4, 70.4]),
        backbone=dict(type='NoseVisionTransformer', arch=TINY, img_size=32, patch_size=8,
                      diluted_layers=list(diluted), drop_path_rate=0.0),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=100, in_channels=32))
    checkpoint = checkpoint or dict(type='CheckpointHook', interval=1, by_epoch=not iter_based)
    cfg = dict(
        model=model,
        work_dir=str(work_dir),
        experiment_name=f'dilution_{uuid.uuid4().hex[:8]}',
        train_dataloader=_dataloader(root, 'train', iter_based),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1), checkpoint=checkpoint),
        custom_hooks=[hook, *extra_hooks],
        randomness=dict(seed=0),
        default_scope='mmpretrain',
        log_level='WARNING',
        **kwargs)
    if val:
        cfg.update(val_dataloader=_dataloader(root, 'test'), val_cfg=dict(),
                   val_evaluator=dict(type='Accuracy', topk=(1, )))
    return NoseRunner(**cfg)  # the runner of every nose_mm run (configs/_base_/)


def _expected(schedule, progress, begin, end):
    return dict(linear=linear_lam, cosine=cosine_lam)[schedule](progress, begin, end)


@pytest.mark.parametrize('bad, message', [
    (dict(end=2, schedule='step'), "unknown dilution schedule 'step'"),
    (dict(end=2, unit='epochs'), r"unit must be one of \('epoch', 'iter', 'fraction'\)"),
    (dict(end=1, begin=2), r'end \(1\) must be >= begin \(2\)'),
    (dict(end=-1, begin=-3), 'begin must be a finite number >= 0, got -3'),
    (dict(end=float('inf')), 'end must be a finite number >= 0'),
    (dict(end='10'), "end must be a finite number >= 0, got '10'"),
    (dict(end=1.5, unit='fraction'), r'begin and end must lie in \[0, 1\]'),
    (dict(end=2, by_epoch='yes'), 'by_epoch must be True or False'),
])
def test_bad_arguments(bad, message):
    with pytest.raises(ValueError, match=message):
        DilutionHook(**bad)


def test_epoch_granularity_reference_schedule(tiny_cifar100, tmp_path):
    """lam(epoch) = max(0, 1 - epoch / 2): constant within an epoch, validation uses it."""
    recorder = Recorder()
    runner = _runner(tmp_path / 'w', tiny_cifar100, dict(type='DilutionHook', begin=0, end=2),
                     recorder, max_epochs=3, val=True)
    runner.train()
    assert len(recorder.train) == 3 * ITERS_PER_EPOCH
    for epoch, it, lam, _ in recorder.train:
        assert it // ITERS_PER_EPOCH == epoch
        assert lam == max(0.0, 1 - epoch / 2)
    # validation after epoch e runs at the lam of epoch e
    assert [lam for *_, lam in recorder.val] == [1.0, 0.5, 0.0]
    # logged through the message hub (log lines, visualizer backends)
    history = runner.message_hub.get_scalar('train/dilution_lam').data[0]
    assert list(history) == [lam for _, _, lam, _ in recorder.train]
    tag, line = runner.log_processor.get_log_after_iter(runner, 4, 'train')
    assert tag['dilution_lam'] == 0.0 and 'dilution_lam: 0.0000' in line
    # checkpoint meta
    for epoch, lam in ((1, 1.0), (2, 0.5), (3, 0.0)):
        meta = torch.load(osp.join(tmp_path, 'w', f'epoch_{epoch}.pth'),
                          weights_only=False)['meta']
        assert meta['dilution_lam'] == lam
        assert meta['dilution_layers'] == [0, 2] and meta['dilution_compensate'] is True
        assert meta['removed_layers'] == []
        assert meta['dilution_schedule']['end'] == 2


@pytest.mark.parametrize('hook_cfg, progress', [
    # iteration granularity, iteration bounds
    (dict(schedule='cosine', by_epoch=False, begin=2, end=12), lambda e, i: i),
    # iteration granularity, bounds as fractions of training
    (dict(schedule='linear', by_epoch=False, unit='fraction', begin=0.2, end=0.8),
     lambda e, i: i / 15),
    # epoch granularity, bounds as fractions
    (dict(schedule='cosine', by_epoch=True, unit='fraction', begin=0.0, end=2 / 3),
     lambda e, i: e / 3),
    # iteration granularity, bounds in (fractional) epochs
    (dict(schedule='linear', by_epoch=False, unit='epoch', begin=0.5, end=2.5),
     lambda e, i: i / ITERS_PER_EPOCH),
])
def test_lam_at_every_iteration(tiny_cifar100, tmp_path, hook_cfg, progress):
    recorder = Recorder()
    runner = _runner(tmp_path / 'w', tiny_cifar100, dict(type='DilutionHook', **hook_cfg),
                     recorder, max_epochs=3)
    runner.train()
    assert len(recorder.train) == 15
    for epoch, it, lam, _ in recorder.train:
        expected = _expected(hook_cfg['schedule'], progress(epoch, it), hook_cfg['begin'],
                             hook_cfg['end'])
        assert lam == pytest.approx(expected, abs=1e-12)
    assert recorder.train[-1][2] == 0.0


def test_resume_is_exact_epoch_based(tiny_cifar100, tmp_path):
    hook = dict(type='DilutionHook', begin=0, end=2)
    full = Recorder()
    _runner(tmp_path / 'full', tiny_cifar100, hook, full, max_epochs=3).train()

    first = Recorder()
    with pytest.raises(_Stop):
        _runner(tmp_path / 'cut', tiny_cifar100, hook, first, Interrupt(epoch=1),
                max_epochs=3).train()
    assert len(first.train) == ITERS_PER_EPOCH
    second = Recorder()
    _runner(tmp_path / 'resumed', tiny_cifar100, hook, second, max_epochs=3,
            load_from=str(tmp_path / 'cut' / 'epoch_1.pth'), resume=True).train()
    resumed = first.train + second.train
    assert [r[:3] for r in resumed] == [r[:3] for r in full.train]  # epoch, iter, lam
    assert [r[3] for r in resumed] == [r[3] for r in full.train]  # losses, bitwise


def test_resume_is_exact_iteration_based(tiny_cifar100, tmp_path):
    hook = dict(type='DilutionHook', schedule='cosine', by_epoch=False, begin=1, end=9)
    ckpt = dict(type='CheckpointHook', interval=3, by_epoch=False)
    full = Recorder()
    _runner(tmp_path / 'full', tiny_cifar100, hook, full, max_iters=10,
            checkpoint=ckpt).train()
    assert [lam for _, _, lam, _ in full.train] == pytest.approx(
        [cosine_lam(i, 1, 9) for i in range(10)], abs=1e-12)

    first = Recorder()
    with pytest.raises(_Stop):
        _runner(tmp_path / 'cut', tiny_cifar100, hook, first, Interrupt(iteration=6),
                max_iters=10, checkpoint=ckpt).train()
    second = Recorder()
    _runner(tmp_path / 'resumed', tiny_cifar100, hook, second, max_iters=10, checkpoint=ckpt,
            load_from=str(tmp_path / 'cut' / 'iter_6.pth'), resume=True).train()
    resumed = first.train + second.train
    assert [r[1:3] for r in resumed] == [r[1:3] for r in full.train]
    assert [r[3] for r in resumed] == [r[3] for r in full.train]  # losses, bitwise
    meta = torch.load(tmp_path / 'cut' / 'iter_6.pth', weights_only=False)['meta']
    assert meta['dilution_lam'] == pytest.approx(cosine_lam(5, 1, 9))


def test_epoch_settings_need_an_epoch_loop(tiny_cifar100, tmp_path):
    runner = _runner(tmp_path / 'w', tiny_cifar100, dict(type='DilutionHook', end=2),
                     max_iters=4)
    with pytest.raises(ValueError, match='need an epoch-based train loop'):
        runner.train()


def test_model_without_dilutable_backbone_is_an_error(tiny_cifar100, tmp_path):
    runner = _runner(tmp_path / 'w', tiny_cifar100, dict(type='DilutionHook', end=2),
                     max_epochs=1)
    runner.model.backbone = torch.nn.Identity()  # not dilutable
    with pytest.raises(ValueError, match='no dilutable module'):
        runner.train()


def test_test_run_uses_the_checkpoint_lam(tiny_cifar100, tmp_path):
    hook = dict(type='DilutionHook', begin=0, end=4)
    _runner(tmp_path / 'train', tiny_cifar100, hook, max_epochs=2).train()
    recorder = Recorder()
    runner = _runner(tmp_path / 'test', tiny_cifar100, hook, recorder, max_epochs=2,
                     load_from=str(tmp_path / 'train' / 'epoch_2.pth'),
                     test_dataloader=_dataloader(tiny_cifar100, 'test'), test_cfg=dict(),
                     test_evaluator=dict(type='Accuracy', topk=(1, )))
    runner.test()
    assert recorder.test == [0.75]  # lam of epoch 1 (the last trained) = 1 - 1/4


def test_test_run_adopts_layers_chosen_by_the_selection_hook(tiny_cifar100, tmp_path):
    """A config that names no diluted layers (NoseSelectionHook chose them) tests the
    trained model: the checkpoint's diluted layers are applied at its lam."""
    hook = dict(type='DilutionHook', begin=0, end=1)
    select = dict(type='NoseSelectionHook', num_layers=2, method='first')
    _runner(tmp_path / 'train', tiny_cifar100, hook, select, max_epochs=2, diluted=()).train()
    recorder = Recorder()
    runner = _runner(tmp_path / 'test', tiny_cifar100, hook, select, recorder, max_epochs=2,
                     diluted=(), load_from=str(tmp_path / 'train' / 'epoch_2.pth'),
                     test_dataloader=_dataloader(tiny_cifar100, 'test'), test_cfg=dict(),
                     test_evaluator=dict(type='Accuracy', topk=(1, )))
    runner.test()
    assert list(runner.model.backbone.diluted_layers) == [0, 1]
    assert recorder.test == [0.0]


@pytest.mark.parametrize('hook_type, best_epoch', [('CheckpointHook', 1),
                                                   ('DilutionCheckpointHook', 3)])
def test_best_checkpoint_only_at_lam_zero(tiny_cifar100, tmp_path, hook_type, best_epoch):
    """lam = 1, 0.5, 0 in epochs 1..3. The plain hook keeps the first best (lam > 0)."""
    checkpoint = dict(type=hook_type, interval=1, save_best='accuracy/top1')
    _runner(tmp_path / 'w', tiny_cifar100, dict(type='DilutionHook', begin=0, end=2),
            max_epochs=3, val=True, checkpoint=checkpoint).train()
    best = sorted(p.name for p in (tmp_path / 'w').glob('best_*.pth'))
    assert len(best) == 1 and best[0].endswith(f'epoch_{best_epoch}.pth'), best
    meta = torch.load(tmp_path / 'w' / best[0], weights_only=False)['meta']
    assert meta['dilution_lam'] == (0.0 if hook_type == 'DilutionCheckpointHook' else 1.0)


@pytest.fixture
def gloo_group(monkeypatch):
    """A one-process gloo group, so the Runner wraps the model in (CPU) DDP."""
    import torch.distributed as dist

    from nose_mm.utils.dist import init_dist_if_needed
    # MASTER_PORT=0: the single rank's store binds a free port itself (no race)
    for key, value in dict(MASTER_ADDR='127.0.0.1', MASTER_PORT='0', RANK='0',
                           WORLD_SIZE='1', LOCAL_RANK='0').items():
        monkeypatch.setenv(key, value)
    init_dist_if_needed('pytorch')
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize('find_unused', [False, True])
def test_under_ddp(tiny_cifar100, tmp_path, gloo_group, find_unused):
    recorder = Recorder()
    runner = _runner(tmp_path / 'w', tiny_cifar100, dict(type='DilutionHook', begin=0, end=1),
                     recorder, max_epochs=2, launcher='pytorch',
                     cfg=dict(model_wrapper_cfg=dict(type='NoseDistributedDataParallel',
                                                     find_unused_parameters=find_unused)))
    assert is_model_wrapper(runner.model)
    if not find_unused:
        with pytest.raises(RuntimeError, match='find_unused_parameters=True'):
            runner.train()
        return
    runner.train()
    assert [lam for _, _, lam, _ in recorder.train] == [1.0] * 5 + [0.0] * 5
    meta = torch.load(tmp_path / 'w' / 'epoch_2.pth', weights_only=False)['meta']
    assert meta['dilution_lam'] == 0.0 and meta['dilution_layers'] == [0, 2]
