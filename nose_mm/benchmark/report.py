"""``tools/benchmark.py``: configs timed interleaved into a ``BenchmarkRecord``, and its report.

``benchmark.json``: ``benchmarks/README.md``.
"""
import datetime
import string
import uuid
from typing import Any, Optional, Sequence, Tuple

import torch

from .env import env_info, git_commit
from .info import build_model, config_sha256, measure_size, model_info
from .measure import MEMORY_METHODS, _check_device, _hw, alone, compare_models, largest_batch
from .records import BenchmarkRecord, BenchmarkSettings, GitInfo, MeasuredModel, ModelInfo

__all__ = ['amp_precision', 'run_benchmark', 'format_report']


def amp_precision(device: str) -> str:
    """The autocast dtype ``--amp`` means on ``device``: fp16 on CUDA, bf16 on CPU."""
    return 'fp16' if torch.device(device).type == 'cuda' else 'bf16'


def run_benchmark(configs: Sequence[Tuple[Any, Optional[str]]], batch_size: int = 8,
                  img_size: Optional[Sequence[int]] = None, device: str = 'cpu',
                  precision: str = 'fp32', warmup: int = 2, repeats: int = 5,
                  part: str = 'model', memory_budget_gb: Optional[float] = None,
                  memory: bool = True, memory_train: bool = False,
                  clock: str = 'wall', runtimes: Sequence[str] = ('torch', )) -> BenchmarkRecord:
    """Measure one model, or several timed interleaved in one run (the first is the baseline).

    Args:
        configs (sequence): ``(Config, checkpoint or None)`` per model, baseline first.
        batch_size (int): Images per forward. Defaults to 8.
        img_size (sequence of int, optional): ``(H, W)``. Defaults to the first config's.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``. Defaults to ``'fp32'``.
        warmup (int): Untimed rounds. Defaults to 2.
        repeats (int): Timed rounds. Defaults to 5.
        part (str): ``'model'`` or ``'backbone'``. Defaults to ``'model'``.
        memory_budget_gb (float, optional): Also search the largest batch (CUDA). Defaults to None.
        memory (bool): Measure peak memory. Defaults to True.
        memory_train (bool): Memory figures of a training step. Defaults to False.
        clock (str): ``'wall'`` or ``'process'``. Defaults to ``'wall'``.
        runtimes (sequence of str): Each model is timed in each (all interleaved in the same
            rounds; :data:`~.records.RUNTIMES`). Defaults to ``('torch', )``.

    Returns:
        BenchmarkRecord: The models named ``'a'``, ``'b'``... (then ``'m27'``...), once per
        runtime (same name, its ``runtime``), runtime by runtime.

    Raises:
        ValueError: Bad settings (named), a memory budget on a CPU device.
    """
    if not configs:
        raise ValueError('give at least one config')
    dev = _check_device(device)  # the rest is checked by compare_models
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
    measured = compare_models(models, batch_size, hw, dev, precision, warmup, repeats,
                              memory=memory, memory_train=memory_train, clock=clock,
                              runtimes=runtimes)
    entries = []
    names = [string.ascii_lowercase[i] if i < 26 else f'm{i + 1}' for i in range(len(models))]
    tagged = [(runtime, item) for runtime in runtimes
              for item in zip(names, configs, models)]
    for (runtime, (name, (cfg, ckpt), model)), result in zip(tagged, measured):
        lb = None
        if memory_budget_gb is not None and runtime == 'torch':
            with alone(model, models, dev):  # only the searched model on the GPU
                lb = largest_batch(model, memory_budget_gb, hw, dev, precision,
                                   train=memory_train)
        entries.append(MeasuredModel(
            **vars(result), name=name, config=getattr(cfg, 'filename', None),
            config_sha256=config_sha256(cfg), checkpoint=ckpt, largest_batch=lb,
            model=ModelInfo.from_json(model_info(cfg, model), 'model'), runtime=runtime))
    git = git_commit()
    return BenchmarkRecord(
        run_id=f'{date.strftime("%Y%m%dT%H%M%SZ")}-{uuid.uuid4().hex[:8]}',
        date=date.isoformat(timespec='seconds'), hardware=env_info(),
        git=GitInfo(**git) if git else None, models=entries, settings=BenchmarkSettings(
            batch_size=batch_size, img_size=list(hw), img_size_source=size_source,
            device=str(dev), precision=precision, warmup=warmup, repeats=repeats, part=part,
            num_threads=torch.get_num_threads(), clock=clock, memory=memory,
            memory_train=memory_train, memory_budget_gb=memory_budget_gb,
            memory_method=MEMORY_METHODS[dev.type] if memory else None))


