"""RandomStateHook: checkpoints carry the random generators' state (docs/design.md)."""
import random
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from nose_mm.registry import HOOKS

__all__ = ['RandomStateHook', 'get_random_states', 'set_random_states']

#: Checkpoint key holding the states.
CKPT_KEY = 'random_states'


def get_random_states() -> Dict[str, Any]:
    """The global generators' states, as plain lists and tensors (no numpy objects)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        'python': [version, list(internal), gauss],
        'numpy': [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: Dict[str, Any]) -> None:
    """Restore what :func:`get_random_states` returned."""
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states['torch'])
    if states.get('cuda') is not None and torch.cuda.is_available():
        cuda = states['cuda']
        if len(cuda) != torch.cuda.device_count():
            raise RuntimeError(f'the checkpoint holds {len(cuda)} CUDA generator states, this '
                               f'machine has {torch.cuda.device_count()} GPUs')
        torch.cuda.set_rng_state_all(cuda)


def _train_sampler(runner) -> Optional[Any]:
    loader = getattr(runner.train_loop, 'dataloader', None)
    sampler = getattr(loader, 'sampler', None)
    if sampler is not None and not hasattr(sampler, 'seed'):
        sampler = getattr(getattr(loader, 'batch_sampler', None), 'sampler', None)
    return sampler if hasattr(sampler, 'seed') else None


def _restore_before_fetch(loop, inner: Iterator, skip: int, states: Dict[str, Any]) -> Iterator:
    """``loop``'s data iterator ``inner`` that restores ``states`` before fetch ``skip + 1``."""
    for _ in range(skip):
        yield next(inner)
    set_random_states(states)
    loop.dataloader_iterator = inner
    yield next(inner)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random generators' state in checkpoints and restore it on resume.

    Args:
        neutral_val (bool): Put the generators back after every validation. Defaults to True.
    """

    priority = 'LOWEST'

    def __init__(self, neutral_val: bool = True) -> None:
        if not isinstance(neutral_val, bool):
            raise ValueError(f'neutral_val must be True or False, got {neutral_val!r}')
        self.neutral_val = neutral_val
        self._loaded: Optional[Dict[str, Any]] = None
        self._before_val: Optional[Dict[str, Any]] = None
        self._started = False

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # saved during validation: the training stream as it was before validation
        states = dict(self._before_val or get_random_states())
        sampler = _train_sampler(runner)
        if sampler is not None:
            states['sampler'] = {'type': type(sampler).__name__, 'seed': sampler.seed,
                                 'epoch': getattr(sampler, 'epoch', None)}
        states['world_size'] = runner.world_size
        checkpoint[CKPT_KEY] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(CKPT_KEY)

    def before_train(self, runner) -> None:
        self._started = False

    def before_train_epoch(self, runner) -> None:
        if self._started:
            return
        self._started = True
        states, self._loaded = self._loaded, None
        if runner.iter == 0 and runner.epoch == 0:
            return  # a fresh run, or load_from (weights only): nothing to restore
        if states is None:
            runner.logger.warning('RandomStateHook: the resumed checkpoint holds no random '
                                  'states (saved without this hook): the run continues from '
                                  'the seed, not bit for bit')
            return
        if states.get('world_size', 1) != runner.world_size or runner.world_size > 1:
            runner.logger.warning(
                f'RandomStateHook: the checkpoint holds rank 0\'s random states of a '
                f'{states.get("world_size", 1)}-process run, this run has '
                f'{runner.world_size}: every rank restores them (not bit for bit)')
        sampler = _train_sampler(runner)
        saved = states.get('sampler')
        if sampler is not None and saved and sampler.seed != saved['seed']:
            runner.logger.info(f'RandomStateHook: train sampler seed {sampler.seed} -> '
                               f'{saved["seed"]} (the resumed run\'s)')
            sampler.seed = saved['seed']
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop) or not hasattr(loop, 'dataloader_iterator'):
            loader = loop.dataloader
            if getattr(loader, 'num_workers', 0) > 0 and getattr(loader, 'persistent_workers',
                                                                 False):
                runner.logger.warning(
                    'RandomStateHook: persistent data-loading workers keep their random '
                    'streams across epochs, a resumed run restarts them from the seed: the '
                    'augmentation differs from the uninterrupted run (set '
                    'train_dataloader.persistent_workers=False for exact resume)')
            set_random_states(states)
        else:
            loop.dataloader_iterator = _restore_before_fetch(loop, loop.dataloader_iterator,
                                                             runner.iter, states)
        runner.logger.info('RandomStateHook: random generator states restored from the '
                           'checkpoint')

    def after_train(self, runner) -> None:
        self._started = False

    def before_val(self, runner) -> None:
        if self.neutral_val and self._started:
            self._before_val = get_random_states()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            states, self._before_val = self._before_val, None
            set_random_states(states)
