"""Run a command-line tool of ``tools/`` inside this Python process.

``run_tool('train.py', argv)`` imports ``tools/train.py`` and calls its
``main(argv)``: the same code as ``python tools/train.py ...`` without a new
interpreter (importing torch and the OpenMMLab stack costs seconds per start).
Used by ``tools/multi_seed.py`` and the demo.
"""
import importlib.util
import os.path as osp
import sys
from types import ModuleType
from typing import Dict, Sequence

__all__ = ['TOOLS_DIR', 'load_tool', 'run_tool']

TOOLS_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools')
_LOADED: Dict[str, ModuleType] = {}


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>`` (e.g. ``'train.py'``, ``'analysis/plot_te_heatmap.py'``) once."""
    if name not in _LOADED:
        path = osp.join(TOOLS_DIR, name)
        if not osp.isfile(path):
            raise ValueError(f'no tool {name!r} in {TOOLS_DIR}')
        spec = importlib.util.spec_from_file_location(
            'nose_mm_tool_' + name[:-3].replace('/', '_'), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _LOADED[name] = module
    return _LOADED[name]


def run_tool(name: str, argv: Sequence[str]) -> int:
    """``main(argv)`` of ``tools/<name>``; its exit status (argparse exits included).

    Errors the tool reports itself (``nose_mm: error: ...``) come back as
    status 2; any other exception propagates with its traceback.
    """
    module = load_tool(name)
    try:
        status = module.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse (--help, bad arguments)
        code = exc.code
        status = code if isinstance(code, int) else (0 if code is None else 2)
        if not isinstance(code, (int, type(None))):
            print(code, file=sys.stderr)
    return int(status or 0)
