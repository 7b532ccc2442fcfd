"""NoseMAE / NoseBEiT: mmseg's MAE and BEiT as oracles, DeiT converted into them exactly."""
import pytest
import torch
from mmseg.models.backbones import BEiT, MAE
from mmseg.registry import MODELS as SEG_MODELS

import nose_mm  # noqa: F401  (registers)
from nose_mm.checkpoint.fit import CheckpointFitError
from nose_mm.models import NoseVisionTransformer
from nose_mm.models.backbones.nose_mae import NoseBEiT, NoseMAE, convert_vit_to_mae
from nose_mm.models.convert import convert_deit_checkpoint, convert_lambda_vit
from nose_mm.models.family import family_of_module, family_of_state_dict, layout_of_state_dict
from nose_mm.models.prune import attention_keys, backbone_type_of, prune_state_dict

from .family_checks import (assert_lam_zero_equals_pruned, assert_mismatch_refused, count,
                            images, mismatch_cases, perturb)

pytestmark = pytest.mark.usefixtures('one_thread')

#: DeiT's norms (mmseg's LN default eps is 1e-5; TinyMIM's and mmseg's MAE configs: 1e-6)
LN = dict(type='LN', eps=1e-6)
TINY = dict(img_size=32, patch_size=8, embed_dims=32, num_layers=4, num_heads=2,
            init_values=1.0, out_indices=[1, 3])


