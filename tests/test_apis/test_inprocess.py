"""The one in-process tool runner: a script runs as ``python SCRIPT ARGS`` would."""
import os
import os.path as osp
import sys

import pytest

from nose_mm.apis.inprocess import run_tool
from tests.utils import REPO

SCRIPT = '''import json, os, sys
print('to stdout')
print('to stderr', file=sys.stderr)
os.write(1, b'fd 1 directly\\n')
json.dump(dict(name=__name__, argv=sys.argv, path0=sys.path[0]),
          open(sys.argv[1], 'w'))
how = sys.argv[2]
if how == 'exit3':
    sys.exit(3)
if how == 'message':
    sys.exit('a message')
if how == 'exit256':
    sys.exit(256)
if how == 'raise':
    raise RuntimeError('boom')
if how == 'interrupt':
    raise KeyboardInterrupt
'''


@pytest.fixture
def script(tmp_path):
    path = tmp_path / 'tool_dir' / 'script.py'
    path.parent.mkdir()
    path.write_text(SCRIPT)
    return str(path)


@pytest.mark.parametrize('how, status', [('end', 0), ('exit3', 3), ('message', 1),
                                         ('raise', 1), ('exit256', 0)])
def test_status_and_output_as_a_process_has_them(tmp_path, script, how, status, capfd):
    import json
    log = tmp_path / 'step.log'
    log.write_text('$ header\n')
    argv, path = list(sys.argv), list(sys.path)
    seen = tmp_path / 'seen.json'
    assert run_tool(script, [seen, how], log=str(log)) == status
    # the script saw what `python script ARGS` gives it; both lists restored after
    assert json.load(open(seen)) == dict(name='__main__', argv=[script, str(seen), how],
                                         path0=osp.dirname(script))
    assert sys.argv == argv and sys.path == path
    text = log.read_text()
    assert text.startswith('$ header\nto stdout\n')  # appended to the log
    assert 'to stderr' in text and 'fd 1 directly' in text
    assert ('a message' in text) == (how == 'message')
    assert ('Traceback' in text and 'RuntimeError: boom' in text) == (how == 'raise')
    out, err = capfd.readouterr()  # nothing reached this process's own streams
    assert 'to stdout' not in out + err and 'fd 1 directly' not in out + err
    print('after')  # and they are this process's again
    assert capfd.readouterr().out == 'after\n'


def test_without_a_log_the_output_stays_on_this_process(tmp_path, script, capfd):
    assert run_tool(script, [tmp_path / 'seen.json', 'exit3']) == 3
    out, err = capfd.readouterr()
    assert 'to stdout' in out and 'fd 1 directly' in out and 'to stderr' in err


def test_interrupt_propagates_and_restores_the_streams(tmp_path, script, capfd):
    log = tmp_path / 'step.log'
    with pytest.raises(KeyboardInterrupt):
        run_tool(script, [tmp_path / 'seen.json', 'interrupt'], log=str(log))
    print('after')
    assert capfd.readouterr().out.endswith('after\n')
    assert 'to stdout' in log.read_text()


def test_missing_script_is_named(tmp_path):
    missing = str(tmp_path / 'nope.py')
    with pytest.raises(ValueError, match=f"no script '{missing}'"):
        run_tool(missing, [])
    assert not os.listdir(tmp_path)


def test_a_real_tool(tmp_path):
    """``tools/prune.py --help`` (argparse exits 0) and a bad argument (exit 2)."""
    log = tmp_path / 'prune.log'
    assert run_tool(osp.join(REPO, 'tools', 'prune.py'), ['--help'], log=str(log)) == 0
    assert log.read_text().startswith('usage: prune.py')
    assert run_tool(osp.join(REPO, 'tools', 'prune.py'),
                    [tmp_path / 'in.pth', tmp_path / 'out.pth', '--no-such-flag'],
                    log=str(log)) == 2
    assert 'unrecognized arguments: --no-such-flag' in log.read_text()


def test_an_unwritable_log_changes_nothing(tmp_path, script):
    argv, path = list(sys.argv), list(sys.path)
    with pytest.raises(FileNotFoundError):
        run_tool(script, ['x'], log=str(tmp_path / 'no' / 'dir' / 'step.log'))
    assert sys.argv == argv and sys.path == path
