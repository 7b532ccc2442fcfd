"""tools/test.py --amp: the evaluation runs under autocast, as the reference code evaluates
(float16 on CUDA, bfloat16 on CPU), and only with the flag."""
import os.path as osp

import pytest
import torch

from tests.utils import TEST_CONFIGS, data_root_options, import_tool

CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')

pytestmark = pytest.mark.usefixtures('one_thread')


def test_test_tool_amp_evaluates_under_autocast(tiny_cifar100, tmp_path, monkeypatch, capsys):
    import nose_mm  # noqa: F401
    from mmpretrain.models.backbones import VisionTransformer
    from nose_mm.models.builder import build_model_from_cfg
    from nose_mm.utils.config import load_config
    ckpt = tmp_path / 'tiny.pth'
    torch.save({'state_dict': build_model_from_cfg(load_config(CFG)).state_dict(), 'meta': {}},
               ckpt)
    seen = []
    forward = VisionTransformer.forward

    def recording(self, x):
        device = x.device.type
        seen.append(torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device)
                    else None)
        return forward(self, x)

    monkeypatch.setattr(VisionTransformer, 'forward', recording)
    tool = import_tool('test.py')
    # (ResultsHook off: its FLOP count runs the model once more, outside the test loop)
    argv = [CFG, str(ckpt), '--cfg-options', *data_root_options(tiny_cifar100),
            'default_hooks.results=None']
    expected = torch.float16 if torch.cuda.is_available() else torch.bfloat16
    for flags, dtype in (([], None), (['--amp'], expected)):
        seen.clear()
        assert tool.main(argv[:2] + ['--work-dir', str(tmp_path / f'w{len(flags)}'), *flags]
                         + argv[2:]) == 0
        assert seen and set(seen) == {dtype}
        assert 'nose_mm: test metrics: ' in capsys.readouterr().out
