"""NoseRunner: mmengine's Runner with a strict checkpoint fit and one-line data errors."""
import re
from collections import OrderedDict

from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

from nose_mm.datasets.checks import BUILD_ERRORS, check_dataset, dataset_build_error
from nose_mm.checkpoint.fit import (apply_checkpoint_dilution, check_fit_cfg, dilution_meta,
                                    load_state_dict_checked)
from nose_mm.engine.resume_check import check_resume_config
from nose_mm.utils.cli import UserError

__all__ = ['NoseRunner']

FIT_HINT = ('To load part of it on purpose, set checkpoint_fit=dict(prefixes=["backbone."]) '
            '(only those keys loaded and compared), ignore_keys=[...] or strict=False in the '
            'config')


@RUNNERS.register_module()
class NoseRunner(Runner):
    """A Runner whose checkpoint loads refuse weights that do not fit the model.

    ``load_from`` and ``--resume`` raise ``CheckpointFitError`` on a misfit (the config's
    ``checkpoint_fit``, see :func:`~nose_mm.checkpoint.fit.check_fit_cfg`, allows partial
    ``load_from``) and apply a diluted checkpoint; dataloaders go through
    :mod:`nose_mm.datasets.checks`.
    """

    checkpoint_fit = check_fit_cfg(None)

    @classmethod
    def from_cfg(cls, cfg) -> 'NoseRunner':
        fit = check_fit_cfg(cfg.get('checkpoint_fit'))
        runner = super().from_cfg(cfg)
        runner.checkpoint_fit = fit
        return runner

    #: DilutionHook leaves the checkpoint's dilution record to this Runner (applied once).
    applies_checkpoint_dilution = True

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """mmengine's ``build_dataloader`` with :mod:`nose_mm.datasets.checks`."""
        cfg = dataloader.get('dataset') if isinstance(dataloader, dict) else None
        try:
            loader = Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        except BUILD_ERRORS as exc:
            raise dataset_build_error(cfg, exc) from exc
        check_dataset(loader.dataset, cfg)
        return loader

    def save_checkpoint(self, out_dir: str, filename: str, *args, meta=None, **kwargs):
        """mmengine's save, with the dilution the model runs in ``meta`` (docs/design.md)."""
        meta = dict(meta or {})
        meta.update(dilution_meta(self.model))
        return super().save_checkpoint(out_dir, filename, *args, meta=meta, **kwargs)

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):  # noqa: B006 - mmengine's
        """Load ``filename`` into the model; refuse a misfit (see the class docstring)."""
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        if self._resume:
            check_resumable(checkpoint, filename)
            check_resume_config(checkpoint, self.cfg, filename)
        self.loading_checkpoint = filename  # named in the hooks' errors
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        fit = self.checkpoint_fit
        if self._resume:  # a resumed run continues this very model: every key
            fit = dict(fit, prefixes=None, ignore_keys=[], strict=True)
        if fit['strict'] or strict:
            state_dict = checkpoint.get('state_dict', checkpoint)
            metadata = getattr(state_dict, '_metadata', None)
            for pattern, repl in revise_keys:
                state_dict = OrderedDict(
                    (re.sub(pattern, repl, k), v) for k, v in state_dict.items())
            if metadata is not None:
                state_dict._metadata = metadata
            load_state_dict_checked(model, state_dict, filename, prefixes=fit['prefixes'],
                                    ignore_keys=fit['ignore_keys'], hint=FIT_HINT)
        else:
            _load_checkpoint_to_model(model, checkpoint, False, revise_keys=revise_keys)
        applied = apply_checkpoint_dilution(model, checkpoint.get('meta'), filename)
        if applied:
            self.logger.info(f'NoseRunner: diluting layers {applied} as recorded in {filename}')
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint


def check_resumable(checkpoint: dict, filename: str) -> None:
    """Raise UserError unless the checkpoint holds the training state (meta, message hub)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    missing = [] if isinstance(meta, dict) and {'epoch', 'iter'} <= set(meta) else [
        'meta (epoch, iter)']
    if 'message_hub' not in checkpoint:
        missing.append('message_hub')
    if missing:
        raise UserError(
            f'cannot resume from {filename!r}: it holds no training state (no '
            f'{", ".join(missing)}), e.g. a pruned or converted weights-only checkpoint; '
            f'resume from a checkpoint that training wrote (epoch_N.pth / iter_N.pth), or '
            f'start a new run from these weights with --cfg-options load_from={filename}')