def _perturb(model, seed=3):
    """Every parameter moved off its init (norms, layer scales, bias tables, q/v biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=g))
    return model


def _prefixed(model):
    return {f'backbone.{k}': v for k, v in model.state_dict().items()}


@pytest.mark.parametrize('ours, theirs, kwargs', [
    (NoseMAE, MAE, {}), (NoseBEiT, BEiT, {}), (NoseMAE, MAE, dict(drop_path_rate=0.1))])
def test_nothing_diluted_equals_mmseg_bit_for_bit(ours, theirs, kwargs):
    torch.manual_seed(0)
    reference = theirs(**TINY, **kwargs)
    reference.init_weights()
    torch.manual_seed(0)
    model = ours(**TINY, **kwargs)
    model.init_weights()
    # the same init (MAE's depth rescaling included), then the same function of any weights
    assert list(model.state_dict()) == list(reference.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 reference.state_dict().values()))
    _perturb(reference)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = images()
    reference.eval()  # mmseg's BEiT.train returns None
    with torch.no_grad():
        for a, b in zip(model.eval()(x), reference(x)):
            assert torch.equal(a, b)
    assert family_of_module(model).name == 'mae' and family_of_module(reference).name == 'mae'


@pytest.mark.parametrize('compensate', [True, False])
def test_lam_zero_diluted_equals_pruned(compensate):
    assert_lam_zero_equals_pruned(lambda **kw: _perturb(NoseMAE(**TINY, **kw)), [0, 2], images(),
                                  compensate)


def test_removed_block_has_no_attention_and_computes_2x_then_its_ffn():
    model = NoseMAE(**TINY, removed_layers=[1]).eval()
    layer = model.layers[1]
    assert not any(hasattr(layer, n) for n in ('ln1', 'attn', 'gamma_1'))
    assert not any('layers.1.attn' in k for k in model.state_dict())  # nor its bias table
    model.init_weights()  # MAE's rescaling skips the missing attention
    _perturb(model)
    seen = {}
    layer.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], y=out))
    with torch.no_grad():
        model(images())
        mid = 2 * seen['x']
        expected = mid + layer.gamma_2 * layer.ffn(layer.norm2(mid))
    torch.testing.assert_close(seen['y'], expected, rtol=0, atol=0)
    full = NoseMAE(**TINY)
    block = full.layers[1]
    lost = count(block.ln1) + count(block.attn) + block.gamma_1.numel()
    assert count(full) - count(model) == lost


@pytest.mark.parametrize('ckpt_removed, model_removed, message',
                         mismatch_cases('ln1/attn/gamma_1'))
def test_pruned_mismatch_is_an_error(tmp_path, ckpt_removed, model_removed, message):
    assert_mismatch_refused(lambda **kw: NoseMAE(**TINY, **kw), ckpt_removed, model_removed,
                            message, tmp_path)


def test_layouts_are_disjoint_and_keys_name_the_family():
    mae = _prefixed(NoseMAE(**TINY, removed_layers=[0]))
    vit = _prefixed(NoseVisionTransformer(dict(embed_dims=32, num_layers=4, num_heads=2,
                                               feedforward_channels=128), img_size=32,
                                          patch_size=8))
    assert layout_of_state_dict(mae).name == 'mae' and layout_of_state_dict(vit).name == 'vit'
    assert family_of_state_dict(mae).name == 'mae' and family_of_state_dict(vit).name == 'vit'
    assert backbone_type_of(mae) == 'NoseMAE'
    assert attention_keys(mae, 1) == [
        f'backbone.layers.1.{k}' for k in (
            'gamma_1', 'ln1.weight', 'ln1.bias', 'attn.relative_position_bias_table',
            'attn.relative_position_index', 'attn.qkv.weight', 'attn.qkv.bias',
            'attn.proj.weight', 'attn.proj.bias')]
    assert attention_keys(mae, 0) == []
    assert SEG_MODELS.get('NoseMAE') is NoseMAE and SEG_MODELS.get('NoseBEiT') is NoseBEiT


def _timm_deit(name, seed=0):
    timm = pytest.importorskip('timm')
    torch.manual_seed(seed)
    model = perturb(timm.create_model(name, pretrained=False)).eval()
    g = torch.Generator().manual_seed(seed + 5)
    with torch.no_grad():  # timm starts the biases at 0: the dropped key bias would be 0 too
        for name_, param in model.named_parameters():
            if name_.endswith('bias'):
                param.add_(0.5 * torch.randn(param.shape, generator=g))
    return model


def _vit_features(arch, state_dict, size, out_indices, **kwargs):
    vit = NoseVisionTransformer(arch, img_size=size, patch_size=16, out_type='featmap',
                                out_indices=out_indices, final_norm=False,
                                interpolate_mode='bicubic', **kwargs)
    vit.load_state_dict({k[9:]: v for k, v in state_dict.items()
                         if k.startswith('backbone.') and not k.startswith('backbone.ln1.')})
    return vit.eval()


@pytest.mark.parametrize('timm_name, arch, qv_bias', [
    ('deit_small_patch16_224', 'deit-small', True),
    ('deit_small_patch16_224', 'deit-small', False),
    ('deit_base_patch16_224', 'deit-base', True)])
def test_converted_timm_deit_gives_the_vit_features(timm_name, arch, qv_bias):
    """timm DeiT -> nose_mm (registry) -> NoseMAE: the out_indices features of the ViT."""
    converted = convert_deit_checkpoint({'model': _timm_deit(timm_name).state_dict()})
    size, out = 64, [3, 5, 7, 11]
    mae = convert_vit_to_mae(converted, img_size=(size, size), qv_bias=qv_bias)
    assert mae['meta']['removed_layers'] == [] and mae['meta']['qv_bias'] is qv_bias
    model = NoseMAE(arch, img_size=size, patch_size=16, init_values=1.0, out_indices=out,
                    qv_bias=qv_bias, norm_cfg=LN)
    # strict: every key fits (the relative position index, derived, is the model's own)
    model.load_state_dict(mae['state_dict'], strict=True)
    assert 'layers.0.attn.relative_position_index' not in mae['state_dict']
    vit = _vit_features(arch, converted['state_dict'], size, out)
    x = images(1, size)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), vit(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_pruned_and_reference_checkpoints_convert(tmp_path):
    """A nose_mm pruned DeiT and a lambda_vit checkpoint keep their removed blocks."""
    timm_model = _timm_deit('deit_small_patch16_224', seed=1)
    converted = convert_deit_checkpoint({'model': timm_model.state_dict()})
    removed = [0, 2, 4]
    pruned = {'state_dict': prune_state_dict(converted['state_dict'], removed),
              'meta': {'removed_layers': removed, 'dilution_compensate': True,
                       'dilution_layers': []}}
    state = {k: v for k, v in timm_model.state_dict().items()
             if not any(k.startswith(f'blocks.{i}.{p}') for i in removed
                        for p in ('norm1', 'attn'))}
    reference = convert_lambda_vit({'model': state})
    size, out = 48, [3, 5, 7, 11]
    vit = _vit_features('deit-small', pruned['state_dict'], size, out, removed_layers=removed)
    x = images(1, size)
    for source in (pruned, reference):
        mae = convert_vit_to_mae(source, img_size=size)
        assert mae['meta']['removed_layers'] == removed
        model = NoseMAE('deit-small', img_size=size, patch_size=16, init_values=1.0,
                        out_indices=out, qv_bias=True, removed_layers=removed,
                        norm_cfg=LN).eval()
        model.load_state_dict(mae['state_dict'], strict=True)
        with torch.no_grad():
            for a, b in zip(model(x), vit(x)):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # a pruned file into an unpruned model is refused, naming the layers
    with pytest.raises(CheckpointFitError, match=r'layers \[0, 2, 4\] have no attention'):
        NoseMAE('deit-small', img_size=size, patch_size=16).load_state_dict(
            convert_vit_to_mae(pruned, img_size=size)['state_dict'])


@pytest.mark.parametrize('qv_bias', [True, False])
def test_a_vit_without_qkv_bias_converts_with_zero_biases(qv_bias):
    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    torch.manual_seed(0)
    vit = _perturb(NoseVisionTransformer(arch, img_size=32, patch_size=8, qkv_bias=False,
                                         out_type='featmap', out_indices=[0, 1],
                                         final_norm=False))
    mae = convert_vit_to_mae({'state_dict': _prefixed(vit)}, img_size=32, num_heads=2,
                             qv_bias=qv_bias)
    model = NoseMAE(dict(embed_dims=32, num_layers=2, num_heads=2), mlp_ratio=2, img_size=32,
                    patch_size=8, init_values=1.0, out_indices=[0, 1], qv_bias=qv_bias,
                    norm_cfg=LN)
    model.load_state_dict(mae['state_dict'], strict=True)
    x = images()
    with torch.no_grad():
        for a, b in zip(model.eval()(x), vit.eval()(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_conversion_refusals():
    from nose_mm.models import NoseDeiT3
    vit = {'state_dict': _prefixed(NoseVisionTransformer('deit-small', img_size=32,
                                                         patch_size=16))}
    with pytest.raises(ValueError, match='img_size 40 must be two multiples of the patch'):
        convert_vit_to_mae(vit, img_size=40)
    with pytest.raises(ValueError, match=r"got the 'deit3' family"):
        convert_vit_to_mae({'state_dict': _prefixed(NoseDeiT3('small', img_size=32,
                                                              patch_size=16))})
    with pytest.raises(ValueError, match=r"got the 'mae' family"):
        convert_vit_to_mae({'state_dict': _prefixed(NoseMAE(**TINY))})
    with pytest.raises(ValueError, match=r'dilutes layers \[1\]: prune it'):
        convert_vit_to_mae(dict(vit, meta={'dilution_layers': [1]}))
    with pytest.raises(ValueError, match=r'keys with no MAE backbone counterpart: '
                                         r"\['backbone.layers.0.attn.extra'\]"):
        convert_vit_to_mae({'state_dict': dict(vit['state_dict'], **{
            'backbone.layers.0.attn.extra': torch.zeros(1)})})
    no_pos = {k: v for k, v in vit['state_dict'].items() if k != 'backbone.pos_embed'}
    with pytest.raises(ValueError, match=r"needs \['backbone.pos_embed'\]"):
        convert_vit_to_mae({'state_dict': no_pos})
    odd = dict(vit['state_dict'], **{'backbone.pos_embed': torch.zeros(1, 7, 384)})
    with pytest.raises(ValueError, match='pos_embed has 7 tokens'):
        convert_vit_to_mae({'state_dict': odd})
    with pytest.raises(ValueError, match="unknown arch 'huge'"):
        NoseMAE('huge')
    with pytest.raises(ValueError, match=r"an arch dict takes .*got \['depth'\]"):
        NoseMAE(dict(depth=4))
    assert NoseMAE(dict(embed_dims=32, num_layers=2, num_heads=2), img_size=32,
                   patch_size=16).embed_dims == 32
    with pytest.raises(ValueError, match="arch 'deit-small' has embed_dims=384"):
        NoseMAE('deit-small', embed_dims=32)


def test_pretrained_init_is_strict(tmp_path):
    """mmseg's MAE loads a Pretrained init_cfg with strict=False; NoseMAE fits strictly
    (nose_mm's Pretrained, in the mmseg scope as the configs run it)."""
    from mmengine.registry import DefaultScope
    path = str(tmp_path / 'mae.pth')
    source = _perturb(NoseMAE(**TINY))
    torch.save({'state_dict': _prefixed(source)}, path)
    model = NoseMAE(**TINY, init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    other = NoseMAE(**dict(TINY, num_layers=5),
                    init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model.init_weights()
        with pytest.raises(CheckpointFitError, match=r'missing keys \(layers\.4\.'):
            other.init_weights()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 source.state_dict().values()))


def _mae_classifier(**backbone):
    """An mmpretrain classifier on a NoseMAE backbone (what selection runs block by block)."""
    from mmengine.registry import MODELS, DefaultScope
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(
            type='ImageClassifier', backbone=dict(type='NoseMAE', **dict(TINY, **backbone)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=32)))
    return _perturb(model).eval()


