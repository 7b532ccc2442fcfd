from .auto_amp import AMP_ONLY_ARGS, auto_amp_optim_wrapper

__all__ = ['AMP_ONLY_ARGS', 'auto_amp_optim_wrapper']
