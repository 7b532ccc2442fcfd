"""What ``tools/benchmark.py`` does: measure one config (or two, interleaved) and report.

The report is a JSON-able dict (``format: nose_mm.benchmark``) that
``tools/benchmark.py --out WORK_DIR/benchmark.json`` writes and the
leaderboard merges into the run of that work dir (see
:mod:`nose_mm.benchmark.results`).
"""
import contextlib
import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .env import env_info, git_commit
from .info import PARTS, build_model, config_sha256, default_img_size, model_info
from .measure import (_check_device, _check_positive, _check_precision, _hw, compare,
                      count_flops, count_params, largest_batch, measure_throughput,
                      memory_method, offloaded, peak_memory)
from .results import BENCHMARK_FORMAT, FORMAT_VERSION

__all__ = ['amp_precision', 'run_benchmark', 'format_report']


def amp_precision(device: str) -> str:
    """The autocast dtype ``--amp`` means on ``device``: fp16 on CUDA, bf16 on CPU."""
    return 'fp16' if torch.device(device).type == 'cuda' else 'bf16'



def run_benchmark(configs: Sequence[Tuple[Any, Optional[str]]], batch_size: int = 8,
                  img_size: Optional[Sequence[int]] = None, device: str = 'cpu',
                  precision: str = 'fp32', warmup: int = 2, repeats: int = 5,
                  part: str = 'model', memory_budget_gb: Optional[float] = None,
                  memory: bool = True, memory_train: bool = False) -> Dict[str, Any]:
    """Measure one model, or two interleaved (the first is the reference A).

    Args:
        configs (sequence): One or two ``(Config, checkpoint or None)``.
        batch_size (int): Images per forward. Defaults to 8.
        img_size (sequence of int, optional): ``(H, W)``. Defaults to the
            first config's (:func:`~nose_mm.benchmark.info.default_img_size`),
            used for both models.
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

    Returns:
        dict: ``format``, ``version``, ``date``, ``hardware``, ``git_commit``,
        ``settings``, ``memory_method``, ``models`` (per model: ``name``
        ``'a'``/``'b'``, ``config``, ``config_sha256``, ``checkpoint``,
        ``model`` (:func:`~nose_mm.benchmark.info.model_info`), ``params``,
        ``flops``, ``throughput``, ``peak_memory_bytes``, ``largest_batch``)
        and, for two models, ``ratios`` (B / A, see
        :func:`~nose_mm.benchmark.measure.compare`).

    Raises:
        ValueError: Bad settings (named), a memory budget on a CPU device.
    """
    if len(configs) not in (1, 2):
        raise ValueError(f'give one config or two (to compare), got {len(configs)}')
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
    hw = _hw(tuple(img_size) if img_size else default_img_size(configs[0][0]))
    models = [build_model(cfg, ckpt, part=part, device=str(dev)) for cfg, ckpt in configs]
    entries: List[Dict[str, Any]] = []
    for name, (cfg, ckpt), model in zip('ab', configs, models):
        filename = getattr(cfg, 'filename', None)
        entries.append({'name': name, 'config': filename, 'config_sha256': config_sha256(cfg),
                        'checkpoint': ckpt, 'model': model_info(cfg, model), 'part': part})
    ratios = None
    if len(models) == 2:
        result = compare(models[0], models[1], batch_size, hw, dev, precision, warmup, repeats,
                         memory=memory, memory_train=memory_train)
        for entry, key in zip(entries, 'ab'):
            entry.update({k: result[key][k] for k in ('params', 'flops', 'throughput',
                                                      'peak_memory_bytes')})
        ratios = result['ratios']
    else:
        model = models[0]
        entries[0]['params'] = count_params(model)
        entries[0]['flops'] = count_flops(model, (getattr(model, 'in_channels', 3), ) + hw)
        entries[0]['throughput'] = measure_throughput(model, batch_size, hw, dev, precision,
                                                      warmup, repeats)
        entries[0]['peak_memory_bytes'] = (peak_memory(model, batch_size, hw, dev, precision,
                                                       train=memory_train) if memory else None)
    if memory_budget_gb is not None:
        for entry, model in zip(entries, models):
            others = [m for m in models if m is not model]
            with contextlib.ExitStack() as stack:
                for other in others:  # only the searched model on the GPU
                    stack.enter_context(offloaded(other, dev))
                entry['largest_batch'] = largest_batch(model, memory_budget_gb, hw, dev,
                                                       precision, train=memory_train)
        if ratios is not None:
            a, b = (e['largest_batch']['batch_size'] for e in entries)
            ratios['largest_batch'] = b / a if a else None
    git = git_commit()
    return {
        'format': BENCHMARK_FORMAT,
        'version': FORMAT_VERSION,
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'hardware': env_info(),
        'git_commit': git['commit'] if git else None,
        'settings': {'batch_size': batch_size, 'img_size': list(hw), 'device': str(dev),
                     'precision': precision, 'warmup': warmup, 'repeats': repeats,
                     'part': part, 'num_threads': torch.get_num_threads(),
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
             f'{s["batch_size"]}, {s["img_size"][0]}x{s["img_size"][1]} px, part '
             f'{s["part"]}, median of {s["repeats"]} repeats after {s["warmup"]} warm-up, '
             f'torch {hw.get("torch")}, {s["num_threads"]} threads']
    for entry in report['models']:
        t = entry['throughput']
        mem = entry.get('peak_memory_bytes')
        info = entry['model']
        gflops = entry['flops'] / 1e9 if entry.get('flops') is not None else None
        lines.append(
            f'{entry["name"].upper()}  {entry["config"]}  [{info["display"]}, removed '
            f'{info["removed_layers"]}]\n'
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
    r = report.get('ratios')
    if r:
        lines.append(
            f'ratios B/A: params {_fmt(r["params"], ".4f")}, FLOPs {_fmt(r["flops"], ".4f")}, '
            f'throughput {_fmt(r["throughput"], ".3f")} (median of per-round ratios '
            f'{_fmt(r.get("throughput_paired"), ".3f")}; FLOPs predict '
            f'{_fmt(r["ideal_speedup"], ".3f")}x: {_fmt(r["speedup_vs_ideal"], ".1%")} / '
            f'{_fmt(r.get("paired_speedup_vs_ideal"), ".1%")} of it), '
            f'peak memory {_fmt(r.get("peak_memory"), ".3f")}'
            + (f', largest batch {_fmt(r["largest_batch"], ".3f")}' if 'largest_batch' in r
               else ''))
    return '\n'.join(lines)
