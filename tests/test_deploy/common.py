"""What the deploy tests share: the demo configs and checkpoints of their models."""
import ast
import os.path as osp

import torch
from mmengine.config import Config

from nose_mm.benchmark.info import build_model
from tests.utils import REPO

DEMO = osp.join(REPO, 'configs', 'demo')
BASE = osp.join(DEMO, 'deit-demo_baseline_digits-16px.py')
PRUNED = osp.join(DEMO, 'deit-demo_pruned_digits-16px.py')  # removed_layers=[1, 3]
SEG = osp.join(DEMO, 'upernet_deit-demo_digits-seg-64px.py')


def checkpoint(path, config, options=(), seed=0):
    """A checkpoint of the config's model with every weight moved off its (partly zero) init."""
    cfg = Config.fromfile(config)
    for option in options:
        key, value = option.split('=', 1)
        cfg.merge_from_dict({key: ast.literal_eval(value)})
    model = build_model(cfg).module
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)
