"""Token merging (ToMe) as a NoseVisionTransformer option: exactness at r = 0, a
plain-torch oracle of the published algorithm on a timm DeiT-S, token counts, FLOPs
on merged token counts, and build-time errors."""
import math
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

import nose_mm  # noqa: F401  (registers)
from nose_mm.benchmark.flops import flop_analyzer
from nose_mm.models import NoseVisionTransformer
from nose_mm.models.convert import convert_deit_checkpoint, convert_lambda_vit
from nose_mm.models.token_merge import (bipartite_soft_matching, merge_weighted,
                                        merged_token_counts)
from tests.utils import REPO, TEST_CONFIGS

timm = pytest.importorskip('timm')

TINY = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
TINY12 = dict(TINY, num_layers=12)

# Tiny models on a shared 2-core machine: one intra-op thread is much faster.
pytestmark = pytest.mark.usefixtures('one_thread')


def _backbone(arch=TINY, img_size=64, patch_size=8, **kwargs):
    torch.manual_seed(0)
    return NoseVisionTransformer(arch, img_size=img_size, patch_size=patch_size, **kwargs).eval()


def _images(n=2, size=64):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------------
# the plain functions
# ---------------------------------------------------------------------------
def test_matching_and_weighted_merge_by_hand():
    # tokens 0..4: A = {0 (CLS), 2, 4}, B = {1, 3}; 2 is closest to 3, 4 to 1
    metric = torch.tensor([[[1., 0.], [0., 1.], [1., 1.1], [1., 1.], [0.1, 1.]]])
    matching = bipartite_soft_matching(metric, r=1)
    assert matching.moved.tolist() == [[1]]  # A position 1 = token 2 (cosine 0.9989 with 3)
    assert matching.target.tolist() == [[1]]  # B position 1 = token 3
    assert matching.kept.tolist() == [[0, 2]]  # CLS and token 4, in token order
    x = torch.arange(5.)[None, :, None]
    size = torch.tensor([1., 1., 3., 1., 1.])[None, :, None]
    merged, new_size = merge_weighted(matching, x, size)
    # [CLS, token 4, token 1, (3 * x2 + 1 * x3) / 4]
    assert merged[0, :, 0].tolist() == [0., 4., 1., (3 * 2 + 3) / 4]
    assert new_size[0, :, 0].tolist() == [1., 1., 1., 4.]
    # r is clamped to half of the non-CLS tokens; CLS never moves
    matching = bipartite_soft_matching(metric, r=10)
    assert matching.moved.shape == (1, 2) and 0 not in matching.moved.tolist()[0]
    assert bipartite_soft_matching(metric, r=0) is None


def test_merged_token_counts_clamp_at_half():
    # DeiT-S 25% + ToMe r = 22 (reference setting): the last merge is clamped to 21
    assert merged_token_counts(197, [0] + [22] * 8) == [197, 175, 153, 131, 109, 87, 65, 43, 22]
    assert merged_token_counts(5, [3, 3, 3]) == [3, 2, 2]


# ---------------------------------------------------------------------------
# r = 0 is the model without the option, bit for bit
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(removed_layers=[0, 2], out_indices=(1, 3)),
    dict(diluted_layers=[1], init_lam=0.5, compensate=False),
    dict(layer_scale_init_value=0.1, drop_path_rate=0.1, final_norm=False),
])
@pytest.mark.parametrize('prop_attn', [True, False])
def test_r_zero_equals_no_merging_bit_for_bit(kwargs, prop_attn):
    plain = _backbone(**kwargs)
    merging = _backbone(**kwargs, token_merge=dict(r=0, start=0, prop_attn=prop_attn))
    merging.load_state_dict(plain.state_dict(), strict=True)
    assert merging.token_merge_schedule()  # the merging path runs (with r = 0)
    x = _images()
    with torch.no_grad():
        outs_plain, outs_merging = plain(x), merging(x)
        merged = _backbone(**kwargs, token_merge=dict(r=8, prop_attn=prop_attn))
        merged.load_state_dict(plain.state_dict())
        outs_merged = merged(x)
    assert len(outs_plain) == len(outs_merging)
    for a, b in zip(outs_plain, outs_merging):
        assert torch.equal(a, b)
    assert (outs_plain[-1] - outs_merged[-1]).abs().max() > 1e-3  # while r > 0 changes it