@pytest.mark.parametrize('skip_mode', ['identity', 'compensated'])
def test_selection_adapter_runs_the_family(skip_mode):
    from nose_mm.selection import FamilyAdapter, build_adapter
    from nose_mm.selection.runner import run_selection
    model = _mae_classifier(diluted_layers=[0, 2], compensate=skip_mode == 'compensated')
    adapter = build_adapter(model, skip_mode=skip_mode)
    assert type(adapter) is FamilyAdapter and adapter.family.name == 'mae'
    x = images(4)
    with torch.no_grad():
        full = adapter.forward(x)
        assert torch.equal(full, model.extract_feat(x)[-1])
        model.backbone.set_dilution_lam(0.0)
        assert torch.equal(adapter.forward(x, skip=[0, 2]), model.extract_feat(x)[-1])
        assert not torch.allclose(adapter.forward(x, skip=[0, 2]), full)
    pruned = _mae_classifier(removed_layers=[1])
    assert build_adapter(pruned).candidate_layers == [0, 2, 3]
    record = run_selection(pruned, None, num_layers=2, progress=False,
                           batches=list(images(8).split(4)))
    assert record['candidates'] == [0, 2, 3] and len(record['selection']) == 2
    assert set(record['selection']) <= {0, 2, 3} and record['te_table'] is not None


