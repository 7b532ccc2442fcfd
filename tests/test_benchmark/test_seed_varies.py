"""Seed runs that draw their removed layers per seed (the demo's random baseline): with
``seed_varies`` in the config they are one leaderboard row over the sets, without it
they stay apart. Real tools/test.py runs of the tiny pruned ViT (ResultsHook's files)."""
import pytest
import torch

from tests.test_benchmark.test_tools import PRUNED_CFG
from tests.utils import data_root_options, import_tool

pytestmark = pytest.mark.usefixtures('one_thread')
VARIES = ['model.backbone.removed_layers']


def test_seed_varies_makes_one_row_over_the_drawn_sets(tiny_cifar100, tmp_path):
    import nose_mm  # noqa: F401
    from nose_mm.benchmark.leaderboard import build_leaderboard, render
    from nose_mm.benchmark.records import ResultsRecord
    from nose_mm.benchmark.seeds import replicate_key, seed_varies
    from nose_mm.models.builder import build_model_from_cfg
    from nose_mm.utils.config import load_config
    tool = import_tool('test.py')
    work = tmp_path / 'work' / 'pruned_random'
    for k, removed in ((0, [0, 2]), (1, [1, 3])):
        options = {'model.backbone.removed_layers': removed}
        ckpt = tmp_path / f'ckpt{k}.pth'
        model = build_model_from_cfg(load_config(PRUNED_CFG, options))
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
        assert tool.main([PRUNED_CFG, str(ckpt), '--work-dir', str(work / f'seed{k}'),
                          '--cfg-options', *data_root_options(tiny_cifar100),
                          f'model.backbone.removed_layers={removed}', f'seed_varies={VARIES}',
                          f'randomness.seed={k}']) == 0
    records = [ResultsRecord.load(str(work / f'seed{k}' / 'results.json')) for k in (0, 1)]
    assert [r.seed_varies for r in records] == [VARIES, VARIES]
    assert [r.model.removed_layers for r in records] == [[0, 2], [1, 3]]
    assert replicate_key(records[0]) == replicate_key(records[1])
    for r in records:  # without the declaration: another model, not a replicate
        r.seed_varies = None
    assert replicate_key(records[0]) != replicate_key(records[1])

    # one timing beside the seed folders, of seed 0's draw (as the demo times it): the row
    # takes it, the other draw is not reported as unmerged
    assert import_tool('benchmark.py').main([
        PRUNED_CFG, str(tmp_path / 'ckpt0.pth'), '--repeats', '1', '--warmup', '0',
        '--no-memory', '--batch-size', '2', '--threads', '1', '--out',
        str(work / 'benchmark.json'), '--cfg-options',
        'model.backbone.removed_layers=[0, 2]', f'seed_varies={VARIES}']) == 0
    tables, problems = build_leaderboard([str(tmp_path / 'work')])
    assert problems == []
    (row, ) = [r for t in tables for r in t.rows]
    assert (row.label, row.n, row.seeds) == ('pruned_random', 2, [0, 1])
    assert row.removed_sets == [[0, 2], [1, 3]]
    assert row.img_per_s is not None and row.img_per_s > 0
    assert '| 2 sets: [0, 2], [1, 3] |' in render(tables, 'md')
    # a runtime the file did not time is said, draws or not (the row has no timing)
    tables, problems = build_leaderboard([str(tmp_path / 'work')], runtime='onnxruntime')
    assert problems == [f'{work / "benchmark.json"}: not merged: times its models in torch, '
                        f'not in onnxruntime']
    assert [r.img_per_s for t in tables for r in t.rows] == [None]
    # a benchmark.json that cannot be read is said (and leaves the table), draws or not
    from nose_mm.benchmark.leaderboard import Skipped
    (work / 'benchmark.json').write_text('{"format": "nose_mm.benchmark", "version": 2')
    tables, problems = build_leaderboard([str(tmp_path / 'work')])
    (problem, ) = problems  # both draws read it: said once
    assert isinstance(problem, Skipped)
    assert problem.startswith(f'{work / "benchmark.json"}: not merged: ')
    with pytest.raises(ValueError, match='seed_varies must be a list of dotted config keys'):
        seed_varies({'seed_varies': 'model.backbone.removed_layers'})
    # only the drawn layer sets may vary: another key would average other models as seeds
    with pytest.raises(ValueError, match=r"^seed_varies: 'optim_wrapper.optimizer.lr' may not "
                       r"vary between the seeds of one row .*allowed: "
                       r"model.backbone.removed_layers, model.backbone.diluted_layers$"):
        seed_varies({'seed_varies': ['optim_wrapper.optimizer.lr']})
