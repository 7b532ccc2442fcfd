"""DilutionHook: drives ``lam`` of every dilutable backbone during training."""
import math
import numbers
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.utils import get_ori_model
from torch.nn.parallel import DistributedDataParallel

from nose_mm.models.dilution import (META_COMPENSATE, META_DILUTED, META_LAM, META_REMOVED,
                                     Dilutable, find_dilutable_modules, get_lam_schedule)
from nose_mm.checkpoint.fit import apply_checkpoint_dilution  # noqa: I001 (after models)
from nose_mm.registry import HOOKS

__all__ = ['DilutionHook', 'get_dilutable_modules']

UNITS = ('epoch', 'iter', 'fraction')


def get_dilutable_modules(runner) -> List[Dilutable]:
    """The :class:`~nose_mm.models.dilution.Dilutable` modules of ``runner.model``.

    Model wrappers (DDP, ``MMDistributedDataParallel``...) are unwrapped first.
    """
    return find_dilutable_modules(get_ori_model(runner.model))


@HOOKS.register_module()
class DilutionHook(Hook):
    """Set the dilution coefficient ``lam`` of every dilutable module from the progress.

    ``lam`` is a pure function of the progress, set before each training iteration (logged as
    ``train/dilution_lam``) and recorded with the dilution set-up in each checkpoint's meta.

    Args:
        end (float): Progress at which ``lam`` reaches 0, in ``unit``. Required.
        begin (float): Progress at which ``lam`` starts to fall from 1. Defaults to 0.
        schedule (str): ``'linear'`` or ``'cosine'``. Defaults to ``'linear'``.
        by_epoch (bool): Epoch (True) or iteration (False) granularity. Defaults to True.
        unit (str, optional): ``'epoch'``, ``'iter'``, ``'fraction'`` or None. Defaults to None.

    Example:
        >>> custom_hooks = [dict(type='DilutionHook', begin=0, end=299)]  # reference
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 end: float,
                 begin: float = 0,
                 schedule: str = 'linear',
                 by_epoch: bool = True,
                 unit: Optional[str] = None) -> None:
        self.schedule_fn = get_lam_schedule(schedule)
        self.schedule = schedule
        if not isinstance(by_epoch, bool):
            raise ValueError(f'by_epoch must be True or False, got {by_epoch!r}')
        self.by_epoch = by_epoch
        if unit is None:
            unit = 'epoch' if by_epoch else 'iter'
        if unit not in UNITS:
            raise ValueError(f'unit must be one of {UNITS} (or None), got {unit!r}')
        self.unit = unit
        for name, value in (('begin', begin), ('end', end)):
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or not math.isfinite(value) or value < 0):
                raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')
        if end < begin:
            raise ValueError(f'end ({end!r}) must be >= begin ({begin!r})')
        if unit == 'fraction' and end > 1:
            raise ValueError(f'with unit="fraction", begin and end must lie in [0, 1], '
                             f'got begin={begin!r}, end={end!r}')
        self.begin = float(begin)
        self.end = float(end)
        self._in_train = False
        self._train_lam: Optional[float] = None  # lam of the last training iteration
        self._loaded_lam: Optional[float] = None  # lam of the last loaded checkpoint
        self._module_cache = None

    def _lam(self, runner, epoch: int, iteration: int) -> float:
        """``lam`` at a position of the training (pure: from ``unit`` progress)."""
        loop = runner.train_loop
        if self.unit == 'fraction':
            progress = epoch / loop.max_epochs if self.by_epoch else iteration / loop.max_iters
        elif self.by_epoch:  # an epoch-based loop (checked in before_train)
            progress = epoch * len(loop.dataloader) if self.unit == 'iter' else epoch
        else:
            progress = iteration / len(loop.dataloader) if self.unit == 'epoch' else iteration
        return self.schedule_fn(float(progress), self.begin, self.end)

    def _modules(self, runner) -> List[Dilutable]:
        # Searching the module tree costs a few ms; do it once per model object.
        if self._module_cache is None or self._module_cache[0] is not runner.model:
            self._module_cache = (runner.model, get_dilutable_modules(runner))
        return self._module_cache[1]

    def _set_lam(self, runner, lam: float) -> None:
        for module in self._modules(runner):
            module.set_dilution_lam(lam)

    def before_train(self, runner) -> None:
        """Check the set-up: dilutable modules, loop type, DDP options."""
        modules = self._modules(runner)
        if not modules:
            raise ValueError('DilutionHook: the model has no dilutable module (a backbone '
                             'implementing nose_mm.models.dilution.Dilutable, e.g. '
                             'NoseVisionTransformer)')
        loop = runner.train_loop
        iter_based = isinstance(loop, IterBasedTrainLoop)
        if iter_based and (self.by_epoch or self.unit == 'epoch'):
            raise ValueError('DilutionHook: by_epoch=True and unit="epoch" need an epoch-based '
                             'train loop; with an iteration-based loop use by_epoch=False and '
                             'unit="iter" or "fraction"')
        self._in_train = True
        final = self._lam(runner, loop.max_epochs - 1, loop.max_iters - 1)
        diluted = any(m.diluted_layers for m in modules)
        model = runner.model
        if (diluted and final == 0 and isinstance(model, DistributedDataParallel)
                and not model.find_unused_parameters):
            raise RuntimeError(
                'DilutionHook: lam reaches 0 in this run, where diluted layers skip their '
                'attention and DDP with find_unused_parameters=False fails. Set '
                "model_wrapper_cfg=dict(type='NoseDistributedDataParallel', "
                'find_unused_parameters=True).')
        if not diluted:
            runner.logger.warning('DilutionHook: no layer is diluted (diluted_layers is '
                                  'empty); lam has no effect')
        elif final > 0:
            runner.logger.warning(
                f'DilutionHook: lam is still {final:.4g} at the last training step, so the '
                f'final checkpoint cannot be pruned (end={self.end:g} {self.unit} is beyond '
                f'the training length)')
        runner.logger.info(
            f'DilutionHook: {self.schedule} lam from 1 at {self.begin:g} to 0 at {self.end:g} '
            f'({self.unit}, {"epoch" if self.by_epoch else "iteration"} granularity), '
            f'diluted layers {[list(m.diluted_layers) for m in modules]}')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Set ``lam`` for this iteration and log it."""
        lam = self._lam(runner, runner.epoch, runner.iter)
        self._set_lam(runner, lam)
        self._train_lam = lam
        runner.message_hub.update_scalar('train/dilution_lam', lam)

    def after_train(self, runner) -> None:
        self._in_train = False

    def before_val(self, runner) -> None:
        """Evaluate with the training's current ``lam`` (or the loaded one)."""
        if self._in_train:
            lam = self._train_lam
            if lam is None:  # validation before the first iteration
                lam = self._lam(runner, runner.epoch, runner.iter)
            self._set_lam(runner, lam)
        elif self._train_lam is None and self._loaded_lam is not None:
            self._set_lam(runner, self._loaded_lam)

    def before_test(self, runner) -> None:
        """Test with the loaded checkpoint's ``lam`` (or the last trained one)."""
        lam = self._train_lam if self._train_lam is not None else self._loaded_lam
        if lam is not None:
            self._set_lam(runner, lam)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remember the checkpoint's ``lam``; under a Runner other than ``NoseRunner`` (which
        applies it itself, once) apply the checkpoint's dilution record to the model."""
        meta = checkpoint.get('meta') or {}
        lam = meta.get(META_LAM)
        self._loaded_lam = None if lam is None else float(lam)
        if getattr(runner, 'applies_checkpoint_dilution', False):
            return
        applied = apply_checkpoint_dilution(runner.model, meta, None)
        if applied:
            runner.logger.info(f'DilutionHook: diluting layers {applied} as recorded in the '
                               f'checkpoint')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record ``lam`` and the dilution set-up in the checkpoint's meta."""
        modules = self._modules(runner)
        if not modules:
            return
        module = modules[0]
        meta = checkpoint.setdefault('meta', {})
        meta[META_LAM] = float(module.get_dilution_lam())
        meta[META_DILUTED] = list(module.diluted_layers)
        meta[META_COMPENSATE] = bool(module.dilution_compensate)
        meta[META_REMOVED] = list(module.removed_layers)
        meta['dilution_schedule'] = dict(schedule=self.schedule, begin=self.begin,
                                         end=self.end, by_epoch=self.by_epoch, unit=self.unit)

