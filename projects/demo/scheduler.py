"""Runs a table of steps (tool runs) in worker processes, each tool in-process.

A :class:`Step` is data: the tool, its arguments and the steps it waits for.
Arguments may hold references that can only be read once earlier steps are
done (:class:`LastCheckpoint`, :class:`Selected`, :class:`Derived`); they are
resolved when the step starts. Every step's output goes to
``<work_dir>/logs/<step>.log``.
"""
import json
import multiprocessing
import os
import os.path as osp
import shutil
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from mmengine.config import Config

from nose_mm.apis.inprocess import run_tool
from nose_mm.utils.cli import UserError
from nose_mm.utils.fileio import atomic_write

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')


class DemoStepFailed(UserError):
    """A demo step (one tool run) exited with an error; its log says why."""


@dataclass(frozen=True)
class LastCheckpoint:
    """The checkpoint a training run in folder ``run`` saved last."""

    run: str


@dataclass(frozen=True)
class Selected:
    """The sorted layer indices of a ``tools/nose_select.py`` output file."""

    file: str


@dataclass(frozen=True)
class Derived:
    """A config derived from ``base`` by ``Config.merge_from_dict(options)``.

    Written to ``<work_dir>/configs/<name>.py`` (its full dump) when a step
    first needs it; the argument becomes that path.

    Args:
        name (str): File name without ``.py``.
        base (str): The config file it starts from.
        options (dict): For ``merge_from_dict`` (dotted keys, list indices
            allowed: ``custom_hooks.0.selection_file``); values may hold
            references.
    """

    name: str
    base: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Step:
    """One tool run: ``tools/<tool> args`` once every step in ``after`` is done.

    Args:
        name (str): Unique; names the log file (spaces become ``_``).
        tool (str): Script under ``tools/``, e.g. ``'train.py'``.
        args (tuple): Its arguments (str, int or references).
        after (tuple of str): Steps that must be done first.
        alone (bool): A timing: runs with no other step running. Defaults to False.
        copies (tuple): ``(source, destination)`` paths: files the step wrote,
            copied (atomically) once it is done. Defaults to ``()``.
    """

    name: str
    tool: str
    args: Tuple[Any, ...]
    after: Tuple[str, ...] = ()
    alone: bool = False
    copies: Tuple[Tuple[str, str], ...] = ()


class Resolver:
    """Turns the references in step arguments into values (derived configs written once)."""

    def __init__(self, cfg_dir: str) -> None:
        self.cfg_dir = cfg_dir
        self._written: Dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, LastCheckpoint):
            with open(osp.join(value.run, 'last_checkpoint')) as f:
                return f.read().strip()
        if isinstance(value, Selected):
            with open(value.file) as f:
                return sorted(json.load(f)['selection'])
        if isinstance(value, Derived):
            return self.config(value)
        if isinstance(value, Mapping):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self(v) for v in value)
        return value

    def config(self, derived: Derived) -> str:
        """Write ``derived`` (once) and return its path."""
        if derived.name not in self._written:
            cfg = Config.fromfile(derived.base)
            cfg.merge_from_dict(self(derived.options), allow_list_keys=True)
            path = osp.join(self.cfg_dir, f'{derived.name}.py')
            text = cfg.dump()

            def write(tmp: str) -> None:
                with open(tmp, 'w') as f:
                    f.write(text)

            atomic_write(path, write)
            self._written[derived.name] = path
        return self._written[derived.name]


def _worker(conn, threads: int) -> None:
    """A worker: run ``(name, tool, argv, log)`` jobs until ``None``; reply with the status."""
    import torch
    torch.set_num_threads(threads)
    while True:
        job = conn.recv()
        if job is None:
            return
        name, tool, argv, log = job
        wall, cpu = time.time(), time.process_time()
        with open(log, 'w') as f:
            f.write(f'$ python tools/{tool} ' + ' '.join(argv) + '\n')
        status = run_tool(osp.join(TOOLS, tool), argv, log=log)
        conn.send((name, status, time.time() - wall, time.process_time() - cpu))