def _fmt(value: Optional[float], spec: str, suffix: str = '') -> str:
    return 'n/a' if value is None else f'{value:{spec}}{suffix}'


def _rt(entry: MeasuredModel, report: BenchmarkRecord) -> str:
    """`` [runtime]`` when the run timed more than one runtime, or one that is not torch."""
    runtimes = {m.runtime for m in report.models}
    return f' [{entry.runtime}]' if runtimes != {'torch'} else ''


def format_report(report: BenchmarkRecord) -> str:
    """The text ``tools/benchmark.py`` prints for a :func:`run_benchmark` report."""
    s, hw = report.settings, report.hardware
    runtimes = list(dict.fromkeys(m.runtime for m in report.models))
    where = hw.get('gpu') if s.device.startswith('cuda') else (hw.get('cpu_model')
                                                               or hw.get('cpu'))
    lines = [f'nose_mm benchmark: {s.device} ({where}), {s.precision}, batch '
             f'{s.batch_size}, {s.img_size[0]}x{s.img_size[1]} px ({s.img_size_source}), '
             f'part {s.part}, median of {s.repeats} repeats after {s.warmup} warm-up, '
             f'{s.clock} clock, torch {hw.get("torch")}, {s.num_threads} threads'
             + (f', {len(report.models)} models timed interleaved (run {report.run_id})'
                if len(report.models) > 1 else '')
             + (f' in runtimes {", ".join(runtimes)}' if runtimes != ['torch'] else '')]
    for entry in report.models:
        info, mem, merge = entry.model, entry.peak_memory_bytes, entry.model.token_merge
        merge_text = (f', token merging r={merge["r"]} from attention layer {merge["start"]}'
                      if merge else '')
        ips = [s.batch_size / t for t in entry.seconds]
        lines.append(
            f'{entry.name.upper()}{_rt(entry, report)}  {entry.config}  [{info.display}, removed '
            f'{info.removed_layers}{merge_text}]\n'
            f'   params {entry.params / 1e6:.2f} M | GFLOPs '
            f'{_fmt(None if entry.flops is None else entry.flops / 1e9, ".3f")} '
            f'(MACs per image) | {report.img_per_s(entry):.2f} img/s (median; repeats: '
            f'{", ".join(f"{v:.2f}" for v in ips)}) | peak mem '
            f'{_fmt(None if mem is None else mem / 2**20, ".1f", " MiB")}')
        if entry.largest_batch:
            lines.append(f'   largest batch within {s.memory_budget_gb} GiB: '
                         f'{entry.largest_batch.batch_size}'
                         f'{" (capped)" if entry.largest_batch.capped else ""}')
    if s.memory_method:
        lines.append(f'peak memory ({"train" if s.memory_train else "inference"} step): '
                     f'{s.memory_method}')
    for entry in report.models:
        base = report.baseline(entry)
        if entry is base:
            continue
        r = report.ratios(entry)
        t = r.paired_ratio
        lines.append(
            f'ratios {entry.name.upper()}/{base.name.upper()}{_rt(entry, report)}: params '
            f'{_fmt(r.params, ".4f")}, FLOPs {_fmt(r.flops, ".4f")}, throughput '
            f'{t["median"]:.3f} (IQR {t["q1"]:.3f} to {t["q3"]:.3f}, per-round ratios of '
            f'{len(r.paired_rounds)} rounds; ratio of medians '
            f'{_fmt(r.ratio_of_medians, ".3f")}), FLOPs predict '
            f'{_fmt(r.ideal_speedup, ".3f")}x: {_fmt(r.speedup_vs_ideal, ".1%")} of it, '
            f'peak memory {_fmt(r.peak_memory, ".3f")}'
            + (f', largest batch {_fmt(r.largest_batch, ".3f")}' if entry.largest_batch
               else ''))
    return '\n'.join(lines)
