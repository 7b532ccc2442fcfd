"""The CLI error convention, the checkpoint reader and the selection settings."""
import argparse

import pytest
import torch

from nose_mm.selection import SelectionSettings, add_selection_args, settings_from_args
from nose_mm.selection.settings import add_setting_arg
from nose_mm.utils import cli
from nose_mm.checkpoint.files import load_checkpoint_file
from nose_mm.utils.cli import INPUT_ERRORS, UserError, cli_main


def test_cli_main_prints_one_line_and_exits_2(capsys, monkeypatch):

    @cli_main(*INPUT_ERRORS)
    def main(argv=None):
        if argv == ['user']:
            raise UserError('bad   value\nfor --x')
        if argv == ['input']:
            raise FileNotFoundError('checkpoint x.pth does not exist')
        if argv == ['bug']:
            raise KeyError('a bug keeps its traceback')
        if argv == ['custom']:
            raise LookupError('known once registered')
        return None

    assert main(['user']) == 2
    assert capsys.readouterr().err == 'nose_mm: error: bad value for --x\n'
    assert main(['input']) == 2
    assert capsys.readouterr().err == 'nose_mm: error: checkpoint x.pth does not exist\n'
    assert main([]) == 0
    with pytest.raises(KeyError):
        main(['bug'])
    with pytest.raises(LookupError):
        main(['custom'])
    monkeypatch.setattr(cli, 'USER_ERRORS', cli.USER_ERRORS + [LookupError])
    assert main(['custom']) == 2
    assert capsys.readouterr().err == 'nose_mm: error: known once registered\n'


def test_load_checkpoint_file(tmp_path):
    path = tmp_path / 'a.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}}, path)
    assert torch.equal(load_checkpoint_file(str(path))['state_dict']['w'], torch.ones(2))
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*nope.pth' does not exist"):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))
    with pytest.raises(IsADirectoryError, match='is a folder, expected a file'):
        load_checkpoint_file(str(tmp_path))
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match='it holds a list, not a checkpoint'):
        load_checkpoint_file(str(path))
    path.write_text('not a checkpoint')
    with pytest.raises(ValueError, match="cannot read checkpoint '.*': not a torch checkpoint"):
        load_checkpoint_file(str(path))


@pytest.mark.parametrize('options, message', [
    (dict(method='best'), "unknown method 'best'; allowed: nose, random, first, attn_entropy, "
                          'cosine'),
    (dict(criterion='max'), "unknown criterion 'max'; allowed: abs, signed"),
    (dict(features='cls'), "unknown features 'cls'; allowed: head_input, logits"),
    (dict(evaluator='fast'), "unknown evaluator 'fast'; allowed: cached, naive"),
    (dict(skip_mode='zero'), "unknown skip_mode 'zero'; allowed: identity, compensated"),
    (dict(split='test'), "unknown split 'test'; allowed: train, val"),
    (dict(num_layers=0), 'num_layers must be a positive int, got 0'),
    (dict(num_layers=True), 'num_layers must be a positive int, got True'),
    (dict(num_samples=1), r'num_samples must be an int >= 2 \(entropy needs a spread\), got 1'),
    (dict(batch_size=0), 'batch_size must be a positive int, got 0'),
    (dict(seed=-1), 'seed must be an int >= 0, got -1'),
    (dict(budget=3), 'unknown selection setting\\(s\\) budget; allowed: num_layers, '
                     'num_samples, method'),
])
def test_selection_settings_validation(options, message):
    with pytest.raises(ValueError, match=message):
        SelectionSettings.build(**options)


def test_selection_settings_argparse_flags():
    parser = argparse.ArgumentParser()
    add_selection_args(parser)
    args = parser.parse_args(['-k', '3', '-n', '8', '--method', 'random', '--criterion',
                              'signed', '--batch-size', '4', '--seed', '2', '--features',
                              'logits', '--evaluator', 'naive', '--skip-mode', 'compensated',
                              '--split', 'val'])
    assert settings_from_args(args) == SelectionSettings(3, 8, 'random', 'signed', 4, 2,
                                                         'logits', 'naive', 'compensated',
                                                         'val')
    defaults = settings_from_args(parser.parse_args(['--num-layers', '2']))
    assert defaults == SelectionSettings(num_layers=2)
    assert SelectionSettings(num_layers=2).budget() == 2
    with pytest.raises(ValueError, match='needs num_layers'):
        SelectionSettings().budget()
    assert (defaults.skip_mode, defaults.split) == ('identity', 'train')
    with pytest.raises(SystemExit):
        parser.parse_args(['--method', 'best', '-k', '2'])
    with pytest.raises(SystemExit):
        parser.parse_args(['--split', 'test', '-k', '2'])
    # one field's option elsewhere, with another default (tools/analysis/random_skip.py)
    other = argparse.ArgumentParser()
    add_setting_arg(other, 'split', default='val')
    assert other.parse_args([]).split == 'val'
    assert other.parse_args(['--split', 'train']).split == 'train'
