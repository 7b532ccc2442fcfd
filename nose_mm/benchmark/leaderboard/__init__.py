"""Leaderboard: ``collect`` runs, build ``tables``, ``render`` them; bad files are skipped, named.

Rules: ``benchmarks/README.md``, "Leaderboard".
"""
from .collect import Skipped, collect_runs, load_reference
from .render import plot_leaderboard, render, write_leaderboard
from .tables import Row, build_leaderboard, build_tables, rows_from_runs

__all__ = [
    'Skipped', 'collect_runs', 'load_reference', 'Row', 'rows_from_runs', 'build_tables',
    'build_leaderboard', 'render', 'write_leaderboard', 'plot_leaderboard'
]
