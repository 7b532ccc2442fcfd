"""Strict checkpoint fit: tools/test.py, load_from (NoseRunner) and Pretrained inits refuse
checkpoints of other models; deliberate partial loads are explicit; diluted checkpoints
are applied and recorded."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from tests.utils import TEST_CONFIGS, data_root_options, run_tool

CLS_CFG = osp.join(TEST_CONFIGS, 'tiny-vit_cifar100.py')
SEG_CFG = osp.join(TEST_CONFIGS, 'tiny-upernet_ade20k.py')
NOSE = 'model.backbone.type=NoseVisionTransformer'

pytestmark = pytest.mark.usefixtures('one_thread')


def _cfg(path, **backbone):
    import nose_mm  # noqa: F401  (registers NoseRunner, NoseVisionTransformer, Pretrained)
    cfg = Config.fromfile(path)
    cfg.model.backbone.update(backbone)
    return cfg


def _build(cfg):
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    scope = cfg.default_scope
    with DefaultScope.overwrite_default_scope(scope):
        model = (SEG_MODELS if scope == 'mmseg' else PRETRAIN_MODELS).build(cfg.model)
    return model.eval()


def _save(model, path, meta=None):
    torch.manual_seed(0)
    for p in model.parameters():  # distinct weights, so equality checks mean something
        p.data.normal_()
    torch.save({'state_dict': model.state_dict(), 'meta': meta or {}}, path)
    return str(path)


def _runner(cfg, work_dir, load_from, **fit):
    from mmengine.registry import RUNNERS
    cfg.work_dir = str(work_dir)
    cfg.load_from = load_from
    cfg.runner_type = 'NoseRunner'
    if fit:
        cfg.checkpoint_fit = fit
    return RUNNERS.build(cfg)


def test_test_tool_refuses_checkpoints_of_other_models(tiny_cifar100, tmp_path):
    upernet = _save(_build(_cfg(SEG_CFG)), tmp_path / 'upernet.pth')
    wide = _cfg(CLS_CFG)
    wide.model.backbone.arch.embed_dims = 48
    wide.model.head.in_channels = 48
    wide = _save(_build(wide), tmp_path / 'wide.pth')
    hint = ('. To load part of it on purpose, set checkpoint_fit=dict(prefixes=["backbone."]) '
            '(only those keys loaded and compared), ignore_keys=[...] or strict=False in the '
            'config')
    expected = {
        upernet: f"checkpoint {upernet!r} does not fit the model: 4 missing keys "
                 "(backbone.ln1.weight, backbone.ln1.bias, head.layers.head.weight, ...); "
                 "85 unexpected keys (neck.lateral_convs.0.conv.weight, "
                 "neck.lateral_convs.0.conv.bias, neck.lateral_convs.1.conv.weight, ...)" + hint,
        wide: f"checkpoint {wide!r} does not fit the model: 51 shape mismatches (checkpoint "
              "vs model) (backbone.cls_token (1, 1, 48) vs (1, 1, 32), backbone.pos_embed "
              "(1, 17, 48) vs (1, 17, 32), backbone.patch_embed.projection.weight "
              "(48, 3, 8, 8) vs (32, 3, 8, 8), ...)" + hint,
    }
    work = tmp_path / 'work'
    proc = run_tool('test.py', CLS_CFG, upernet, '--work-dir', work, '--cfg-options',
                    *data_root_options(tiny_cifar100), check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == 'nose_mm: error: ' + expected[upernet]
    assert not (work / 'results.json').exists()
    # The same load path in-process (tools/test.py sets load_from, NoseRunner loads it).
    runner = _runner(_cfg(CLS_CFG), tmp_path / 'w', wide)
    with pytest.raises(RuntimeError) as err:
        runner.load_or_resume()
    assert str(err.value) == expected[wide]


def test_diluted_checkpoint_is_applied_and_recorded(tiny_cifar100, tmp_path):
    """A lam = 0 diluted checkpoint under a config diluting nothing: refused without a
    dilutable backbone, otherwise run diluted at lam 0 and recorded so (never a baseline)."""
    from nose_mm.benchmark.leaderboard import build_leaderboard
    meta = {'dilution_layers': [0, 2], 'dilution_lam': 0.0, 'dilution_compensate': True,
            'removed_layers': []}
    ckpt = _save(_build(_cfg(CLS_CFG, type='NoseVisionTransformer')), tmp_path / 'dil.pth',
                 meta)
    runner = _runner(_cfg(CLS_CFG), tmp_path / 'plain', ckpt)
    with pytest.raises(RuntimeError) as err:
        runner.load_or_resume()
    assert str(err.value) == (
        f"checkpoint {ckpt!r} was trained with diluted layers [0, 2] at lam=0, but the model "
        "has no dilutable backbone to run them: use NoseVisionTransformer with "
        "diluted_layers=[0, 2] (or a pruned checkpoint with its removed_layers)")

    work = tmp_path / 'nose'
    run_tool('test.py', CLS_CFG, ckpt, '--work-dir', work, '--cfg-options',
             *data_root_options(tiny_cifar100), NOSE)
    results = json.loads((work / 'results.json').read_text())
    assert results['model']['diluted_layers'] == [0, 2]
    assert results['model']['dilution_lam'] == 0.0
    tables, _ = build_leaderboard([str(work)])
    (row, ) = tables[0].rows
    assert row.diluted_layers == [0, 2] and not row.is_baseline

    # What ran is the lam = 0 model: same outputs as the backbone built diluted at lam 0.
    runner = _runner(_cfg(CLS_CFG, type='NoseVisionTransformer'), tmp_path / 'w', ckpt)
    runner.load_or_resume()
    oracle = _build(_cfg(CLS_CFG, type='NoseVisionTransformer', diluted_layers=[0, 2],
                         init_lam=0.0))
    oracle.load_state_dict(torch.load(ckpt, weights_only=False)['state_dict'])
    x = torch.randn(2, 3, 32, 32)
    assert runner.model.backbone.diluted_layers == (0, 2)
    assert torch.equal(runner.model.extract_feat(x)[0], oracle.extract_feat(x)[0])
    undiluted = _build(_cfg(CLS_CFG, type='NoseVisionTransformer'))
    undiluted.load_state_dict(oracle.state_dict())
    assert not torch.allclose(undiluted.extract_feat(x)[0], oracle.extract_feat(x)[0])
    # Another diluted set in the config: refused, never ignored.
    runner = _runner(_cfg(CLS_CFG, type='NoseVisionTransformer', diluted_layers=[1]),
                     tmp_path / 'w2', ckpt)
    with pytest.raises(RuntimeError) as err:
        runner.load_or_resume()
    assert str(err.value) == (f"checkpoint {ckpt!r} was trained with diluted layers [0, 2] at "
                              "lam=0; the model dilutes [1]: set the backbone's "
                              "diluted_layers=[0, 2]")
    # The same record applied the same way by DilutionHook under mmengine's own Runner
    # (one function applies it: before, the hook only warned there).
    from mmengine.runner import Runner
    cfg = _cfg(CLS_CFG, type='NoseVisionTransformer', diluted_layers=[1])
    cfg.work_dir, cfg.load_from = str(tmp_path / 'w3'), ckpt
    cfg.custom_hooks = [dict(type='DilutionHook', end=1)]
    with pytest.raises(RuntimeError) as err:
        Runner.from_cfg(cfg).load_or_resume()
    assert str(err.value) == ("the loaded checkpoint was trained with diluted layers [0, 2] at "
                              "lam=0; the model dilutes [1]: set the backbone's "
                              "diluted_layers=[0, 2]")
    cfg.model.backbone.diluted_layers = []
    cfg.work_dir = str(tmp_path / 'w4')
    plain = Runner.from_cfg(cfg)
    plain.load_or_resume()
    assert plain.model.backbone.diluted_layers == (0, 2)


def test_load_from_classification_backbone_into_upernet_needs_the_opt_out(tmp_path):
    from nose_mm.checkpoint.fit import CheckpointFitError
    cls_ckpt = _save(_build(_cfg(CLS_CFG)), tmp_path / 'cls.pth')
    runner = _runner(_cfg(SEG_CFG), tmp_path / 'a', cls_ckpt)
    with pytest.raises(CheckpointFitError) as err:
        runner.load_or_resume()
    assert str(err.value).startswith(
        f"checkpoint {cls_ckpt!r} does not fit the model: 85 missing keys "
        "(neck.lateral_convs.0.conv.weight, neck.lateral_convs.0.conv.bias, "
        "neck.lateral_convs.1.conv.weight, ...); 4 unexpected keys (head.layers.head.weight, "
        "head.layers.head.bias, backbone.ln1.weight, ...). To load part of it on purpose")
    # Only the backbone is compared: the classifier's final norm is still named...
    runner = _runner(_cfg(SEG_CFG), tmp_path / 'b', cls_ckpt, prefixes=['backbone.'])
    with pytest.raises(CheckpointFitError, match=r"does not fit the model under \['backbone.'\]:"
                       r" 2 unexpected keys \(backbone.ln1.weight, backbone.ln1.bias\)\."):
        runner.load_or_resume()
    # ...until it is ignored on purpose; the backbone weights then load exactly.
    runner = _runner(_cfg(SEG_CFG), tmp_path / 'c', cls_ckpt, prefixes=['backbone.'],
                     ignore_keys=[r'backbone\.ln1\..*'])
    runner.load_or_resume()
    saved = torch.load(cls_ckpt, weights_only=False)['state_dict']
    for key, value in runner.model.backbone.state_dict().items():
        if key != 'pos_embed':  # resized from 32 px to 64 px by mmpretrain's load hook
            assert torch.equal(value, saved['backbone.' + key]), key
    with pytest.raises(ValueError, match=r"checkpoint_fit: unknown keys \['prefix'\]; allowed: "
                       'strict, prefixes, ignore_keys'):
        _runner(_cfg(SEG_CFG), tmp_path / 'd', cls_ckpt, prefix='backbone.')


def test_pretrained_init_is_strict(tmp_path):
    from nose_mm.checkpoint.fit import CheckpointFitError, StrictPretrainedInit
    cls_ckpt = _save(_build(_cfg(CLS_CFG)), tmp_path / 'cls.pth')
    wide = _cfg(CLS_CFG)
    wide.model.backbone.arch.num_layers = 6
    wide_ckpt = _save(_build(wide), tmp_path / 'deep.pth')

    def init(ckpt, **kwargs):
        cfg = _cfg(SEG_CFG, init_cfg=dict(type='Pretrained', prefix='backbone.',
                                          checkpoint=ckpt, **kwargs))
        model = _build(cfg)
        with DefaultScope.overwrite_default_scope('mmseg'):
            model.backbone.init_weights()
        return model

    with pytest.raises(CheckpointFitError) as err:
        init(cls_ckpt)
    assert str(err.value) == (
        f"checkpoint '{cls_ckpt} [backbone.*]' does not fit the model: 2 unexpected keys "
        "(ln1.weight, ln1.bias). To load it anyway, set strict=False or ignore_keys=[...] in "
        "this init_cfg")
    with pytest.raises(CheckpointFitError) as err:
        init(wide_ckpt, ignore_keys=[r'ln1\..*'])
    assert str(err.value) == (
        f"checkpoint '{wide_ckpt} [backbone.*]' does not fit the model: 24 unexpected keys "
        '(layers.4.ln1.weight, layers.4.ln1.bias, layers.4.attn.qkv.weight, ...). To load it '
        'anyway, set strict=False or ignore_keys=[...] in this init_cfg')
    model = init(cls_ckpt, ignore_keys=[r'ln1\..*'])
    saved = torch.load(cls_ckpt, weights_only=False)['state_dict']
    assert torch.equal(model.backbone.layers[3].ffn.layers[1].weight,
                       saved['backbone.layers.3.ffn.layers.1.weight'])
    # The registered 'Pretrained' is nose_mm's in both scopes; strict=False is mmengine's.
    from mmpretrain.registry import WEIGHT_INITIALIZERS as P
    from mmseg.registry import WEIGHT_INITIALIZERS as S
    assert P.get('Pretrained') is StrictPretrainedInit is S.get('Pretrained')
    init(wide_ckpt, strict=False)


def test_pruned_checkpoint_into_unpruned_model_still_names_layers(tmp_path):
    pruned = _save(_build(_cfg(CLS_CFG, type='NoseVisionTransformer', removed_layers=[1])),
                   tmp_path / 'pruned.pth')
    runner = _runner(_cfg(CLS_CFG, type='NoseVisionTransformer'), tmp_path / 'w', pruned)
    with pytest.raises(RuntimeError, match=r'NoseVisionTransformer \(backbone.\): the '
                       r"checkpoint's attention layers differ from the model's: layers \[1\] "
                       'have no attention'):
        runner.load_or_resume()
