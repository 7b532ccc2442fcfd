"""RandomStateHook: an interrupted and resumed run with random augmentation continues bit
for bit like the uninterrupted one (tools/train.py, real Runners, num_workers=0)."""
import glob
import importlib.util
import json
import time
import os.path as osp
import shutil

import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from tests.utils import REPO, TEST_CONFIGS, data_root_options

pytestmark = pytest.mark.usefixtures('one_thread')

# (config, total iterations, interrupted before, last checkpoint then, its iteration)
LOOPS = {
    'iter-based': ('tiny-vit-randaug_cifar100.py', 8, 6, 'iter_3.pth', 3, 'iter_8.pth'),
    'epoch-based': ('tiny-vit-randaug-epoch_cifar100.py', 15, 9, 'epoch_1.pth', 5,
                    'epoch_3.pth'),
}
# Worker processes: their generators restart from mmengine's seed at every iterator
# creation; the resumed run replays (iter-based) or restarts (epoch-based) them alike.
WORKERS = ['train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=False']
LOOPS['iter-based, 2 workers'] = LOOPS['iter-based'] + (WORKERS, )
LOOPS['epoch-based, 2 workers'] = LOOPS['epoch-based'] + (WORKERS, )



def _train(*argv):
    """``tools/train.py`` in this process (the interruption below patches its loop).

    Starts in a new second: mmengine names each run's log folder by the second it
    starts in, so two short runs in one second would share (and mix) one folder.
    """
    time.sleep(1.0 - time.time() % 1.0)
    spec = importlib.util.spec_from_file_location('_train_tool', osp.join(REPO, 'tools',
                                                                           'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main([str(a) for a in argv])


def _losses(work):
    """``{iteration: loss}`` of the latest run in ``work`` (its scalars.json)."""
    latest = sorted(glob.glob(osp.join(str(work), '2*', 'vis_data', 'scalars.json')))[-1]
    with open(latest) as f:
        rows = [json.loads(line) for line in f]
    return {r['iter']: r['loss'] for r in rows if 'loss' in r}


def _weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def _interrupt_at(monkeypatch, iteration):
    for loop in (EpochBasedTrainLoop, IterBasedTrainLoop):

        def interrupted(self, *args, _run_iter=loop.run_iter):
            if self._iter == iteration - 1:
                raise KeyboardInterrupt(f'test interruption before iteration {iteration}')
            _run_iter(self, *args)

        monkeypatch.setattr(loop, 'run_iter', interrupted)


@pytest.mark.slow  # four short training runs each: ~50 s on the shared 2-core machine
@pytest.mark.parametrize('loop', sorted(LOOPS))
def test_resumed_run_with_random_augmentation_repeats_every_loss(loop, tiny_cifar100, tmp_path,
                                                                  monkeypatch):
    name, total, cut_at, ckpt, ckpt_iter, last, *extra = LOOPS[loop]
    aug_cfg = osp.join(TEST_CONFIGS, name)
    opts = ['--cfg-options', *data_root_options(tiny_cifar100), *(extra[0] if extra else [])]
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    assert _train(aug_cfg, '--work-dir', full, *opts) == 0
    expected = _losses(full)
    assert sorted(expected) == list(range(1, total + 1))

    with monkeypatch.context() as patch:  # Ctrl-C mid-way, after the checkpoint `ckpt`
        _interrupt_at(patch, cut_at)
        with pytest.raises(KeyboardInterrupt):
            _train(aug_cfg, '--work-dir', cut, *opts)
    assert (cut / 'last_checkpoint').read_text() == str(cut / ckpt)
    assert _losses(cut) == {i: expected[i] for i in range(1, cut_at)}
    saved = torch.load(cut / ckpt, map_location='cpu', weights_only=False)
    assert set(saved['random_states']) == {'python', 'numpy', 'torch', 'sampler', 'world_size'}

    # A copy without the states resumes the mmengine way: augmentation differs at once.
    stale = tmp_path / 'stale'
    shutil.copytree(cut, stale)
    del saved['random_states']
    torch.save(saved, stale / ckpt)

    assert _train(aug_cfg, '--work-dir', cut, '--resume', *opts) == 0
    resumed = _losses(cut)
    assert sorted(resumed) == list(range(ckpt_iter + 1, total + 1))
    assert resumed == {i: expected[i] for i in resumed}  # every loss, exactly
    final, reference = _weights(cut / last), _weights(full / last)
    assert all(torch.equal(final[k], reference[k]) for k in reference)

    assert _train(aug_cfg, '--work-dir', stale, '--resume', stale / ckpt, *opts) == 0
    without = _losses(stale)
    assert without[ckpt_iter + 1] != expected[ckpt_iter + 1]
    assert not all(torch.equal(_weights(stale / last)[k], reference[k])
                   for k in reference)
    log = sorted(glob.glob(str(stale / '2*' / '2*.log')))[-1]
    with open(log) as f:
        assert ('RandomStateHook: the resumed checkpoint holds no random states (saved without '
                'this hook): the run continues from the seed, not bit for bit') in f.read()


def test_states_round_trip_and_load_without_unpickling_code(tmp_path):
    """Saved states restore every generator and load with ``weights_only=True``."""
    import random

    import numpy as np

    from nose_mm.engine.hooks.random_state_hook import get_random_states, set_random_states
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # a cached gaussian in numpy's state
    torch.save(get_random_states(), tmp_path / 'states.pth')
    first = (random.random(), np.random.rand(), np.random.randn(), torch.rand(3))
    states = torch.load(tmp_path / 'states.pth', weights_only=True)
    set_random_states(states)
    again = (random.random(), np.random.rand(), np.random.randn(), torch.rand(3))
    assert first[:3] == again[:3] and torch.equal(first[3], again[3])
