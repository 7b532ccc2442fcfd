"""Benchmarks and the leaderboard: params, FLOPs, throughput, memory and accuracy.

Modules: ``flops`` (FLOPs with attention products), ``timing`` (interleaved
timing), ``measure`` (throughput and memory of any ``nn.Module``), ``memory``
(tracked tensor bytes and the working load on any device), ``env``
(where a run ran), ``info`` (what a config's model is), ``records`` (schema of
``results.json`` and ``benchmark.json``), ``report`` (``tools/benchmark.py``),
``seeds`` (seed replicates) and ``leaderboard``. Conventions, file formats and
measured numbers: ``benchmarks/README.md``.
"""
from .flops import count_flops, count_params
from .info import TensorForward, build_model, measure_size, model_info
from .measure import compare_models, largest_batch, peak_memory
from .records import BenchmarkRecord, ResultsRecord, normalize_metrics, ratios
from .report import amp_precision, format_report, run_benchmark
from .timing import median, paired_ratio, spread, time_interleaved

__all__ = [
    'count_flops', 'count_params', 'TensorForward', 'build_model', 'measure_size',
    'model_info', 'compare_models', 'largest_batch', 'peak_memory', 'BenchmarkRecord',
    'ResultsRecord', 'normalize_metrics', 'ratios', 'amp_precision', 'format_report',
    'run_benchmark', 'median', 'paired_ratio', 'spread', 'time_interleaved'
]
