"""Checks every NOSE backbone family must pass (used by test_nose_swin / test_nose_deit3)."""
import os.path as osp
import uuid

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner, load_checkpoint
from mmpretrain.registry import MODELS

from nose_mm.models.prune import backbone_type_of, prune_checkpoint, prune_state_dict
from tests.utils import TEST_CONFIGS

# The plain-ViT families' test model: 4 layers, 32 wide, on 32 px images in 8 px patches.
TINY = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
SMALL_INPUT = dict(img_size=32, patch_size=8)


def images(n=2, size=32):
    """``n`` random RGB images, the same on every call."""
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def count(module):
    return sum(p.numel() for p in module.parameters())


def perturb(model, norm_std=0.3, gamma=None, table_std=None):
    """Move a timm model's norms (and layer scales / bias tables) off their init, in place.

    With init values (norm weights 1, layer scales 1e-6) blocks that differ only
    in which norm they use, or in channel order, give the same outputs.
    """
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'norm' in name:
                param.add_(norm_std * torch.randn(param.shape, generator=g))
            elif gamma is not None and name.endswith('gamma'):
                param.copy_(gamma + 0.1 * torch.randn(param.shape, generator=g))
            elif table_std is not None and 'relative_position_bias_table' in name:
                param.normal_(0, table_std, generator=g)
    return model


def attention_params(block):
    """Parameters a pruned block loses: its pre-norm and attention."""
    return sum(count(getattr(block, name)) for name in block.attention_parts)


def assert_lam_zero_equals_pruned(build, layers, x, compensate=True):
    """A lam = 0 diluted model equals the pruned one loaded from prune_state_dict."""
    torch.manual_seed(0)
    diluted = build(diluted_layers=layers, init_lam=0.0, compensate=compensate).eval()
    pruned = build(removed_layers=layers, compensate=compensate).eval()
    state = prune_state_dict(diluted.state_dict(), layers, prefix='')
    assert str(pruned.load_state_dict(state, strict=True)) == '<All keys matched successfully>'
    blocks = pruned.dilutable_blocks()
    for i in layers:
        assert all(not hasattr(blocks[i], name) for name in blocks[i].attention_parts)
    with torch.no_grad():
        for a, b in zip(diluted(x), pruned(x)):
            assert torch.equal(a, b)
        diluted.set_dilution_lam(1.0)  # and it is another function than the full model
        assert not torch.allclose(diluted(x)[-1], pruned(x)[-1])


def mismatch_cases(parts, only_in_model=1):
    """``(ckpt_removed, model_removed, message)`` cases for :func:`assert_mismatch_refused`.

    ``parts`` names the attention parameters in the message (``'ln1/attn'``);
    ``only_in_model`` is a layer removed in the model but not in the checkpoint.
    """
    return [
        ([0, 2], [], rf'layers \[0, 2\] have no attention \({parts}\) weights in the '
                     r'checkpoint but keep attention in the model'),
        ([], [only_in_model], rf'layers \[{only_in_model}\] have attention weights in the '
                              r'checkpoint but are removed'),
        ([0, 2], [0, 3], r'layers \[2\] have no attention.*layers \[3\] have attention weights'),
    ]


def assert_mismatch_refused(build, ckpt_removed, model_removed, message, tmp_path):
    """A checkpoint with another removed set is refused, naming the layers."""
    import pytest
    state = build(removed_layers=ckpt_removed).state_dict()
    model = build(removed_layers=model_removed)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=message):
            model.load_state_dict(state, strict=strict)
    path = str(tmp_path / f'{uuid.uuid4().hex[:6]}.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in state.items()}}, path)
    with pytest.raises(RuntimeError, match=message):
        load_checkpoint(model, path, strict=False, revise_keys=[(r'^backbone\.', '')])


def dilute_train_prune(config, data_root, work_dir, diluted):
    """Train ``config`` 3 iterations with DilutionHook (lam 1 -> 0 by iteration 2), prune.

    Returns:
        tuple: (the trained model at lam = 0, the pruned classifier loaded with the
        pruned checkpoint, the per-iteration lam the hook set, the pruned checkpoint).
    """
    cfg = Config.fromfile(osp.join(TEST_CONFIGS, config))
    cfg.model.backbone.diluted_layers = list(diluted)
    cfg.merge_from_dict({
        'work_dir': str(work_dir), 'experiment_name': f'dil_{uuid.uuid4().hex[:8]}',
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.sampler': dict(type='InfiniteSampler', shuffle=True, seed=0),
        'val_dataloader.dataset.data_root': data_root,
        'train_cfg': dict(_delete_=True, by_epoch=False, max_iters=3, val_interval=1000),
        'param_scheduler': [], 'default_hooks.checkpoint': dict(
            type='CheckpointHook', interval=3, by_epoch=False),
        'custom_hooks': [dict(type='DilutionHook', begin=0, end=2, by_epoch=False)],
        'log_level': 'WARNING', 'randomness': dict(seed=0),
    })
    lams = []

    class Record(Hook):  # records lam at each iteration (runs after DilutionHook)
        priority = 'LOW'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            lams.append(runner.model.backbone.get_dilution_lam())

    runner = Runner.from_cfg(cfg)
    runner.register_hook(Record())
    runner.train()
    checkpoint = torch.load(osp.join(work_dir, 'iter_3.pth'), map_location='cpu',
                            weights_only=False)
    pruned_ckpt = prune_checkpoint(checkpoint)
    # tools/prune.py names the family's backbone for the pruned checkpoint
    assert backbone_type_of(pruned_ckpt['state_dict']) == cfg.model.backbone.type
    pruned_cfg = cfg.model.copy()
    pruned_cfg.backbone = dict(pruned_cfg.backbone, diluted_layers=None,
                               removed_layers=pruned_ckpt['meta']['removed_layers'])
    pruned = MODELS.build(pruned_cfg)
    pruned.load_state_dict(pruned_ckpt['state_dict'], strict=True)
    return runner.model.eval(), pruned.eval(), lams, pruned_ckpt
