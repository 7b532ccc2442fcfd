"""tools/benchmark.py --runtime: records with the runtime of each figure, ratios and the
leaderboard kept within one runtime."""
import json
import shutil

import numpy as np
import pytest

from nose_mm.benchmark.leaderboard.tables import Row, build_tables
from nose_mm.benchmark.records import BenchmarkRecord, ratios
from tests.test_deploy.common import BASE, PRUNED, checkpoint
from tests.utils import run_tool

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The demo baseline and pruned model tested on a tiny image folder (results.json), and
    one benchmark.json timing both in torch, onnxruntime and OpenVINO, beside each run's
    results."""
    from nose_mm.datasets import write_image_folder
    tmp = tmp_path_factory.mktemp('runtimes')
    rng = np.random.default_rng(0)
    data = str(tmp / 'digits')
    images = rng.integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
    for split in ('train', 'val'):
        write_image_folder(data, split, images, [i % 4 for i in range(8)],
                           [f'digit_{i}' for i in range(4)])
    work = tmp / 'work_dirs'
    ckpts = {}
    for name, config in (('base', BASE), ('pruned', PRUNED)):
        ckpts[name] = checkpoint(tmp / f'{name}.pth', config)
        run_tool('test.py', config, ckpts[name], '--work-dir', work / name, '--cfg-options',
                 f'test_dataloader.dataset.data_root={data}',
                 f'train_dataloader.dataset.data_root={data}')
    bench = run_tool('benchmark.py', BASE, ckpts['base'], '--compare', PRUNED, ckpts['pruned'],
                     '--runtime', 'torch', 'onnxruntime', 'openvino', '--batch-size', 4,
                     '--repeats', 3,
                     '--warmup', 1, '--threads', 1, '--out', work / 'base' / 'benchmark.json')
    shutil.copy(work / 'base' / 'benchmark.json', work / 'pruned' / 'benchmark.json')
    return {'work': work, 'stdout': bench.stdout, 'tmp': tmp}


def test_records_name_the_runtime_of_each_figure(runs):
    record = BenchmarkRecord.load(str(runs['work'] / 'base' / 'benchmark.json'))
    assert [(m.name, m.runtime) for m in record.models] == [
        ('a', 'torch'), ('b', 'torch'), ('a', 'onnxruntime'), ('b', 'onnxruntime'),
        ('a', 'openvino'), ('b', 'openvino')]
    assert [m.model.removed_layers for m in record.models] == [[], [1, 3]] * 3
    assert all(len(m.seconds) == 3 for m in record.models)
    torch_b, ort_a, ort_b = record.models[1], record.models[2], record.models[3]
    assert record.baseline(ort_b) is ort_a and record.baseline(torch_b) is record.models[0]
    assert record.ratios(ort_b).paired_rounds == [a / b for a, b in zip(ort_a.seconds,
                                                                         ort_b.seconds)]
    with pytest.raises(ValueError, match='mixes runtimes'):
        ratios(ort_b, record.models[0])
    out = runs['stdout']
    assert 'in runtimes torch, onnxruntime, openvino' in out
    assert 'ratios B/A [torch]: ' in out and 'ratios B/A [onnxruntime]: ' in out
    assert 'ratios B/A [openvino]: ' in out
    assert 'ratios A/' not in out  # a runtime's baseline is not compared with another's


def test_files_without_runtime_are_torch(runs):
    data = json.loads((runs['work'] / 'base' / 'benchmark.json').read_text())
    data['models'] = data['models'][:2]
    for model in data['models']:
        del model['runtime']
    record = BenchmarkRecord.from_json(data)
    assert [m.runtime for m in record.models] == ['torch', 'torch']
    data['models'][0]['runtime'] = 'tensorrt'
    with pytest.raises(ValueError, match='"models\\[0\\].runtime" is \'tensorrt\', expected '
                       'one of torch, torch.compile, onnxruntime, openvino'):
        BenchmarkRecord.from_json(data)


def _table(text):
    lines = [line for line in text.splitlines() if line.startswith('|')]
    header = [c.strip() for c in lines[0].strip('|').split('|')]
    return [dict(zip(header, (c.strip() for c in line.strip('|').split('|'))))
            for line in lines[2:]]


@pytest.mark.parametrize('runtime', [None, 'onnxruntime', 'openvino'])
def test_leaderboard_keeps_runtimes_apart(runs, runtime):
    out = runs['tmp'] / f'board_{runtime}.md'
    run_tool('leaderboard.py', runs['work'], '--no-reference', '--out', out,
             *(['--runtime', runtime] if runtime else []))
    rows = {r['Run / method']: r for r in _table(out.read_text())}
    record = BenchmarkRecord.load(str(runs['work'] / 'base' / 'benchmark.json'))
    shown = runtime or 'torch'
    entry = next(m for m in record.models if m.name == 'b' and m.runtime == shown)
    for name in ('base', 'pruned'):
        # memory is measured on the torch entries only, and said only there
        memory = ' tracked mem' if shown == 'torch' else ''
        assert rows[name]['Throughput setting'] == f'{shown} cpu fp32 bs4 16px{memory}'
    speed = rows['pruned']['Speed vs baseline']
    assert speed.startswith(f'{record.ratios(entry).paired_ratio["median"]:.3f} (IQR')


def test_leaderboard_gives_no_ratio_across_runtimes():
    """A row timed in one run but another runtime than its baseline: marked, no ratio."""
    def row(label, removed, runtime):
        return Row(task='classification', dataset='digits', model='ViT', label=label,
                   arch='vit', removed_layers=removed, metrics={'top1': 90.0},
                   img_per_s=100.0, speed_ratio={'median': 1.2, 'q1': 1.1, 'q3': 1.3},
                   timed_together='run1', bench_name='b' if removed else 'a', runtime=runtime,
                   date='2026-12-03')
    same = build_tables([row('base', [], 'torch'), row('pruned', [1], 'torch')])[0].rows
    mixed = build_tables([row('base', [], 'torch'), row('pruned', [1], 'onnxruntime')])[0].rows
    assert next(r for r in same if r.label == 'pruned').speed_ratio is not None
    pruned = next(r for r in mixed if r.label == 'pruned')
    assert pruned.speed_ratio is None and pruned.speed_mark


def test_bad_runtime_is_one_line(runs):
    proc = run_tool('benchmark.py', BASE, '--runtime', 'tensorrt', check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "nose_mm: error: --runtime 'tensorrt': allowed are torch, torch.compile, "
        "onnxruntime, openvino")
    proc = run_tool('benchmark.py', BASE, '--runtime', 'onnxruntime', '--amp', check=False)
    assert proc.returncode == 2 and 'drop --amp' in proc.stderr


@pytest.mark.parametrize('runtime', ['onnxruntime', 'openvino'])
def test_a_runtime_that_does_not_compute_the_model_is_refused_not_timed(tmp_path, runtime,
                                                                        capsys):
    import torch

    from nose_mm.deploy import ExportCheckError
    from nose_mm.deploy.runtimes import runtime_forward

    class Drifting(torch.nn.Module):
        """Python state the trace bakes in as a constant: the graph is another model."""

        def __init__(self):
            super().__init__()
            self.calls, self.fc = 0, torch.nn.Linear(4, 3)

        def forward(self, x):
            self.calls += 1
            return self.fc(x.flatten(1)) * self.calls

    torch.manual_seed(0)
    run_in = '' if runtime == 'onnxruntime' else f' \\(run in {runtime}\\)'
    with pytest.raises(ExportCheckError, match=rf'^m \(.*m\.onnx\){run_in} does not compute the '
                       r'PyTorch model: largest difference \S+ > tolerance'):
        runtime_forward(runtime, Drifting().eval(), torch.randn(2, 1, 2, 2), str(tmp_path), 'm')
    # all-zero outputs (random weights, zero-initialised head) cannot be checked: said
    zero = Drifting().eval()
    torch.nn.init.zeros_(zero.fc.weight)
    torch.nn.init.zeros_(zero.fc.bias)
    capsys.readouterr()
    runtime_forward(runtime, zero, torch.randn(2, 1, 2, 2), str(tmp_path), 'z')()
    assert capsys.readouterr().err == (
        f"nose_mm: warning: z: PyTorch's output is all zeros (random weights with a "
        f"zero-initialised head?), so its {runtime} output is timed unchecked; pass a "
        f"checkpoint to check it\n")


def test_the_working_load_needs_the_torch_runtime(tmp_path):
    proc = run_tool('benchmark.py', BASE, '--runtime', 'onnxruntime', '--memory-budget-gb', 1,
                    check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        'nose_mm: error: the working load (memory budget) is measured on the torch model: '
        'add torch to the runtimes, got onnxruntime')