def test_convert_tool_refuses_what_does_not_fit(tmp_path, capsys):
    """tools/convert/deit_to_mae.py: one-line errors, exit 2, nothing written."""
    from nose_mm.models import NoseDeiT3
    from tests.utils import import_tool
    tool = import_tool('convert/deit_to_mae.py')
    src, dst = tmp_path / 'deit3.pth', tmp_path / 'out.pth'
    torch.save({'state_dict': _prefixed(NoseDeiT3('small', img_size=32, patch_size=16))}, src)
    assert tool.main([str(src), str(dst)]) == 2
    assert "nose_mm: error: expected a ViT / DeiT checkpoint" in capsys.readouterr().err
    assert not dst.exists()
    vit = tmp_path / 'vit.pth'
    torch.save({'state_dict': _prefixed(NoseVisionTransformer('deit-small', img_size=32,
                                                              patch_size=16))}, vit)
    assert tool.main([str(vit), str(dst), '--img-size', '40']) == 2
    assert 'img_size [40, 40] must be two multiples of the patch size 16' in \
        capsys.readouterr().err
    assert tool.main([str(vit), str(dst), '--img-size', '32']) == 0
    assert 'img_size=[32, 32], num_heads=6, qv_bias=True, removed_layers=[]' in \
        capsys.readouterr().out


def test_leaderboard_keeps_the_two_ade20k_recipes_apart():
    """The authors'-recipe runs are named apart from mmseg's DeiT recipe (arch and Model
    column) and compared with their own baseline only."""
    import os.path as osp

    from mmengine.config import Config

    from nose_mm.benchmark.info import model_info
    from nose_mm.benchmark.leaderboard.tables import Row, build_tables
    from tests.utils import REPO
    folder = osp.join(REPO, 'configs', 'ade20k')
    infos = {name: model_info(Config.fromfile(osp.join(folder, name + '_ade20k-512x512.py')))
             for name in ('upernet_deit-base_mln_8xb2-160k',
                          'upernet_deit-base_tinymim_8xb2-amp-160k',
                          'upernet_deit-base_nose-0-1-3-4-6-pruned_tinymim_8xb2-amp-160k')}
    assert [(i['arch_name'], i['display']) for i in infos.values()] == [
        ('deit-base', 'DeiT-B'), ('mae-deit-base', 'DeiT-B (BEiT block)'),
        ('mae-deit-base', 'DeiT-B (BEiT block)')]
    rows = [Row(task='segmentation', dataset='ADE20k', model=i['display'], label=name,
                arch=i['arch_name'], removed_layers=i['removed_layers'], metrics={'mIoU': m},
                date='2026-12-03')
            for (name, i), m in zip(infos.items(), (45.0, 47.0, 46.5))]
    mln, base, pruned = rows
    build_tables(rows)
    assert pruned.delta == pytest.approx(-0.5) and base.is_baseline and mln.is_baseline
    assert mln.delta is None and base.delta is None
