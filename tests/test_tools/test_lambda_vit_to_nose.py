"""tools/convert/lambda_vit_to_nose.py on checkpoints laid out as main_lambda.py saves them."""
import argparse
import copy
import importlib.util
import os.path as osp
import uuid

import pytest
import torch
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS

import nose_mm  # noqa: F401
from nose_mm.models.convert import convert_lambda_vit, parse_layer_list
from tests.utils import reference_pruned_forward

timm = pytest.importorskip('timm')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = dict(embed_dims=32, num_layers=6, num_heads=2, feedforward_channels=64)

pytestmark = pytest.mark.usefixtures('one_thread')


def _tool():
    spec = importlib.util.spec_from_file_location(
        f'tool_{uuid.uuid4().hex[:6]}', osp.join(REPO, 'tools', 'convert', 'lambda_vit_to_nose.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timm_model(seed):
    torch.manual_seed(seed)
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=6, num_heads=2, mlp_ratio=2,
        num_classes=10)
    # LayerNorms away from their init, so a wrong norm would show
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
    return model.eval()


def _main_lambda_checkpoint(model, ema_model, prune_layer='[0,2,3]', epoch=399, **args):
    """``{'model', 'optimizer', 'lr_scheduler', 'epoch', 'model_ema', 'scaler', 'args'}``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=400)
    fields = dict(model='deit_small_patch16_224_copy_lambda', epochs=400, drop_path=0.1,
                  repeated_aug=True, clip_grad=None, prune_layer=prune_layer, done_layer='[]',
                  frozen_stages=-1)
    fields.update(args)
    return {
        'model': model.state_dict(),
        'optimizer': optimizer.state_dict(),
        'lr_scheduler': scheduler.state_dict(),
        'epoch': epoch,
        'model_ema': ema_model.state_dict(),
        'scaler': torch.amp.GradScaler('cpu').state_dict(),
        'args': argparse.Namespace(**fields),
    }


def _classifier(removed):
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NoseVisionTransformer', arch=TINY, img_size=32, patch_size=8,
                      removed_layers=removed),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=32)))
    return model.eval()


@pytest.fixture(scope='module')
def models():
    model = _timm_model(0)
    ema = copy.deepcopy(model)
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model, ema


def test_checkpoint_saved_by_main_lambda_converts_to_reference_pruned_model(models, tmp_path,
                                                                           capsys):
    model, ema = models
    src = tmp_path / 'checkpoint.pth'
    torch.save(_main_lambda_checkpoint(model, ema), src)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tool = _tool()
    for flags, reference in (([], model), (['--ema'], ema)):
        dst = tmp_path / f'nose{len(flags)}.pth'
        assert tool.main([str(src), str(dst), *flags]) == 0
        assert 'removed_layers=[0, 2, 3] from args.prune_layer' in capsys.readouterr().out
        converted = torch.load(dst, map_location='cpu', weights_only=False)
        assert converted['meta']['removed_layers'] == [0, 2, 3]
        assert converted['meta']['dilution_compensate'] is True
        assert not [k for k in converted['state_dict']
                    if k.startswith(tuple(f'backbone.layers.{i}.{p}' for i in (0, 2, 3)
                                          for p in ('ln1.', 'attn.')))]
        nose = _classifier([0, 2, 3])
        load_checkpoint(nose, str(dst), strict=True)
        with torch.no_grad():
            expected = reference_pruned_forward(reference, x, {0, 2, 3})
            assert (nose(x, mode='tensor') - expected).abs().max().item() <= 1e-5
    with torch.no_grad():  # the EMA weights differ: --ema really picked them
        assert (reference_pruned_forward(ema, x, {0, 2, 3})
                - reference_pruned_forward(model, x, {0, 2, 3})).abs().max() > 1e-3


def test_removed_layers_flag_gives_or_overrides_the_set(models, tmp_path, capsys):
    model, ema = models
    checkpoint = _main_lambda_checkpoint(model, ema)
    converted = convert_lambda_vit(checkpoint, removed_layers=[4, 1])
    assert converted['meta']['removed_layers'] == [1, 4]
    assert converted['meta']['removed_layers_from'] == '--removed-layers'
    # no args and no epoch, weights under 'net' (main_lambda.py --finetune reads it): the
    # flag gives the set and --final says lambda reached 0; without --final it is refused
    src, dst = tmp_path / 'bare.pth', tmp_path / 'out.pth'
    torch.save({'net': model.state_dict()}, src)
    assert _tool().main([str(src), str(dst), '--removed-layers', '0', '2', '3']) == 2
    assert capsys.readouterr().err == (
        'nose_mm: error: the checkpoint records no epoch, so whether the reference lambda of '
        'layers [0, 2, 3] reached 0 cannot be told (their attention is still in the file); if '
        'it is a finished model, say so with --removed-layers 0 2 3 --final\n')
    assert not dst.exists()
    assert _tool().main([str(src), str(dst), '--removed-layers', '0', '2', '3',
                         '--final']) == 0
    nose = _classifier([0, 2, 3])
    load_checkpoint(nose, str(dst), strict=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference_pruned_forward(model, x, {0, 2, 3})
        assert (nose(x, mode='tensor') - expected).abs().max().item() <= 1e-5
    # 'model' wins over 'net' when both are there, as in main_lambda.py
    both_keys = {'model': model.state_dict(), 'net': ema.state_dict(), 'epoch': 399}
    converted = convert_lambda_vit(both_keys, removed_layers=[0, 2, 3])
    assert torch.equal(converted['state_dict']['backbone.layers.1.ln1.weight'],
                       model.state_dict()['blocks.1.norm1.weight'])
    # done_layer (layers already at lam = 0) join the removed set
    both = _main_lambda_checkpoint(model, ema, prune_layer='[3]', done_layer='[0, 2]')
    assert convert_lambda_vit(both)['meta']['removed_layers'] == [0, 2, 3]


def test_stripped_layout_still_accepted(models, tmp_path, capsys):
    model, _ = models
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith(('blocks.1.norm1', 'blocks.1.attn', 'blocks.5.norm1',
                                  'blocks.5.attn'))}
    src = tmp_path / 'stripped.pth'
    torch.save({'model': state, 'args': argparse.Namespace(prune_layer='[]',
                                                           done_layer='[1,5]')}, src)
    tool = _tool()
    assert tool.main([str(src), str(tmp_path / 'a.pth')]) == 0
    assert 'removed_layers=[1, 5] from stripped blocks' in capsys.readouterr().out
    assert tool.main([str(src), str(tmp_path / 'b.pth'), '--removed-layers', '1', '5']) == 0
    capsys.readouterr()
    assert tool.main([str(src), str(tmp_path / 'c.pth'), '--removed-layers', '1', '4']) == 2
    assert capsys.readouterr().err == (
        'nose_mm: error: --removed-layers [1, 4] conflicts with the file: its blocks [1, 5] '
        'have no norm1/attn (already stripped)\n')
    assert not (tmp_path / 'c.pth').exists()


@pytest.mark.parametrize('flags, fields, message', [
    (['--removed-layers', '0', '6'], {}, '--removed-layers has layers [6] out of range: the '
     'model has layers 0..5'),
    (['--removed-layers', '-1'], {}, '--removed-layers has layers [-1] out of range: the '
     'model has layers 0..5'),
    (['--removed-layers', '2', '0', '2'], {}, '--removed-layers has duplicated layers [2]: '
     '[2, 0, 2]'),
    *[([], dict(prune_layer=value), 'args.prune_layer must be a list of ints such as '
       f'"[0,1,3,4,6]", got {value!r}')
      for value in ('0,1,3', '[0, 1.5]', '[True]', '__import__("os")')],
    ([], dict(prune_layer='[0,9]'), 'args.prune_layer has layers [9] out of range: the model '
     'has layers 0..5'),
    ([], dict(prune_layer='[]'), 'the removed set from args.prune_layer is empty: this is an '
     'unpruned model; convert it with tools/convert/deit_to_mmpretrain.py'),
    ([], dict(epoch=200), 'the checkpoint was saved after epoch 200, where the reference code '
     'trains layers [0, 2, 3] with lambda = 0.3311 > 0 (it reaches 0 at epoch 299): their '
     'attention still contributes, so it is not a pruned model'),
    ([], dict(drop='epoch'), 'the checkpoint records no epoch, so whether the reference '
     'lambda of layers [0, 2, 3] reached 0 cannot be told (their attention is still in the '
     'file); if it is a finished model, say so with --removed-layers 0 2 3 --final'),
    (['--final'], dict(drop='epoch'), 'the checkpoint records no epoch, so whether the '
     'reference lambda of layers [0, 2, 3] reached 0 cannot be told (their attention is still '
     'in the file); if it is a finished model, say so with --removed-layers 0 2 3 --final'),
    (['--removed-layers', '0', '2', '3', '--final'], dict(epoch=200), 'the checkpoint was '
     'saved after epoch 200, where the reference code trains layers [0, 2, 3] with lambda = '
     '0.3311 > 0 (it reaches 0 at epoch 299): their attention still contributes, so it is '
     'not a pruned model'),
    ([], dict(epoch='399'), "checkpoint[\"epoch\"] must be an int, got '399'"),
    ([], dict(drop='args'), 'cannot tell which layers were removed: every block has '
     'norm1/attn and the checkpoint has no args.prune_layer; pass --removed-layers'),
    (['--ema'], dict(drop='model_ema'), '--ema: the checkpoint has no "model_ema" state dict '
     '(trained with --no-model-ema?)'),
])
def test_bad_input_one_line_error_and_no_output(models, tmp_path, capsys, flags, fields,
                                                message):
    model, ema = models
    fields = dict(fields)
    drop = fields.pop('drop', None)
    epoch = fields.pop('epoch', 399)
    checkpoint = _main_lambda_checkpoint(model, ema, epoch=epoch, **fields)
    if drop:
        del checkpoint[drop]
    src, dst = tmp_path / 'ckpt.pth', tmp_path / 'out.pth'
    torch.save(checkpoint, src)
    assert _tool().main([str(src), str(dst), *flags]) == 2
    assert capsys.readouterr().err == f'nose_mm: error: {message}\n'
    assert not dst.exists()


def test_parse_layer_list():
    assert parse_layer_list('[0,1,3,4,6]', 'x') == [0, 1, 3, 4, 6]
    assert parse_layer_list(' [ ] ', 'x') == []
    assert parse_layer_list((2, 0), 'x') == [2, 0]
    for bad in ('[0,1', '{0, 1}', 3, None, "['0']"):
        with pytest.raises(ValueError, match='x must be a list of ints'):
            parse_layer_list(bad, 'x')


@pytest.mark.parametrize('tool_path', ['convert/deit_to_mmpretrain.py', 'convert/deit_to_mae.py'])
def test_plain_deit_converters_refuse_a_reference_checkpoint(models, tmp_path, capsys,
                                                             tool_path):
    """A main_lambda.py file names its diluted layers in args: read as a plain DeiT (every
    block's attention in the file, at full strength) it would be a wrong model."""
    from tests.utils import import_tool
    model, ema = models
    tool = import_tool(tool_path)
    src, dst = tmp_path / 'ckpt.pth', tmp_path / 'out.pth'
    torch.save(_main_lambda_checkpoint(model, ema), src)
    assert tool.main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('nose_mm: error: a reference-code (lambda_vit) checkpoint: its args '
                          'name diluted / removed layers (prune_layer=[0, 2, 3], done_layer=[])')
    assert 'lambda_vit_to_nose.py' in err and len(err.splitlines()) == 1
    assert not dst.exists()
    # an unpruned run of the reference code (empty sets) is a plain DeiT
    torch.save(_main_lambda_checkpoint(model, ema, prune_layer='[]'), src)
    assert tool.main([str(src), str(dst)] + (['--img-size', '32', '--num-heads', '2']
                                             if tool_path.endswith('mae.py') else [])) == 0
    assert dst.exists()


def test_deit_to_mae_takes_the_reference_converters_final_flag(models, tmp_path, capsys):
    """deit_to_mae.py --lambda-vit passes --final on: a file with no epoch (its attention
    still in it) is refused naming --final, and converts with it."""
    from tests.utils import import_tool
    model, ema = models
    tool = import_tool('convert/deit_to_mae.py')
    checkpoint = _main_lambda_checkpoint(model, ema)
    del checkpoint['epoch'], checkpoint['args']
    src, dst = tmp_path / 'ckpt.pth', tmp_path / 'out.pth'
    torch.save(checkpoint, src)
    common = [str(src), str(dst), '--img-size', '32', '--num-heads', '2', '--lambda-vit',
              '--removed-layers', '0', '2', '3']
    assert tool.main(common) == 2
    assert '--removed-layers 0 2 3 --final' in capsys.readouterr().err and not dst.exists()
    assert tool.main(common + ['--final']) == 0
    assert 'removed_layers=[0, 2, 3]' in capsys.readouterr().out
    assert torch.load(dst, map_location='cpu', weights_only=False)['meta'][
        'removed_layers'] == [0, 2, 3]
