"""Where a measurement ran: software versions (mmengine's ``collect_env``), CPU/GPU, git commit."""
import os
import os.path as osp
import platform
import re
import subprocess
from typing import Any, Dict, Optional

import torch
from mmengine.utils.dl_utils import collect_env

__all__ = ['env_info', 'git_commit']

#: ``collect_env`` keys recorded (the compile flags and seeds are left out).
_ENV_KEYS = {'PyTorch': 'torch', 'TorchVision': 'torchvision', 'MMEngine': 'mmengine',
             'OpenCV': 'opencv', 'CUDA available': 'cuda_available'}


def env_info() -> Dict[str, Any]:
    """Hardware and software facts recorded alongside results and benchmarks."""
    try:  # the CPU's model name (Linux)
        with open('/proc/cpuinfo', encoding='utf-8', errors='replace') as f:
            match = re.search(r'^model name\s*:\s*(.+)$', f.read(), re.MULTILINE)
    except OSError:
        match = None
    env = collect_env()
    info: Dict[str, Any] = {'python': platform.python_version()}
    info.update({name: env[key] for key, name in _ENV_KEYS.items() if key in env})
    info.update({'cpu': platform.processor() or platform.machine(), 'cpu_model':
                 match.group(1).strip() if match else None, 'num_threads': torch.get_num_threads(),
                 'hostname': platform.node(),
                 'world_size': int(os.environ.get('WORLD_SIZE', '1'))})
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(0)
    return info


def git_commit(path: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The git commit of the repository holding ``path`` (with a dirty flag, unlike mmengine's).

    Args:
        path (str, optional): A file or folder in the repository. Defaults to the
            running ``nose_mm``'s folder, then the current directory.

    Returns:
        dict | None: ``commit``, ``dirty`` (tracked files modified), ``repo``; None outside git.
    """
    candidates = [path] if path else [osp.dirname(osp.dirname(osp.abspath(__file__))),
                                      os.getcwd()]
    for where in candidates:
        folder = where if osp.isdir(where) else osp.dirname(where)

        def git(*args: str) -> Optional[str]:
            try:
                proc = subprocess.run(['git', '-C', folder, *args], capture_output=True,
                                      text=True, timeout=20)
            except (OSError, subprocess.SubprocessError):
                return None
            return proc.stdout.strip() if proc.returncode == 0 else None

        commit = git('rev-parse', 'HEAD')
        if commit:
            status = git('status', '--porcelain', '--untracked-files=no')
            return {'commit': commit, 'dirty': bool(status) if status is not None else None,
                    'repo': git('rev-parse', '--show-toplevel')}
    return None
