"""The backbone-family registry: lookups by module, config type and keys, and its refusals."""
import pytest
import torch
from mmpretrain.models.backbones import DeiT3, SwinTransformer, VisionTransformer
from mmseg.models.backbones import BEiT, MAE

from nose_mm.models import NoseDeiT3, NoseSwinTransformer, NoseVisionTransformer
from nose_mm.models.backbones import NoseBEiT, NoseMAE
from nose_mm.models.family import (BackboneFamily, detect_source_family, families,
                                   family_of_module, family_of_state_dict, family_of_type,
                                   get_family, layout_of_state_dict, register_family)
from nose_mm.registry import PRETRAIN_MODELS, SEG_MODELS


def test_every_family_owns_its_backbones_and_is_registered():
    expected = {'vit': (NoseVisionTransformer, VisionTransformer),
                'deit3': (NoseDeiT3, DeiT3),
                'swin': (NoseSwinTransformer, SwinTransformer),
                'mae': (NoseMAE, NoseBEiT, MAE, BEiT)}
    assert [f.name for f in families()] == list(expected)
    for name, classes in expected.items():
        family = get_family(name)
        assert family.backbone is classes[0]
        for cls in classes:  # the nose_mm class and mmpretrain's, by class and by config type
            assert family_of_module(cls) is family
            assert family_of_type(f'{cls.__module__.split(".")[0]}.{cls.__name__}') is family
        # the backbone builds from both scopes' configs
        assert PRETRAIN_MODELS.get(family.backbone.__name__) is family.backbone
        assert SEG_MODELS.get(family.backbone.__name__) is family.backbone
    assert family_of_type('ResNet') is None and family_of_type(None) is None
    assert family_of_module(torch.nn.Linear(2, 2)) is None


def test_display_names_come_from_the_families():
    from nose_mm.benchmark.info import arch_name, display_name
    assert display_name(arch_name('deit-base', 'NoseVisionTransformer'),
                        'NoseVisionTransformer') == 'DeiT-B'
    assert display_name(arch_name('tiny', 'SwinTransformer'), 'SwinTransformer') == 'Swin-T'
    custom = arch_name({'embed_dims': 32, 'num_layers': 4}, 'NoseDeiT3')
    assert custom == 'deit3-custom(d32,L4)'
    assert display_name(custom, 'NoseDeiT3') == 'DeiT-III custom(d32,L4)'


def test_unknown_and_ambiguous_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown backbone family 'resnet'; registered: vit, "
                                         "deit3, swin, mae"):
        get_family('resnet')
    with pytest.raises(ValueError, match=r'unrecognised checkpoint layout \(first keys: '
                                         r"\['head.weight'\]\)"):
        detect_source_family({'head.weight': torch.zeros(1)})
    both = {'backbone.layers.0.ln1.weight': torch.zeros(1),
            'backbone.stages.0.blocks.0.norm1.weight': torch.zeros(1)}
    with pytest.raises(ValueError, match='block keys of several backbone layouts'):
        layout_of_state_dict(both)
    with pytest.raises(ValueError, match='block keys of several backbone layouts'):
        family_of_state_dict(both)
    with pytest.raises(TypeError, match='is not a BackboneFamily subclass'):
        register_family(object)


def test_a_new_family_is_one_registration(monkeypatch):
    """A family registered from outside is found by the same lookups as the built-in ones,
    and one that claims the same checkpoints as another makes detection refuse to guess."""
    from nose_mm.models import family as registry

    class Twin(BackboneFamily):
        name = 'twin'
        backbone = NoseSwinTransformer
        layout = get_family('swin').layout

        def claims_source(self, state_dict):
            return get_family('swin').claims_source(state_dict)

    monkeypatch.setattr(registry, '_FAMILIES', registry._FAMILIES.copy())
    register_family(Twin)
    assert get_family('twin').name == 'twin'
    with pytest.raises(ValueError, match=r'looks like several backbone families \(swin, twin\)'):
        detect_source_family({'layers.0.blocks.0.norm1.weight': torch.zeros(1)})


def test_family_names_stay_in_their_modules():
    """Only a family's own module, the registry and the backbone package's exports name a
    family: the rest of nose_mm asks the registry."""
    import os.path as osp
    import re
    from pathlib import Path

    import nose_mm
    package = Path(osp.dirname(nose_mm.__file__))
    allowed = {Path('models/family.py'), Path('models/__init__.py'),
               Path('models/backbones/__init__.py')}
    allowed |= {Path(osp.relpath(__import__(type(f).__module__, fromlist=['x']).__file__,
                                 package)) for f in families()}
    names = re.compile(r'deit3|deit-iii|swin|\bmae\b|beit', re.IGNORECASE)
    found = {str(path.relative_to(package)): sorted(set(names.findall(path.read_text())))
             for path in package.rglob('*.py')
             if path.relative_to(package) not in allowed and names.search(path.read_text())}
    assert found == {}
