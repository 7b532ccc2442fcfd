"""A CheckpointHook whose "best" checkpoints are always prunable."""
from nose_mm.registry import HOOKS

from .dilution_hook import get_dilutable_modules
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = ['DilutionCheckpointHook']


@HOOKS.register_module()
class DilutionCheckpointHook(SafeCheckpointHook):
    """:class:`SafeCheckpointHook` that considers "best" checkpoints only at ``lam = 0``.

    ``save_best`` ignores evaluations at ``lam > 0``: the best checkpoint is prunable.

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
