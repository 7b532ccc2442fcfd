"""Each config family trains a few iterations and validates on tiny data in its
real on-disk format, with the real dataset classes and metrics."""
import glob
import os.path as osp
import re

import pytest
import torch

from tests.test_configs.shrink import shrink_classification, shrink_segmentation
from tests.utils import REPO, assert_top1_of, run_script, run_tool

IN1K_NOSE = osp.join(REPO, 'configs/imagenet/deit-small_nose-0-2-4_8xb256-400e_in1k-224px.py')
IN1K_PRUNED = osp.join(REPO, 'configs/imagenet/deit-small_nose-0-2-4-pruned_in1k-224px.py')
# every test here trains real configs end to end: slow (run by `make test`, not `make test-fast`)
pytestmark = pytest.mark.slow

C100_NOSE = osp.join(REPO, 'configs/cifar100/deit-small_nose-0-2-4_8xb64-100e_cifar100-224px.py')
ADE_PRUNED = osp.join(
    REPO, 'configs/ade20k/upernet_deit-small_nose-0-2-4-pruned_mln_8xb2-160k_ade20k-512x512.py')
ADE_NONECK_PRUNED = osp.join(REPO, 'configs/ade20k/upernet_deit-base_nose-0-1-3-4-6-9-pruned_'
                             'noneck_8xb2-160k_ade20k-512x512.py')
ADE_SWIN = osp.join(REPO, 'configs/ade20k/upernet_swin-tiny_8xb2-160k_ade20k-512x512.py')


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def _top1(text):
    found = re.findall(r'accuracy/top1: ([0-9.]+)', text)
    assert found, text[-3000:]
    return float(found[-1])


def test_imagenet_nose_finetune_dilutes_to_zero_then_prunes_and_tests(tiny_imagenet, tmp_path):
    cfg = shrink_classification(IN1K_NOSE, tiny_imagenet, str(tmp_path))
    work = tmp_path / 'work'
    proc = run_tool('train.py', cfg, '--work-dir', work)
    assert_top1_of(_top1(proc.stdout + proc.stderr), 8)  # tiny_imagenet: 8 val images
    last = _load(work / 'epoch_2.pth')
    assert last['meta']['dilution_lam'] == 0.0
    # prune the lam = 0 checkpoint and evaluate it with the pruned config
    pruned = tmp_path / 'pruned.pth'
    run_tool('prune.py', work / 'epoch_2.pth', pruned)
    pruned_cfg = shrink_classification(IN1K_PRUNED, tiny_imagenet, str(tmp_path / 'p'))
    proc = run_tool('test.py', pruned_cfg, pruned, '--work-dir', tmp_path / 'test')
    assert_top1_of(_top1(proc.stdout), 8)
    keys = _load(pruned)['state_dict']
    assert not any(k.startswith('backbone.layers.0.attn') for k in keys)


def test_cifar100_nose_finetune_with_real_pickles(tiny_cifar100, tmp_path):
    cfg = shrink_classification(C100_NOSE, tiny_cifar100, str(tmp_path))
    proc = run_tool('train.py', cfg, '--work-dir', tmp_path / 'work')
    log = proc.stdout + proc.stderr
    assert_top1_of(_top1(log), 10)  # tiny_cifar100: 10 test images
    assert 'accuracy/top5' in log


def _pruned_classification_checkpoint(tiny_imagenet, tmp_path, removed):
    """Train the tiny pruned classifier one epoch; return its checkpoint path."""
    cfg = shrink_classification(IN1K_PRUNED, tiny_imagenet, str(tmp_path / 'cls'), max_epochs=1,
                                extra={'model.backbone.removed_layers': removed})
    work = tmp_path / 'cls_work'
    run_tool('train.py', cfg, '--work-dir', work, '--no-validate')
    return work / 'epoch_1.pth'


