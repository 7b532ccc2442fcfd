"""Leaderboard: every run's ``results.json`` side by side with published numbers.

- :mod:`~nose_mm.benchmark.leaderboard.collect`: files -> records (the runs,
  the ``benchmark.json`` timing each, the reference YAML).
- :mod:`~nose_mm.benchmark.leaderboard.tables`: rows and tables (seed
  statistics, deltas to baselines, speed ratios, reported rows).
- :mod:`~nose_mm.benchmark.leaderboard.render`: Markdown, CSV, HTML and a plot.

Malformed or partial files are reported (``problems``) and skipped, never written.
"""
from .collect import Run, collect_runs, find_results, load_reference
from .render import FORMATS, columns, plot_leaderboard, render, write_leaderboard
from .tables import Row, Table, build_leaderboard, build_tables, reference_rows, rows_from_runs

__all__ = [
    'Run', 'collect_runs', 'find_results', 'load_reference', 'Row', 'Table', 'rows_from_runs',
    'reference_rows', 'build_tables', 'build_leaderboard', 'FORMATS', 'columns', 'render',
    'write_leaderboard', 'plot_leaderboard'
]
