"""DivergenceHook: stop training at a non-finite loss instead of finishing with NaN weights."""
import math
from typing import Any, Optional

import torch
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from nose_mm.registry import HOOKS
from nose_mm.utils.cli import UserError

__all__ = ['DivergenceHook', 'TrainingDivergedError']


class TrainingDivergedError(UserError, RuntimeError):
    """Training produced a non-finite loss (a user error: one line, exit 2)."""


def _as_float(value: Any) -> Optional[float]:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else None
    if isinstance(value, (int, float)):
        return float(value)
    return None


@HOOKS.register_module()
class DivergenceHook(Hook):
    """Stop training when the loss stays non-finite (NaN or inf).

    After ``patience + 1`` such iterations in a row, calls ``after_train_failure`` and
    raises :class:`TrainingDivergedError` naming the iteration.

    Args:
        patience (int): Non-finite iterations tolerated in a row. Defaults to 0.
    """

    priority = 'ABOVE_NORMAL'  # before the checkpoint hook saves NaN weights

    def __init__(self, patience: int = 0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f'patience must be an integer >= 0, got {patience!r}')
        self.patience = patience
        self._bad = 0

    def before_train(self, runner) -> None:
        self._bad = 0

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        bad = None
        for key, value in (outputs or {}).items():
            number = _as_float(value) if 'loss' in key else None
            if number is not None and not math.isfinite(number):
                bad = (key, number)
                break
        if bad is None:
            self._bad = 0
            return
        self._bad += 1
        if self._bad <= self.patience:
            runner.logger.warning(f'DivergenceHook: {bad[0]} is {bad[1]} at iteration '
                                  f'{runner.iter + 1} ({self._bad}/{self.patience + 1} '
                                  f'tolerated in a row)')
            return
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1})'
        tolerated = (f' after {self._bad} in a row (patience={self.patience})'
                     if self.patience else '')
        message = (f'training diverged: {bad[0]} is {bad[1]} at {where}{tolerated}; lower the '
                   f'learning rate (optim_wrapper.optimizer.lr) or clip gradients '
                   f'(optim_wrapper.clip_grad), then train again or --resume from a checkpoint '
                   f'saved before the divergence')
        runner.logger.error(f'DivergenceHook: {message}')
        runner.call_hook('after_train_failure', error=message)
        raise TrainingDivergedError(message)