def test_pruned_classification_checkpoint_transfers_into_upernet(tiny_imagenet, tiny_ade20k,
                                                                  tmp_path):
    ckpt = _pruned_classification_checkpoint(tiny_imagenet, tmp_path, [0, 2, 4])
    cfg = shrink_segmentation(ADE_PRUNED, tiny_ade20k, str(tmp_path),
                              extra={'model.backbone.init_cfg.checkpoint': str(ckpt)})
    work = tmp_path / 'seg'
    proc = run_tool('train.py', cfg, '--work-dir', work)
    log = proc.stdout + proc.stderr
    assert re.search(r'mIoU: [0-9.]+', log), log[-3000:]
    # the backbone weights came from the classification checkpoint (two AdamW
    # steps at lr 6e-5 move them by far less than a fresh init would differ)
    seg = _load(work / 'iter_2.pth')['state_dict']
    cls = _load(ckpt)['state_dict']
    for key in ('backbone.layers.1.attn.qkv.weight', 'backbone.layers.0.ffn.layers.1.weight',
                'backbone.cls_token'):
        assert torch.allclose(seg[key], cls[key], atol=1e-3), key
    assert 'backbone.layers.1.attn.qkv.weight' in seg
    assert 'backbone.layers.0.attn.qkv.weight' not in seg

    # a checkpoint pruned differently is rejected, naming the layers
    wrong = _pruned_classification_checkpoint(tiny_imagenet, tmp_path / 'wrong', [0, 2, 5])
    cfg = shrink_segmentation(ADE_PRUNED, tiny_ade20k, str(tmp_path / 'w'),
                              extra={'model.backbone.init_cfg.checkpoint': str(wrong)})
    proc = run_tool('train.py', cfg, '--work-dir', tmp_path / 'seg_wrong', check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert re.search(r'\b4\b', err) and re.search(r'\b5\b', err), err[-2000:]


@pytest.mark.slow  # about 90 s here
def test_noneck_upernet_variant_trains_and_validates(tiny_ade20k, tmp_path):
    """mmseg's vit_deit-*_upernet layout: UperNet on the four 1/16 maps, no neck."""
    cfg = shrink_segmentation(ADE_NONECK_PRUNED, tiny_ade20k, str(tmp_path),
                              extra={'model.backbone.init_cfg': None})
    work = tmp_path / 'seg'
    proc = run_tool('train.py', cfg, '--work-dir', work)
    assert re.search(r'mIoU: [0-9.]+', proc.stdout + proc.stderr)
    keys = _load(work / 'iter_2.pth')['state_dict']
    assert not any(k.startswith('neck.') for k in keys)
    assert 'backbone.layers.9.attn.qkv.weight' not in keys
    assert 'backbone.layers.8.attn.qkv.weight' in keys


@pytest.mark.parametrize('family', ['classification', 'segmentation'])
def test_two_process_cpu_runs(family, tiny_cifar100, tiny_ade20k, tmp_path):
    if family == 'classification':
        cfg = shrink_classification(C100_NOSE, tiny_cifar100, str(tmp_path), max_epochs=1)
        ckpt_name = 'epoch_1.pth'
    else:
        cfg = shrink_segmentation(ADE_PRUNED, tiny_ade20k, str(tmp_path),
                                  extra={'model.backbone.init_cfg': None})
        ckpt_name = 'iter_2.pth'
    work = tmp_path / 'work'
    proc = run_script('dist_train.sh', cfg, 2, '--work-dir', work)
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    assert 'NoseDistributedDataParallel' in log
    ckpt = _load(work / ckpt_name)
    if family == 'classification':
        # 20 images, batch 4 per rank, 2 ranks -> 3 iterations per epoch (not 5)
        assert ckpt['meta']['iter'] == 3
    else:
        assert ckpt['meta']['iter'] == 2


def _swin_configs():
    """The ADE20k Swin-T configs and the pruned classification config of the same layers."""
    from mmengine.config import Config
    pruned = sorted(glob.glob(osp.join(REPO, 'configs/ade20k/upernet_swin-tiny_nose-*.py')))
    assert len(pruned) == 1, pruned
    removed = list(Config.fromfile(pruned[0]).model.backbone.removed_layers)
    cls = osp.join(REPO, 'configs/imagenet/swin-tiny_nose-{}-pruned_in1k-224px.py'.format(
        '-'.join(map(str, removed))))
    return pruned[0], cls, removed


def test_upernet_swin_tiny_baseline_trains_and_evaluates(tiny_ade20k, tmp_path):
    cfg = shrink_segmentation(ADE_SWIN, tiny_ade20k, str(tmp_path),
                              extra={'model.backbone.init_cfg': None})
    proc = run_tool('train.py', cfg, '--work-dir', tmp_path / 'seg')
    assert re.search(r'mIoU: [0-9.]+', proc.stdout + proc.stderr)
    seg = _load(tmp_path / 'seg' / 'iter_2.pth')['state_dict']
    # 12 Swin blocks with attention, 4 normed stage outputs into UperNet
    assert sum(k.endswith('attn.w_msa.qkv.weight') for k in seg) == 12
    assert all(f'backbone.norm{i}.weight' in seg for i in range(4))


def test_upernet_swin_tiny_pruned_from_a_pruned_classifier(tiny_imagenet, tiny_ade20k,
                                                           tmp_path):
    ade_pruned, cls_pruned, removed = _swin_configs()
    ckpt = tmp_path / 'pruned_cls.pth'
    cls_cfg = shrink_classification(cls_pruned, tiny_imagenet, str(tmp_path / 'cls'))
    cls = _save_random_weights(cls_cfg, ckpt)
    cfg = shrink_segmentation(ade_pruned, tiny_ade20k, str(tmp_path / 'seg_cfg'),
                              extra={'model.backbone.init_cfg.checkpoint': str(ckpt)})
    proc = run_tool('train.py', cfg, '--work-dir', tmp_path / 'seg')
    assert re.search(r'mIoU: [0-9.]+', proc.stdout + proc.stderr)
    seg = _load(tmp_path / 'seg' / 'iter_2.pth')['state_dict']
    kept = next(i for i in range(12) if i not in removed)
    stage, block = _swin_block(kept)
    key = f'backbone.stages.{stage}.blocks.{block}.attn.w_msa.qkv.weight'
    assert torch.allclose(seg[key], cls[key], atol=1e-3)  # loaded, then two small steps
    for i in removed:
        stage, block = _swin_block(i)
        assert not any(k.startswith(f'backbone.stages.{stage}.blocks.{block}.attn.')
                       or k.startswith(f'backbone.stages.{stage}.blocks.{block}.norm1.')
                       for k in seg)

    # a classifier pruned at other layers is refused when UperNet loads it, naming them
    other = sorted(set(removed[:-1]) | {next(i for i in range(11, -1, -1)
                                             if i not in removed)})
    wrong = tmp_path / 'wrong.pth'
    _save_random_weights(shrink_classification(
        cls_pruned, tiny_imagenet, str(tmp_path / 'wrong'),
        extra={'model.backbone.removed_layers': other}), wrong)
    cfg = shrink_segmentation(ade_pruned, tiny_ade20k, str(tmp_path / 'w'),
                              extra={'model.backbone.init_cfg.checkpoint': str(wrong)})
    only_ckpt = sorted(set(other) - set(removed))
    only_model = sorted(set(removed) - set(other))
    with pytest.raises(RuntimeError) as info:
        _build_segmentor(cfg).init_weights()
    assert (f'layers {only_ckpt} have no attention (norm1/attn) weights in the checkpoint but '
            f'keep attention in the model; layers {only_model} have attention weights in '
            f'the checkpoint but are removed in the model') in str(info.value)


def _swin_block(index, depths=(2, 2, 6, 2)):
    """Global Swin block index -> (stage, block in stage)."""
    for stage, depth in enumerate(depths):
        if index < depth:
            return stage, index
        index -= depth
    raise IndexError(index)


def _save_random_weights(config, path):
    """A classifier checkpoint of the config's model with seeded random weights (no
    fresh init can equal them); returns its state dict."""
    import nose_mm  # noqa: F401
    from nose_mm.models.builder import build_model_from_cfg
    from nose_mm.utils.config import load_config
    state = build_model_from_cfg(load_config(config)).state_dict()
    g = torch.Generator().manual_seed(3)
    state = {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v
             for k, v in state.items()}
    torch.save({'state_dict': state, 'meta': {}}, path)
    return state


def _build_segmentor(config):
    import nose_mm  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model)
