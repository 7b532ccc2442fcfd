from .auto_amp import auto_amp_optim_wrapper

__all__ = ['auto_amp_optim_wrapper']