# ---------------------------------------------------------------------------
# oracle: the published algorithm in plain torch on timm's DeiT-S
# ---------------------------------------------------------------------------
def _tome_oracle(model, x, removed, r_of_block, prop_attn):
    """Published ToMe on a timm ViT, one image at a time, with pruned blocks
    (x = 2x; x = x + mlp(norm2(x))). Returns the logits."""
    tokens = model.norm_pre(model._pos_embed(model.patch_embed(x)))
    cls_features = []
    for t in tokens:  # (T, C)
        size = torch.ones(t.shape[0])
        for i, block in enumerate(model.blocks):
            if i in removed:
                t = 2 * t
                t = t + block.mlp(block.norm2(t))
                continue
            attn = block.attn
            n, c = t.shape
            heads, d = attn.num_heads, c // attn.num_heads
            qkv = (block.norm1(t) @ attn.qkv.weight.T + attn.qkv.bias).reshape(n, 3, heads, d)
            q, k, v = (qkv[:, j].transpose(0, 1) for j in range(3))  # (heads, T, d)
            logits = q @ k.transpose(1, 2) / math.sqrt(d)
            if prop_attn:
                logits = logits + size.log()[None, None, :]
            heads_out = logits.softmax(-1) @ v  # (heads, T, d)
            t = t + attn.proj(heads_out.transpose(0, 1).reshape(n, c))
            r = min(r_of_block.get(i, 0), (n - 1) // 2)
            if r > 0:
                metric = k.mean(0)
                metric = metric / metric.norm(dim=-1, keepdim=True)
                a_ids, b_ids = list(range(0, n, 2)), list(range(1, n, 2))
                best = {}
                for a in a_ids:
                    sims = metric[b_ids] @ metric[a]
                    j = int(sims.argmax())
                    best[a] = (float('-inf') if a == 0 else float(sims[j]), b_ids[j])
                ranked = sorted(a_ids, key=lambda a: -best[a][0])
                moved, kept = ranked[:r], sorted(ranked[r:])
                sums = {b: t[b] * size[b] for b in b_ids}
                sizes = {b: size[b] for b in b_ids}
                for a in moved:
                    b = best[a][1]
                    sums[b] = sums[b] + t[a] * size[a]
                    sizes[b] = sizes[b] + size[a]
                t = torch.stack([t[a] for a in kept] + [sums[b] / sizes[b] for b in b_ids])
                size = torch.stack([size[a] for a in kept] + [sizes[b] for b in b_ids])
            t = t + block.mlp(block.norm2(t))
        cls_features.append(model.norm(t)[0])
    return model.head(torch.stack(cls_features))


@pytest.fixture(scope='module')
def timm_deit_small():
    torch.manual_seed(0)
    return timm.create_model('deit_small_patch16_224', pretrained=False).eval()


@pytest.mark.parametrize('removed, token_merge', [
    ([0, 2, 4], dict(r=22, start=1)),  # the reference's DeiT-S 25% setting
    ([0, 2, 4, 6], dict(r=[30, 0, 10, 25, 40, 12, 8], start=1, prop_attn=False)),
    ([], dict(r=12, start=0)),
])
def test_matches_plain_torch_tome_on_timm_deit_small(timm_deit_small, removed, token_merge):
    reference = timm_deit_small
    state = {k: v for k, v in reference.state_dict().items()
             if not any(k.startswith((f'blocks.{i}.norm1.', f'blocks.{i}.attn.'))
                        for i in removed)}
    converted = (convert_lambda_vit({'model': state}) if removed
                 else convert_deit_checkpoint({'model': state}))
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NoseVisionTransformer', arch='deit-small', removed_layers=removed,
                      token_merge=token_merge),
        head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=384))).eval()
    model.load_state_dict(converted['state_dict'], strict=True)
    schedule = model.backbone.token_merge_schedule()
    assert sorted(schedule) == [i for i in range(12) if i not in removed]
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = _tome_oracle(reference, x, removed, schedule, token_merge.get('prop_attn', True))
        logits = model(x, mode='tensor')
        unmerged = _tome_oracle(reference, x[:1], removed, {}, False)
    assert (logits - expected).abs().max().item() <= 1e-4
    assert (unmerged - expected[:1]).abs().max().item() > 1e-3  # merging changed the logits


