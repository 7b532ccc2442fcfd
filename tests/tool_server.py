"""Runs ``tools/<tool>`` for the tests in processes forked from one pre-imported interpreter.

Starting ``python tools/train.py`` spends about 8 s importing torch, mmengine,
mmpretrain, mmseg and nose_mm before the tool does anything; the suite starts
tools dozens of times. This server imports them once and, per request, forks a
child that runs the tool as ``python tools/<tool> ARGS`` would: its own
process (exit status, stdout and stderr in files, environment and working
folder of the request), the tool run by the project's one in-process runner
(:func:`nose_mm.apis.inprocess.run_tool`: ``__name__ == '__main__'``, its
``sys.argv``), only without the imports.
The server itself never runs torch code, so forking it is as safe as
DataLoader workers are.

Protocol (JSON lines): the tests write ``{"tool", "args", "env", "cwd",
"stdout", "stderr"}`` on stdin; the server answers ``{"pid": N}`` once the
child runs (its own process group: a timeout kills the group) and then
``{"returncode": N}``. :func:`tests.utils.run_tool` is the client.
"""
import atexit
import json
import logging
import os
import os.path as osp
import sys
import traceback

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
from nose_mm.apis.inprocess import run_tool  # noqa: E402 - the worktree's nose_mm


def _child(request: dict) -> None:
    """Run the requested tool in this (forked) process; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        os.chdir(request['cwd'])
        os.environ.clear()
        os.environ.update(request['env'])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request['stdout']), (2, request['stderr'])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        try:
            code = run_tool(osp.join(REPO, 'tools', request['tool']), request['args'])
        except BaseException:  # noqa: BLE001 - a bad tool name, an interrupt: said on stderr
            traceback.print_exc()
        try:
            atexit._run_exitfuncs()
            logging.shutdown()
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def main() -> None:
    import mmengine.runner  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import mmseg.models  # noqa: F401

    import nose_mm  # noqa: F401
    replies = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)  # stray prints of the server go to its log, not into the replies
    replies.write(json.dumps({'ready': True}) + '\n')
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            replies.close()
            _child(request)
        replies.write(json.dumps({'pid': pid}) + '\n')
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({'returncode': os.waitstatus_to_exitcode(status)}) + '\n')


if __name__ == '__main__':
    main()
