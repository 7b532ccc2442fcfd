"""``optim_wrapper=dict(type='AutoAmpOptimWrapper', ...)``: AMP where a GPU is.

The reference recipe trains with mixed precision on GPUs. mmengine's
``AmpOptimWrapper`` refuses to build without CUDA, so a config that asks for it
cannot run on a CPU machine. This builder picks ``AmpOptimWrapper`` when CUDA
is available and the plain ``OptimWrapper`` (fp32) otherwise, and logs which.
``tools/train.py --amp`` still forces AMP (and still refuses without a GPU).
"""
import torch
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

__all__ = ['AMP_ONLY_ARGS', 'auto_amp_optim_wrapper']

# Arguments of AmpOptimWrapper that OptimWrapper does not take.
AMP_ONLY_ARGS = ('loss_scale', 'dtype', 'use_fsdp')


@OPTIM_WRAPPERS.register_module(name='AutoAmpOptimWrapper')
def auto_amp_optim_wrapper(**kwargs) -> OptimWrapper:
    """Build ``AmpOptimWrapper`` if CUDA is available, else ``OptimWrapper``.

    Args:
        **kwargs: ``AmpOptimWrapper`` arguments (``optimizer``, ``clip_grad``,
            ``accumulative_counts``, ``loss_scale``, ``dtype``...). Without
            CUDA the AMP-only ones (:data:`AMP_ONLY_ARGS`) are not used.

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
