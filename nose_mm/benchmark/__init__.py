"""Benchmarks and the leaderboard: params, FLOPs, throughput, memory and accuracy.

- :mod:`~nose_mm.benchmark.flops`: ``count_flops`` (attention products
  included) and ``count_params``.
- :mod:`~nose_mm.benchmark.timing`: interleaved timing (``time_interleaved``).
- :mod:`~nose_mm.benchmark.measure`: plain functions on any ``nn.Module``
  (``compare_models`` for N models timed interleaved in one run,
  ``peak_memory``, ``largest_batch``).
- :mod:`~nose_mm.benchmark.env`: ``env_info`` and ``git_commit`` of a run.
- :mod:`~nose_mm.benchmark.info`: what a config's model is (task, dataset,
  arch, removed layers, input size) and building it for measuring.
- :mod:`~nose_mm.benchmark.records`: the schema of ``results.json`` (written
  by :class:`~nose_mm.engine.hooks.ResultsHook`) and ``benchmark.json``
  (written by ``tools/benchmark.py``): typed records, one validation, the
  ratios of two timed models.
- :mod:`~nose_mm.benchmark.report`: ``tools/benchmark.py``'s measurement and
  report.
- :mod:`~nose_mm.benchmark.seeds`: seed folders, which runs are seed
  replicates of one config (``group_seed_runs``) and their spread.
- :mod:`~nose_mm.benchmark.leaderboard`: collecting runs, building tables,
  rendering them (md / csv / html) and a plot.
"""
from .flops import count_flops, count_params
from .info import TensorForward, build_model, measure_size, model_info
from .measure import compare_models, largest_batch, peak_memory
from .records import (SCHEMA_VERSION, BenchmarkRecord, RecordError, ResultsRecord,
                      normalize_metrics, ratios)
from .report import amp_precision, format_report, run_benchmark
from .seeds import parse_seed_folder, seed_folder
from .timing import median, paired_ratio, spread, time_interleaved

__all__ = [
    'count_flops', 'count_params', 'TensorForward', 'build_model', 'measure_size',
    'model_info', 'compare_models', 'largest_batch', 'peak_memory',
    'SCHEMA_VERSION', 'BenchmarkRecord', 'RecordError', 'ResultsRecord', 'normalize_metrics',
    'ratios', 'amp_precision', 'format_report', 'run_benchmark', 'parse_seed_folder',
    'seed_folder', 'median', 'paired_ratio', 'spread', 'time_interleaved'
]
