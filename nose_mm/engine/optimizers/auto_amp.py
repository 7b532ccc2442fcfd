"""``AutoAmpOptimWrapper``: AMP where CUDA is available, fp32 ``OptimWrapper`` elsewhere."""
import torch
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

__all__ = ['auto_amp_optim_wrapper']

# Arguments of AmpOptimWrapper that OptimWrapper does not take.
AMP_ONLY_ARGS = ('loss_scale', 'dtype', 'use_fsdp')


@OPTIM_WRAPPERS.register_module(name='AutoAmpOptimWrapper')
def auto_amp_optim_wrapper(**kwargs) -> OptimWrapper:
    """Build ``AmpOptimWrapper`` if CUDA is available, else ``OptimWrapper`` (fp32).

    Args:
        **kwargs: ``AmpOptimWrapper`` arguments (AMP-only ones dropped without CUDA).

    Returns:
        OptimWrapper: An ``AmpOptimWrapper`` or a plain ``OptimWrapper``.
    """
    if torch.cuda.is_available():
        print_log('AutoAmpOptimWrapper: CUDA available, mixed precision on '
                  '(AmpOptimWrapper)', logger='current')
        return AmpOptimWrapper(**kwargs)
    for key in AMP_ONLY_ARGS:
        kwargs.pop(key, None)
    print_log('AutoAmpOptimWrapper: no CUDA, training in fp32 (OptimWrapper)',
              logger='current')
    return OptimWrapper(**kwargs)
