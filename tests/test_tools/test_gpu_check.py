"""tools/gpu_check.sh at test sizes on the CPU (--device cpu): throughput, working load by
the device's method and tracked, the resumed run repeating the uninterrupted one."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.utils import REPO, run_tool


@pytest.mark.slow  # one benchmark pair, one working-load search, two short trainings: ~25 s
def test_gpu_check_runs_on_cpu_at_test_sizes(tmp_path):
    proc = run_tool('gpu_check.py', '--device', 'cpu', '--out', tmp_path)
    summary = json.loads((tmp_path / 'summary.json').read_text())
    a, b = summary['models']['a'], summary['models']['b']
    assert summary['budget_gb'] == 0.05 and summary['batch_size'] == 4
    assert b['tracked_working_load']['fused'] == b['working_load'] > a['working_load'] > 100
    assert b['gain']['fused'] == pytest.approx(b['working_load'] / a['working_load'] - 1)
    resume = summary['resume']
    assert resume['ok'] and resume['same_losses'] and resume['same_weights']
    assert sorted(map(int, resume['losses_resumed'])) == [7, 8]
    assert not resume['cuda_state_saved']  # no CUDA here: nothing to restore
    assert f'working load fused {b["gain"]["fused"]:+.1%}' in proc.stdout
    assert 'resumed AMP run: losses equal True, weights equal True' in proc.stdout
    for name in ('throughput', 'working_load', 'train_full', 'train_resumed'):
        assert (tmp_path / f'{name}.log').stat().st_size > 0


def test_gpu_check_wrapper_and_refusal():
    env = dict(os.environ, PYTHON=sys.executable)
    wrapper = subprocess.run(['bash', 'tools/gpu_check.sh', '--help'], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
    assert wrapper.returncode == 0 and '--device {cuda,cpu}' in wrapper.stdout
    if not torch.cuda.is_available():
        proc = run_tool('gpu_check.py', '--device', 'cuda', check=False)
        assert proc.returncode == 2
        assert 'nose_mm: error: --device cuda, but CUDA is not available here' in proc.stderr


def test_the_wheelhouse_holds_every_requirement_setup_installs():
    """tools/setup_env.sh installs offline from tools/build_wheelhouse.sh's folder
    (PIP_NO_INDEX): every requirements file it installs must be downloaded there
    (mmcv.txt: both take a prebuilt wheel or build it)."""
    import re
    from pathlib import Path

    def files(script):
        return set(re.findall(r'-r "\$REQ/([\w.]+)"', Path(REPO, 'tools', script).read_text()))

    installed = files('setup_env.sh')
    assert {'torch.txt', 'runtime.txt', 'deploy.txt', 'tests.txt', 'mmcv.txt'} <= installed
    assert files('build_wheelhouse.sh') == installed
