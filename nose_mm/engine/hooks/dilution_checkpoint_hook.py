"""A CheckpointHook whose "best" checkpoints are always prunable."""
from nose_mm.registry import HOOKS

from .dilution_hook import get_dilutable_modules
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['DilutionCheckpointHook']


@HOOKS.register_module()
class DilutionCheckpointHook(SafeCheckpointHook):
    """:class:`SafeCheckpointHook` that considers "best" checkpoints only at ``lam = 0``.

    A checkpoint with the best validation score while ``lam > 0`` still uses
    its diluted attention layers: it is not a pruned model, and selecting it
    as "the best" (the reference code's pitfall) reports the accuracy of a
    larger network. With this hook, evaluations while any dilutable module
    has diluted layers at ``lam > 0`` are ignored by ``save_best`` (they
    neither save a best checkpoint nor set the best score), so the best
    checkpoint is the best among prunable ones. Interval and last
    checkpoints are saved as usual (the prune tool refuses those with
    ``lam > 0``).

    Use it in place of the default checkpoint hook::

        default_hooks = dict(checkpoint=dict(
            type='DilutionCheckpointHook', interval=1, save_best='auto'))

    Saves are as safe as :class:`SafeCheckpointHook`'s (temporary file,
    rename, then removal of outdated checkpoints).

    Args:
        **kwargs: Same as :class:`SafeCheckpointHook`.
    """

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self.save_best:
            return
        lams = [m.get_dilution_lam() for m in get_dilutable_modules(runner) if m.diluted_layers]
        if any(lam > 0 for lam in lams):
            runner.logger.info(f'DilutionCheckpointHook: lam = {max(lams):.4g} > 0, this '
                               f'evaluation is not considered for the best checkpoint')
            return
        super()._save_best_checkpoint(runner, metrics)