# ---------------------------------------------------------------------------
# token counts and FLOPs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('r, counts', [
    # the reference's DeiT-B 40% settings (layers [0, 1, 3, 4, 6] removed, start=1)
    (24, {2: 197, 5: 173, 7: 149, 8: 125, 9: 101, 10: 77, 11: 53}),
    (28, {2: 197, 5: 169, 7: 141, 8: 113, 9: 85, 10: 57, 11: 29}),
    ([90, 0, 60, 1, 0, 3], {2: 197, 5: 107, 7: 107, 8: 54, 9: 53, 10: 53, 11: 50}),
])
def test_merged_token_counts_per_layer(r, counts):
    removed = [0, 1, 3, 4, 6]
    model = _backbone(TINY12, img_size=224, patch_size=16, removed_layers=removed,
                      token_merge=dict(r=r, start=1))
    assert model.token_merge_counts() == counts
    seen = {}
    for i, layer in enumerate(model.layers):  # tokens entering each MLP
        layer.ffn.register_forward_hook(
            lambda m, inp, out, i=i: seen.__setitem__(i, inp[0].shape[1]))
    with torch.no_grad():
        model(_images(1, 224))
    assert {i: seen[i] for i in counts} == counts
    assert seen[0] == seen[1] == 197 and seen[3] == seen[4] == 197 and seen[6] == counts[5]


@pytest.mark.parametrize('config, counts', [
    ('deit-base_nose-0-1-3-4-6-pruned-tome-r24_in1k-224px.py',
     {2: 197, 5: 173, 7: 149, 8: 125, 9: 101, 10: 77, 11: 53}),
    ('deit-base_nose-0-1-3-4-6-pruned-tome-r28_in1k-224px.py',
     {2: 197, 5: 169, 7: 141, 8: 113, 9: 85, 10: 57, 11: 29}),
    ('deit-small_nose-0-2-4-pruned-tome-r22_in1k-224px.py',
     {1: 197, 3: 175, 5: 153, 6: 131, 7: 109, 8: 87, 9: 65, 10: 43, 11: 22}),
    ('deit-base_nose-0-1-3-4-6-9-pruned-tome-start0-r14_in1k-224px.py',
     {2: 183, 5: 169, 7: 155, 8: 141, 10: 127, 11: 113}),
    ('deit-small_nose-0-2-4-6-pruned-tome-r19_in1k-224px.py',
     {1: 197, 3: 178, 5: 159, 7: 140, 8: 121, 9: 102, 10: 83, 11: 64}),
    ('deit-tiny_nose-0-2-4-pruned-tome-r19_in1k-224px.py',
     {1: 197, 3: 178, 5: 159, 6: 140, 7: 121, 8: 102, 9: 83, 10: 64, 11: 45}),
    ('deit-tiny_nose-0-2-4-6-pruned-tome-r14_in1k-224px.py',
     {1: 197, 3: 183, 5: 169, 7: 155, 8: 141, 9: 127, 10: 113, 11: 99}),
])
def test_configs_hold_the_reference_settings(config, counts):
    """The token counts of configs/imagenet/README.md's NOSE + ToMe table (the seven
    settings of main_lambda.py's ToMe comments: start_idx 0 for DeiT-B 50%, else 1)."""
    backbone = Config.fromfile(osp.join(REPO, 'configs', 'imagenet', config)).model.backbone
    model = NoseVisionTransformer(**{k: v for k, v in backbone.items() if k != 'type'})
    start = 0 if 'start0' in config else 1
    assert model.token_merge.start == start and model.token_merge.prop_attn
    assert model.token_merge_counts() == counts


def test_runner_test_loop_merges_tokens(tiny_cifar100, tmp_path):
    cfg = Config.fromfile(osp.join(TEST_CONFIGS, 'bench-tiny-vit-pruned_cifar100.py'))
    cfg.model.backbone.token_merge = dict(r=4, start=0)  # attention layers 1 and 3
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = tiny_cifar100
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.pop('results')  # its FLOP count runs the model too
    runner = Runner.from_cfg(cfg)
    seen = []
    runner.model.backbone.layers[3].ffn.register_forward_hook(
        lambda m, inp, out: seen.append(inp[0].shape[1]))
    metrics = runner.test()
    assert 0 <= metrics['accuracy/top1'] <= 100
    assert seen and set(seen) == {9}  # 17 tokens (16 patches + CLS) -> 13 -> 9


def _macs_by_operator(model, size=64):
    analyzer = flop_analyzer(model, (torch.zeros(1, 3, size, size), ))
    return dict(analyzer.by_operator())


