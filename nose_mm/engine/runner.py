"""NoseRunner: mmengine's Runner with a strict checkpoint fit for ``load_from``, test and resume."""
import re
from collections import OrderedDict

from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

from nose_mm.models.checkpoint_fit import (apply_checkpoint_dilution, check_fit_cfg,
                                           load_state_dict_checked)

__all__ = ['NoseRunner']

FIT_HINT = ('To load part of it on purpose, set checkpoint_fit=dict(prefixes=["backbone."]) '
            '(only those keys loaded and compared), ignore_keys=[...] or strict=False in the '
            'config')


@RUNNERS.register_module()
class NoseRunner(Runner):
    """A Runner whose checkpoint loads refuse weights that do not fit the model.

    ``load_from`` (``tools/test.py``'s checkpoint) and ``--resume`` compare
    keys and shapes with the model and raise
    :class:`~nose_mm.models.CheckpointFitError` listing what differs, where
    mmengine's Runner only logs it. A diluted checkpoint is applied to the
    model (:func:`~nose_mm.models.apply_checkpoint_dilution`) after the hooks'
    ``after_load_checkpoint``. ``tools/train.py`` and ``tools/test.py`` use
    this Runner unless the config sets ``runner_type``.

    Config key ``checkpoint_fit`` (dict, optional) for deliberate partial
    loads through ``load_from``; resuming always compares every key:

    - ``prefixes`` (list of str): load and compare only keys under them,
      e.g. ``['backbone.']`` for a classification backbone into UperNet.
      Defaults to None (every key).
    - ``ignore_keys`` (list of str): regular expressions (full match) of keys
      allowed to be missing or unexpected. Defaults to [].
    - ``strict`` (bool): False keeps mmengine's log-only load. Defaults to
      True.
    """

    checkpoint_fit = check_fit_cfg(None)

    @classmethod
    def from_cfg(cls, cfg) -> 'NoseRunner':
        fit = check_fit_cfg(cfg.get('checkpoint_fit'))
        runner = super().from_cfg(cfg)
        runner.checkpoint_fit = fit
        return runner

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):  # noqa: B006 - mmengine's
        """Load ``filename`` into the model; refuse a misfit (see the class docstring)."""
        checkpoint = _load_checkpoint(filename, map_location=map_location)
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
