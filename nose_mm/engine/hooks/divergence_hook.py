"""DivergenceHook: stop training at a non-finite loss or non-finite weights, before a save."""
import math
import os.path as osp
from typing import Any, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from nose_mm.registry import HOOKS
from nose_mm.utils.cli import UserError

__all__ = ['DivergenceHook', 'TrainingDivergedError']


class TrainingDivergedError(UserError, RuntimeError):
    """Training produced a non-finite loss or weights (a user error: one line, exit 2)."""


def non_finite_tensors(tensors: dict) -> list:
    """Names of the floating-point tensors of ``tensors`` holding a NaN or inf."""
    named = [(k, v) for k, v in tensors.items()
             if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel()]
    if not named:
        return []
    flags = torch.stack([torch.isfinite(v).all() for _, v in named]).tolist()  # one sync
    return [k for (k, _), ok in zip(named, flags) if not ok]


def _as_float(value: Any) -> Optional[float]:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else None
    if isinstance(value, (int, float)):
        return float(value)
    return None


@HOOKS.register_module()
class DivergenceHook(Hook):
    """Stop training when the loss stays non-finite (NaN or inf) or an update makes weights so.

    After ``patience + 1`` such losses in a row, or at once when an update leaves a parameter
    non-finite (checked after every iteration, before the checkpoint hook saves, and again on
    every save), calls ``after_train_failure`` and raises :class:`TrainingDivergedError`
    naming the iteration and the last checkpoint, which holds finite weights.

    Args:
        patience (int): Non-finite losses tolerated in a row (e.g. AMP's skipped steps);
            non-finite weights never are. Defaults to 0.
    """

    priority = 'ABOVE_NORMAL'  # before the checkpoint hook saves NaN weights

    def __init__(self, patience: int = 0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f'patience must be an integer >= 0, got {patience!r}')
        self.patience = patience
        self._bad = 0

    def before_train(self, runner) -> None:
        self._bad = 0

    def _fail(self, runner, what: str) -> None:
        """Record the failure and raise with advice that works from the last good checkpoint."""
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1})'
        lr = runner.cfg.get('optim_wrapper', {}).get('optimizer', {}).get('lr')
        lower = f'a lower learning rate than lr={lr:g}' if isinstance(lr, (int, float)) \
            else 'a lower learning rate'
        last = runner.message_hub.get_info('last_ckpt')
        record = osp.join(runner.work_dir, 'last_checkpoint')
        if not (last and osp.isfile(last)) and osp.isfile(record):  # a save being refused
            with open(record, encoding='utf-8') as f:
                last = f.read().strip()
        if last and osp.isfile(last):
            advice = (f'nothing after it was saved; the last checkpoint, {last}, holds finite '
                      f'weights: start a new run from them with {lower} (--cfg-options '
                      f'load_from={last} optim_wrapper.optimizer.lr=...) or clip gradients '
                      f'(optim_wrapper.clip_grad); --resume would bring back the diverging '
                      f'learning rate with the optimizer state')
        else:
            advice = (f'no checkpoint was saved before it: train again with {lower} '
                      f'(--cfg-options optim_wrapper.optimizer.lr=...) or clip gradients '
                      f'(optim_wrapper.clip_grad)')
        message = f'training diverged: {what} at {where}; {advice}'
        runner.logger.error(f'DivergenceHook: {message}')
        runner.call_hook('after_train_failure', error=message)
        raise TrainingDivergedError(message)

    def _check_weights(self, runner, state: dict, what: str, note: str) -> None:
        bad = non_finite_tensors(state)
        if bad:
            self._fail(runner, f'{what} {len(bad)} of {len(state)} parameter tensors '
                               f'non-finite ({bad[0]}, ...; {note})')

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        losses = {k: _as_float(v) for k, v in (outputs or {}).items() if 'loss' in k}
        bad = next(((k, v) for k, v in losses.items()
                    if v is not None and not math.isfinite(v)), None)
        if bad is None:
            self._bad = 0
        else:
            self._bad += 1
            if self._bad > self.patience:
                tolerated = (f' after {self._bad} in a row (patience={self.patience})'
                             if self.patience else '')
                self._fail(runner, f'{bad[0]} is {bad[1]}{tolerated}')
            runner.logger.warning(f'DivergenceHook: {bad[0]} is {bad[1]} at iteration '
                                  f'{runner.iter + 1} ({self._bad}/{self.patience + 1} '
                                  f'tolerated in a row)')
        shown = ', '.join(f'{k}={v:.3g}' for k, v in losses.items() if v is not None)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._check_weights(runner, dict(model.named_parameters()), 'the update left',
                            shown or 'no loss logged')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to save non-finite weights (whichever hook saves)."""
        self._check_weights(runner, checkpoint.get('state_dict') or {},
                            'the checkpoint to save holds', 'refused')