def test_flops_are_counted_on_merged_tokens():
    c, f, heads, removed = 32, 64, 2, [1]
    model = _backbone(removed_layers=removed, token_merge=dict(r=12, start=1))
    # 64 px / 8 px patches: 65 tokens; attention layers 0, 2, 3; merging in 2 and 3
    counts = model.token_merge_counts()
    assert counts == {0: 65, 2: 53, 3: 41}
    tokens_in = {0: 65, 1: 65, 2: 65, 3: 53}  # entering each layer
    tokens_mlp = {0: 65, 1: 65, 2: 53, 3: 41}
    linear = sum(4 * c * c * tokens_in[i] for i in (0, 2, 3)) \
        + sum(2 * c * f * tokens_mlp[i] for i in range(4))
    sdpa = sum(2 * tokens_in[i] ** 2 * c for i in (0, 2, 3))
    # matching: similarity of |A| x |B| key means (head_dims = 16) in the merging layers
    matching = sum(math.ceil(n / 2) * (n // 2) * (c // heads) for n in (65, 53))
    macs = _macs_by_operator(model)
    assert macs['linear'] == linear
    assert macs['scaled_dot_product_attention'] == sdpa
    assert macs['matmul'] == matching
    plain = _macs_by_operator(_backbone(removed_layers=removed))
    assert 'matmul' not in plain and plain['scaled_dot_product_attention'] == 3 * 2 * 65 ** 2 * c


# ---------------------------------------------------------------------------
# build-time errors
# ---------------------------------------------------------------------------
_R_MESSAGE = 'token_merge: r must be a non-negative int or a non-empty list of non-negative ints'


@pytest.mark.parametrize('kwargs, message', [
    (dict(token_merge=dict(r=-1)), f'{_R_MESSAGE}, got -1'),
    (dict(token_merge=dict(r=2.5)), f'{_R_MESSAGE}, got 2.5'),
    (dict(token_merge=dict(r=True)), f'{_R_MESSAGE}, got True'),
    (dict(token_merge=dict(r='8')), f"{_R_MESSAGE}, got '8'"),
    (dict(token_merge=dict(r=[4, -2, 4, 4])), f'{_R_MESSAGE}, got [4, -2, 4, 4]'),
    (dict(token_merge=dict(r=[])), f'{_R_MESSAGE}, got []'),
    (dict(token_merge=dict(r=[4, 4], start=1)),
     'token_merge: r has 2 entries but 3 layers merge (attention layers 1..3 of 4, from '
     'start=1); give one r per merging layer, or an int'),
    (dict(token_merge=dict(r=4, start=4)),
     'token_merge: start=4 is out of range; the model has 4 layers with attention (removed '
     'and lam = 0 layers do not count), allowed start: 0..3'),
    (dict(removed_layers=[0], diluted_layers=[3], init_lam=0.0, token_merge=dict(r=4, start=2)),
     'token_merge: start=2 is out of range; the model has 2 layers with attention (removed '
     'and lam = 0 layers do not count), allowed start: 0..1'),
    (dict(token_merge=dict(r=4, start=-1)),
     'token_merge: start must be a non-negative int (an index among the layers that keep '
     'attention), got -1'),
    (dict(token_merge=dict(r=4, prop_attn='yes')),
     "token_merge: prop_attn must be True or False, got 'yes'"),
    (dict(token_merge=dict(r=4, begin=1)),
     "token_merge: unknown keys ['begin']; allowed keys are ['r', 'start', 'prop_attn']"),
    (dict(token_merge=dict(start=1)),
     'token_merge needs r (tokens merged per layer), e.g. dict(r=24, start=1, prop_attn=True)'),
    (dict(token_merge=24),
     'token_merge must be a dict like dict(r=24, start=1, prop_attn=True), got 24'),
    (dict(token_merge=dict(r=4), out_type='featmap'),
     "token_merge needs out_type='cls_token', got out_type='featmap': merged tokens no longer "
     'form a feature map, and dense prediction would need unmerging, which nose_mm does not '
     'implement'),
    (dict(token_merge=dict(r=4), out_type='avg_featmap'),
     "token_merge needs out_type='cls_token', got out_type='avg_featmap'"),
])
def test_bad_token_merge_options(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _backbone(**kwargs)


def test_schedule_follows_lam_and_refuses_what_no_longer_fits():
    model = _backbone(diluted_layers=[0, 2], token_merge=dict(r=4, start=1))
    assert model.token_merge_schedule() == {0: 0, 1: 4, 2: 4, 3: 4}
    model.set_dilution_lam(0.0)  # layers 0 and 2 lose their attention
    assert model.token_merge_schedule() == {1: 0, 3: 4}
    listed = _backbone(diluted_layers=[0, 2], token_merge=dict(r=[4, 4, 4], start=1))
    listed.set_dilution_lam(0.0)
    with pytest.raises(ValueError, match=re.escape('token_merge: r has 3 entries but 1 layers')):
        listed(_images())


def test_training_step_through_merging_layers():
    model = _backbone(drop_path_rate=0.1, token_merge=dict(r=8, start=1)).train()
    model(_images())[0].sum().backward()
    assert model.layers[3].attn.qkv.weight.grad.abs().sum() > 0
    assert model.layers[0].attn.qkv.weight.grad.abs().sum() > 0
