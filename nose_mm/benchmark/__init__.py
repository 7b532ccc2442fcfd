"""Benchmarks and the leaderboard: params, FLOPs, throughput, memory and accuracy.

- :mod:`~nose_mm.benchmark.flops`: ``count_flops`` (attention products
  included) and ``count_params``.
- :mod:`~nose_mm.benchmark.timing`: interleaved timing (``time_interleaved``).
- :mod:`~nose_mm.benchmark.measure`: plain functions on any ``nn.Module``
  (``measure_throughput``, ``peak_memory``, ``largest_batch``,
  ``compare_models`` for N models timed in one run, ``compare`` for two).
- :mod:`~nose_mm.benchmark.env`: ``env_info`` and ``git_commit`` of a run.
- :mod:`~nose_mm.benchmark.info`: what a config's model is (task, dataset,
  arch, removed layers, input size) and building it for measuring.
- :mod:`~nose_mm.benchmark.results`: ``results.json`` (written by
  :class:`~nose_mm.engine.hooks.ResultsHook`) and its merge with
  ``benchmark.json`` (written by ``tools/benchmark.py``).
- :mod:`~nose_mm.benchmark.report`: ``tools/benchmark.py``'s measurement and
  report (``benchmark.json``).
- :mod:`~nose_mm.benchmark.seeds`: which runs are seed replicates of one
  config (``group_seed_runs``) and their spread (``beyond_spread``).
- :mod:`~nose_mm.benchmark.leaderboard`: tables (md / csv / html) and a plot.
"""
from .env import cpu_model_name, env_info, git_commit
from .flops import count_flops, count_params, flop_analyzer, sdpa_flop_jit
from .info import (BENCHMARK_FILE, PARTS, RESULTS_FILE, TASKS, TensorForward, build_model,
                   config_sha256, dataset_name, default_img_size, measure_size, model_info,
                   task_of)
from .leaderboard import (FORMATS, Row, Table, build_leaderboard, build_tables, find_results,
                          load_reference, plot_leaderboard, render, rows_from_runs,
                          write_leaderboard)
from .measure import (DEVICES, MEMORY_METHODS, PRECISIONS, ab_ratios, compare, compare_models,
                      largest_batch, measure_throughput, memory_method, peak_memory)
from .report import amp_precision, format_report, model_names, run_benchmark
from .results import (MAIN_METRIC, METRIC_KEYS, build_results, load_run, match_benchmark,
                      normalize_metrics, validate_results)
from .seeds import beyond_spread, group_seed_runs, pooled_std, replicate_key
from .timing import CLOCKS, median, paired_ratio, paired_ratios, spread, time_interleaved

__all__ = [
    'beyond_spread', 'group_seed_runs', 'pooled_std', 'replicate_key',
    'count_params', 'count_flops', 'flop_analyzer', 'sdpa_flop_jit', 'CLOCKS', 'median',
    'paired_ratio', 'paired_ratios', 'spread', 'time_interleaved', 'env_info',
    'cpu_model_name', 'measure_throughput', 'peak_memory', 'memory_method', 'largest_batch',
    'compare_models', 'ab_ratios', 'compare', 'PRECISIONS', 'DEVICES', 'MEMORY_METHODS',
    'TASKS', 'PARTS', 'RESULTS_FILE', 'BENCHMARK_FILE', 'TensorForward', 'build_model',
    'config_sha256', 'dataset_name', 'default_img_size', 'measure_size', 'git_commit',
    'model_info', 'task_of', 'MAIN_METRIC', 'METRIC_KEYS', 'build_results', 'load_run',
    'match_benchmark', 'normalize_metrics', 'validate_results', 'FORMATS', 'Row', 'Table',
    'build_leaderboard', 'build_tables', 'find_results', 'load_reference', 'plot_leaderboard',
    'render', 'rows_from_runs', 'write_leaderboard', 'amp_precision', 'format_report',
    'model_names', 'run_benchmark'
]
