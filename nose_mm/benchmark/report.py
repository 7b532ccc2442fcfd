"""What ``tools/benchmark.py`` does: measure one config (or several, interleaved) and report.

The report is a JSON-able dict (``format: nose_mm.benchmark``) that
``tools/benchmark.py --out WORK_DIR/benchmark.json`` writes and the
leaderboard merges into the run of that work dir (see
:mod:`nose_mm.benchmark.results`).
"""
import contextlib
import datetime
import string
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .env import env_info, git_commit
from .info import PARTS, build_model, config_sha256, measure_size, model_info
from .measure import (_check_device, _check_positive, _check_precision, _hw, ab_ratios,
                      compare_models, largest_batch, memory_method, offloaded)
from .results import BENCHMARK_FORMAT, FORMAT_VERSION

__all__ = ['amp_precision', 'model_names', 'run_benchmark', 'format_report']


def amp_precision(device: str) -> str:
    """The autocast dtype ``--amp`` means on ``device``: fp16 on CUDA, bf16 on CPU."""
    return 'fp16' if torch.device(device).type == 'cuda' else 'bf16'



def model_names(count: int) -> List[str]:
    """Report names of ``count`` models: ``'a'``, ``'b'``, ... ``'z'``, then ``'m27'``..."""
    return [string.ascii_lowercase[i] if i < 26 else f'm{i + 1}' for i in range(count)]


def run_benchmark(configs: Sequence[Tuple[Any, Optional[str]]], batch_size: int = 8,
                  img_size: Optional[Sequence[int]] = None, device: str = 'cpu',
                  precision: str = 'fp32', warmup: int = 2, repeats: int = 5,
                  part: str = 'model', memory_budget_gb: Optional[float] = None,
                  memory: bool = True, memory_train: bool = False,
                  clock: str = 'wall') -> Dict[str, Any]:
    """Measure one model, or several timed interleaved in one run (the first is the baseline).

    Args:
        configs (sequence): ``(Config, checkpoint or None)`` per model, the
            baseline first.
        batch_size (int): Images per forward. Defaults to 8.
        img_size (sequence of int, optional): ``(H, W)``. Defaults to the
            first config's (:func:`~nose_mm.benchmark.info.measure_size`),
            used for every model.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``. Defaults to
            ``'fp32'``.
        warmup (int): Untimed forwards (rounds). Defaults to 2.
        repeats (int): Timed forwards (rounds). Defaults to 5.
        part (str): ``'model'`` (whole model in ``mode='tensor'``) or
            ``'backbone'``. Defaults to ``'model'``.
        memory_budget_gb (float, optional): Also search the largest batch
            fitting this GPU budget (CUDA only). Defaults to None.
        memory (bool): Measure peak memory. Defaults to True.
        memory_train (bool): Peak memory and largest batch of a training step
            (forward + backward of the summed outputs) rather than of an
            inference forward: the paper's "working load" is a training
            figure. Defaults to False.
        clock (str): ``'wall'`` or ``'process'`` (CPU time of this process;
            with one thread). Defaults to ``'wall'``.

    Returns:
        dict: ``format``, ``version``, ``run_id``, ``date``, ``hardware``,
        ``git_commit``, ``settings``, ``memory_method``, ``models`` (per
        model: ``name`` ``'a'``, ``'b'``..., ``config``, ``config_sha256``,
        ``checkpoint``, ``model`` (:func:`~nose_mm.benchmark.info.model_info`),
        ``part``, ``params``, ``flops``, ``throughput``,
        ``peak_memory_bytes``, ``largest_batch``, ``timed_together`` (the
        ``run_id``) and ``ratios`` to model ``'a'``, see
        :func:`~nose_mm.benchmark.measure.compare_models`, plus ``baseline``:
        ``'a'``'s ``name``, ``config`` and ``config_sha256``) and, for exactly
        two models, the top-level ``ratios`` (B / A, see
        :func:`~nose_mm.benchmark.measure.compare`). Schema:
        ``benchmarks/README.md``.

    Raises:
        ValueError: Bad settings (named), a memory budget on a CPU device.
    """
    if not configs:
        raise ValueError('give at least one config')
    if part not in PARTS:
        raise ValueError(f'part must be one of {", ".join(PARTS)}, got {part!r}')
    dev = _check_device(device)
    _check_precision(precision)
    _check_positive('batch_size', batch_size)
    _check_positive('repeats', repeats)
    _check_positive('warmup', warmup, minimum=0)
    if memory_budget_gb is not None and dev.type != 'cuda':
        raise ValueError(f'--memory-budget-gb needs a CUDA device (the largest batch is '
                         f'searched against torch.cuda.max_memory_allocated), got device '
                         f'{str(device)!r}')
    if img_size:
        hw, size_source = _hw(tuple(img_size)), 'given'
    else:
        hw, size_source = measure_size(configs[0][0])
    models = [build_model(cfg, ckpt, part=part, device=str(dev)) for cfg, ckpt in configs]
    date = datetime.datetime.now(datetime.timezone.utc)
    run_id = f'{date.strftime("%Y%m%dT%H%M%SZ")}-{uuid.uuid4().hex[:8]}'
    measured = compare_models(models, batch_size, hw, dev, precision, warmup, repeats,
                              memory=memory, memory_train=memory_train, clock=clock)
    entries: List[Dict[str, Any]] = []
    for name, (cfg, ckpt), model, result in zip(model_names(len(models)), configs, models,
                                                measured):
        entries.append({'name': name, 'config': getattr(cfg, 'filename', None),
                        'config_sha256': config_sha256(cfg), 'checkpoint': ckpt,
                        'model': model_info(cfg, model), 'part': part,
                        'timed_together': run_id, **result})
    baseline = {k: entries[0][k] for k in ('name', 'config', 'config_sha256')}
    for entry in entries:
        entry['ratios']['baseline'] = dict(baseline)
    if memory_budget_gb is not None:
        for entry, model in zip(entries, models):
            with contextlib.ExitStack() as stack:
                for other in models:  # only the searched model on the GPU
                    if other is not model:
                        stack.enter_context(offloaded(other, dev))
                entry['largest_batch'] = largest_batch(model, memory_budget_gb, hw, dev,
                                                       precision, train=memory_train)
        base_batch = entries[0]['largest_batch']['batch_size']
        for entry in entries:
            entry['ratios']['largest_batch'] = (entry['largest_batch']['batch_size']
                                                / base_batch if base_batch else None)
    # the A/B summary of earlier versions, kept for its readers
    ratios = ab_ratios(entries[1]['ratios']) if len(entries) == 2 else None
    git = git_commit()
    return {
        'format': BENCHMARK_FORMAT,
        'version': FORMAT_VERSION,
        'run_id': run_id,
        'date': date.isoformat(timespec='seconds'),
        'hardware': env_info(),
        'git_commit': git['commit'] if git else None,
        'settings': {'batch_size': batch_size, 'img_size': list(hw),
                     'img_size_source': size_source, 'device': str(dev),
                     'precision': precision, 'warmup': warmup, 'repeats': repeats,
                     'part': part, 'num_threads': torch.get_num_threads(), 'clock': clock,
                     'memory_budget_gb': memory_budget_gb,
                     'memory_step': 'train' if memory_train else 'inference'},
        'memory_method': memory_method(dev) if memory else None,
        'models': entries,
        'ratios': ratios,
    }


