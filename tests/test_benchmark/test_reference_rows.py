"""benchmarks/reference.yml: the reference README's ToMe table, each ToMe row compared with
the same pruned model without merging under the same torch (1.12.1)."""
import os.path as osp

import yaml

from nose_mm.benchmark.leaderboard import build_leaderboard
from tests.utils import REPO

REFERENCE = osp.join(REPO, 'benchmarks', 'reference.yml')
# sihaoevery/lambda_vit README, ToMe table: (arch, removed %, start, r) -> (with, without)
TOME = {('deit-base', 40, 1, 24): (81.58, 81.77), ('deit-base', 40, 1, 28): (81.42, 81.77),
        ('deit-base', 50, 0, 14): (81.28, 81.46), ('deit-small', 25, 1, 22): (79.86, 80.33),
        ('deit-small', 30, 1, 19): (79.62, 79.89), ('deit-tiny', 25, 1, 19): (72.35, 72.79),
        ('deit-tiny', 30, 1, 14): (71.70, 71.88)}


def test_every_tome_setting_has_its_torch_1_12_baseline():
    refs = {r['id']: r for r in yaml.safe_load(open(REFERENCE))['references']}
    found = {}
    for ref in refs.values():
        if 'ToMe' not in ref['method']:
            continue
        base = refs[ref['baseline']]
        assert 'torch 1.12.1' in base['method'] and 'ToMe' not in base['method']
        assert base['removed_layers'] == ref['removed_layers'] and base['arch'] == ref['arch']
        pct = int(ref['method'].split('%')[0].split()[-1])
        start = 0 if 'start=0' in ref['method'] else 1
        r = int(ref['method'].split('r=')[1].split(',')[0].rstrip(')'))
        found[(ref['arch'], pct, start, r)] = (ref['metrics']['top1'], base['metrics']['top1'])
    assert found == TOME

    tables, problems = build_leaderboard([], REFERENCE)
    assert problems == []
    rows = {r.ref_id: r for t in tables for r in t.rows}
    for ref_id, ref in refs.items():
        if 'ToMe' in ref['method']:
            expected = ref['metrics']['top1'] - refs[ref['baseline']]['metrics']['top1']
            assert abs(rows[ref_id].delta - expected) < 1e-9
            assert rows[ref['baseline']].is_baseline
