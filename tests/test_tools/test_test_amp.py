"""tools/test.py --amp: the evaluation runs under autocast, as the reference code evaluates
(float16 on CUDA, bfloat16 on CPU), and only with the flag."""
import json
import os.path as osp

import pytest
import torch

from tests.utils import TEST_CONFIGS, data_root_options, import_tool

CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')

pytestmark = pytest.mark.usefixtures('one_thread')


def test_test_tool_amp_evaluates_under_autocast(tiny_cifar100, tmp_path, monkeypatch, capsys):
    import nose_mm  # noqa: F401
    from nose_mm.benchmark.leaderboard import build_leaderboard
    from nose_mm.benchmark.records import ResultsRecord
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
    argv = [CFG, str(ckpt), '--cfg-options', *data_root_options(tiny_cifar100)]
    expected = torch.float16 if torch.cuda.is_available() else torch.bfloat16
    for flags, dtype in (([], None), (['--amp'], expected)):
        seen.clear()
        assert tool.main(argv[:2] + ['--work-dir', str(tmp_path / f'w{len(flags)}'), *flags]
                         + argv[2:]) == 0
        # the test batches (ResultsHook's FLOP count runs the model once more, outside)
        assert seen.count(dtype) >= 1 and set(seen) <= {dtype, None}
        assert 'nose_mm: test metrics: ' in capsys.readouterr().out
        results = ResultsRecord.load(str(tmp_path / f'w{len(flags)}' / 'results.json'))
        assert results.autocast == (None if dtype is None else str(dtype).split('.')[1])
    assert seen[0] is expected  # the first forward is the test loop's
    raw = json.load(open(tmp_path / 'w0' / 'results.json'))
    assert 'autocast' not in raw  # float32 runs write what they wrote before
    rows = [r for t in build_leaderboard([str(tmp_path / 'w1')])[0] for r in t.rows]
    assert rows[0].source.startswith(f'measured (test, autocast {results.autocast}): ')
