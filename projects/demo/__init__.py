"""The built-in demo (``tools/demo.py``, ``make demo``): a project on top of nose_mm.

:mod:`.steps` declares the steps (a table of tool runs), :mod:`.scheduler`
runs them in worker processes, :mod:`.data` writes the digit data,
:mod:`.pipeline` ties them together.
"""
from .pipeline import DATA_DONE, run_demo
from .steps import DEMO_FAMILIES, DEMO_METHODS, DEMO_SEEDS, TOME

__all__ = ['DATA_DONE', 'DEMO_FAMILIES', 'DEMO_METHODS', 'DEMO_SEEDS', 'TOME', 'run_demo']
