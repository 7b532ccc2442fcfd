"""Distributed training on CPU (gloo) with mmengine 0.10.7 (docs/design.md)."""
import os

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS

__all__ = ['init_dist_if_needed', 'NoseDistributedDataParallel', 'default_wrapper_cfg']

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
#: The launcher's variables (and defaults) for torch's RANK, WORLD_SIZE and LOCAL_RANK.
LAUNCHER_ENV = {
    'slurm': (('SLURM_PROCID', '0'), ('SLURM_NTASKS', '1'), ('SLURM_LOCALID', '0')),
    'mpi': (('OMPI_COMM_WORLD_RANK', '0'), ('OMPI_COMM_WORLD_SIZE', '1'),
            ('OMPI_COMM_WORLD_LOCAL_RANK', '0')),
}


@MODEL_WRAPPERS.register_module(force=True)
class NoseDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also works for CPU modules (no ``device_ids``, BN).

    Args:
        module (nn.Module): The model to wrap.
        **kwargs: Passed to ``MMDistributedDataParallel``.
    """

    def __init__(self, module: torch.nn.Module, **kwargs) -> None:
        param = next(iter(module.parameters()), None)
        if param is None or param.device.type == 'cpu':
            kwargs['device_ids'] = None
            kwargs.pop('output_device', None)
            module = revert_sync_batchnorm(module)
        super().__init__(module=module, **kwargs)


def default_wrapper_cfg(find_unused_parameters: bool = False) -> dict:
    """The ``model_wrapper_cfg`` the tools set when a config leaves it empty."""
    return dict(type='NoseDistributedDataParallel', broadcast_buffers=False,
                find_unused_parameters=find_unused_parameters)


def _slurm_first_host() -> str:
    """The job's first node (every rank agrees on it), as mmengine's slurm init does."""
    nodes = os.environ.get('SLURM_NODELIST')
    if not nodes:
        return '127.0.0.1'
    import subprocess
    out = subprocess.run(['scontrol', 'show', 'hostname', nodes], capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] if out else '127.0.0.1'


def init_dist_if_needed(launcher: str) -> None:
    """Initialise the gloo process group on CPU machines (no CUDA) before the Runner does.

    Args:
        launcher (str): One of ``'none'``, ``'pytorch'``, ``'slurm'``, ``'mpi'``.

    Raises:
        ValueError: If ``launcher`` is not one of the allowed values.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'unknown launcher {launcher!r}; allowed: {", ".join(LAUNCHERS)}')
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return
    if launcher in LAUNCHER_ENV:
        # Map the launcher's variables onto the ones torch's env:// init reads.
        for name, (source, default) in zip(('RANK', 'WORLD_SIZE', 'LOCAL_RANK'),
                                           LAUNCHER_ENV[launcher]):
            os.environ.setdefault(name, os.environ.get(source, default))
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            os.environ['MASTER_ADDR'] = _slurm_first_host() if launcher == 'slurm' else '127.0.0.1'
    dist.init_process_group(backend='gloo')
