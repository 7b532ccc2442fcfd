from . import hooks, optimizers  # noqa: F401
from .runner import NoseRunner

__all__ = ['NoseRunner']