class Workers:
    """Worker processes forked from this (pre-imported) one, each running tools in-process.

    Args:
        count (int): Number of workers.
        threads (int): Torch threads of each worker.
    """

    def __init__(self, count: int, threads: int) -> None:
        ctx = multiprocessing.get_context('fork')
        self.conns, self.procs = [], []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, threads), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs):
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


def check_steps(steps: Sequence[Step]) -> None:
    """Raise ValueError for a repeated step name or a wait on an unknown step."""
    names = [s.name for s in steps]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f'step names must be unique, repeated: {repeated}')
    for step in steps:
        missing = [d for d in step.after if d not in names]
        if missing:
            raise ValueError(f'step {step.name!r} waits for unknown steps {missing}')


def log_path(logs: str, name: str) -> str:
    """The log file of step ``name`` in folder ``logs``."""
    return osp.join(logs, name.replace(' ', '_') + '.log')


def run_steps(steps: Sequence[Step], workers: Workers, work_dir: str
              ) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Run ``steps`` (list order = priority) as soon as what they wait for is done.

    Args:
        steps (sequence of Step): The table.
        workers (Workers): Where they run.
        work_dir (str): Holds ``logs/`` and ``configs/`` (derived configs).

    Returns:
        tuple: Wall and CPU seconds of each step, by name.

    Raises:
        DemoStepFailed: At the first step that fails (the end of its log is
            printed on stderr first).
    """
    check_steps(steps)
    logs, cfg_dir = osp.join(work_dir, 'logs'), osp.join(work_dir, 'configs')
    os.makedirs(logs, exist_ok=True)
    os.makedirs(cfg_dir, exist_ok=True)
    resolve = Resolver(cfg_dir)
    pending, by_name = list(steps), {s.name: s for s in steps}
    idle = list(range(len(workers.conns)))
    running: Dict[int, Step] = {}
    done, wall, cpu = set(), {}, {}
    while pending or running:
        while idle and not any(s.alone for s in running.values()):
            ready: Optional[Step] = next(
                (s for s in pending if all(d in done for d in s.after)), None)
            if ready is None or (ready.alone and running):
                break
            pending.remove(ready)
            worker = idle.pop(0)
            argv = [str(a) for a in resolve(ready.args)]
            workers.conns[worker].send((ready.name, ready.tool, argv,
                                        log_path(logs, ready.name)))
            running[worker] = ready
            print(f'[demo] start  {ready.name}', flush=True)
        if not running:
            raise RuntimeError(f'demo steps wait for each other: {[s.name for s in pending]}')
        by_conn = {workers.conns[w]: w for w in running}
        for conn in wait(list(by_conn)):
            worker = by_conn[conn]
            step = running.pop(worker)
            try:
                name, status, wall[step.name], cpu[step.name] = conn.recv()
            except EOFError:
                name, status, wall[step.name], cpu[step.name] = step.name, 'died', 0.0, 0.0
            idle.append(worker)
            if status != 0:
                _report_failure(name, status, log_path(logs, name))
            for src, dst in by_name[name].copies:
                atomic_write(dst, lambda tmp, src=src: shutil.copyfile(src, tmp))
            done.add(name)
            print(f'[demo] done   {name:<28} {wall[name]:6.1f} s ({cpu[name]:5.1f} s CPU)',
                  flush=True)
    return wall, cpu


def _report_failure(name: str, status, log: str) -> None:
    tail = open(log).read().strip().splitlines()[-25:] if osp.isfile(log) else []
    print(f'[demo] step {name!r} failed; the end of {log}:\n' + '\n'.join(tail),
          file=sys.stderr, flush=True)
    raise DemoStepFailed(f'demo step {name!r} failed (exit {status}); its log: {log}')