def _fmt(value: Optional[float], spec: str, suffix: str = '') -> str:
    return 'n/a' if value is None else f'{value:{spec}}{suffix}'


def format_report(report: Dict[str, Any]) -> str:
    """Human-readable lines for a :func:`run_benchmark` report."""
    s = report['settings']
    hw = report['hardware']
    where = hw.get('gpu') if s['device'].startswith('cuda') else (hw.get('cpu_model')
                                                                  or hw.get('cpu'))
    lines = [f'nose_mm benchmark: {s["device"]} ({where}), {s["precision"]}, batch '
             f'{s["batch_size"]}, {s["img_size"][0]}x{s["img_size"][1]} px ('
             f'{s.get("img_size_source", "?")}), part '
             f'{s["part"]}, median of {s["repeats"]} repeats after {s["warmup"]} warm-up, '
             f'{s.get("clock", "wall")} clock, torch {hw.get("torch")}, {s["num_threads"]} '
             f'threads' + (f', {len(report["models"])} models timed interleaved (run '
                           f'{report["run_id"]})' if len(report['models']) > 1 else '')]
    for entry in report['models']:
        t = entry['throughput']
        mem = entry.get('peak_memory_bytes')
        info = entry['model']
        gflops = entry['flops'] / 1e9 if entry.get('flops') is not None else None
        merge = info.get('token_merge')
        merge_text = (f', token merging r={merge["r"]} from attention layer {merge["start"]}'
                      if merge else '')
        lines.append(
            f'{entry["name"].upper()}  {entry["config"]}  [{info["display"]}, removed '
            f'{info["removed_layers"]}{merge_text}]\n'
            f'   params {entry["params"] / 1e6:.2f} M | GFLOPs {_fmt(gflops, ".3f")} '
            f'(MACs per image) | {t["img_per_s"]:.2f} img/s (median; repeats: '
            f'{", ".join(f"{v:.2f}" for v in t["img_per_s_repeats"])}) | peak mem '
            f'{_fmt(None if mem is None else mem / 2**20, ".1f", " MiB")}')
        if entry.get('largest_batch'):
            lb = entry['largest_batch']
            lines.append(f'   largest batch within {lb["memory_budget_gb"]} GiB: '
                         f'{lb["batch_size"]}{" (capped)" if lb["capped"] else ""}')
    if report.get('memory_method'):
        lines.append(f'peak memory ({s.get("memory_step", "inference")} step): '
                     f'{report["memory_method"]}')
    base = report['models'][0]
    for entry in report['models'][1:]:
        r = entry['ratios']
        t = r['throughput']
        lines.append(
            f'ratios {entry["name"].upper()}/{base["name"].upper()}: params '
            f'{_fmt(r["params"], ".4f")}, FLOPs {_fmt(r["flops"], ".4f")}, throughput '
            f'{t["median"]:.3f} (IQR {t["q1"]:.3f} to {t["q3"]:.3f}, per-round ratios of '
            f'{len(t["repeats"])} rounds; ratio of medians '
            f'{_fmt(r["throughput_medians"], ".3f")}), FLOPs predict '
            f'{_fmt(r["ideal_speedup"], ".3f")}x: {_fmt(r["speedup_vs_ideal"], ".1%")} of it, '
            f'peak memory {_fmt(r.get("peak_memory"), ".3f")}'
            + (f', largest batch {_fmt(r["largest_batch"], ".3f")}' if 'largest_batch' in r
               else ''))
    return '\n'.join(lines)
