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
from .measure import (MEMORY_METHODS, _check_device, _hw, _in_channels, alone, compare_models,
                      largest_batch)
from .memory import ATTENTION, OPTIMIZERS, TRACKED_METHOD, tracked_peak
from .records import (BenchmarkRecord, BenchmarkSettings, GitInfo, MeasuredModel, ModelInfo,
                      TrackedMemory)

__all__ = ['amp_precision', 'run_benchmark', 'format_report', 'PAPER_WORKING_LOAD_GAIN']

#: The paper's working-load gain (percent) by (arch, removed layers): docs/method.md.
PAPER_WORKING_LOAD_GAIN = {('deit-base', (0, 1, 3, 4, 6)): 20.5}


def amp_precision(device: str) -> str:
    """The autocast dtype ``--amp`` means on ``device``: fp16 on CUDA, bf16 on CPU."""
    return 'fp16' if torch.device(device).type == 'cuda' else 'bf16'


def run_benchmark(configs: Sequence[Tuple[Any, Optional[str]]], batch_size: int = 8,
                  img_size: Optional[Sequence[int]] = None, device: str = 'cpu',
                  precision: str = 'fp32', warmup: int = 2, repeats: int = 5,
                  part: str = 'model', memory_budget_gb: Optional[float] = None,
                  memory: bool = True, memory_train: bool = False,
                  clock: str = 'wall', memory_optimizer: Optional[str] = None,
                  attention: Sequence[str] = tuple(ATTENTION),
                  runtimes: Sequence[str] = ('torch', )) -> BenchmarkRecord:
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
        memory_budget_gb (float, optional): Also search the largest batch (the working
            load) within this budget, by the device's method and by tracked bytes on
            every ``attention`` path. Defaults to None.
        memory (bool): Measure peak memory. Defaults to True.
        memory_train (bool): Memory figures of a training step. Defaults to False.
        clock (str): ``'wall'`` or ``'process'``. Defaults to ``'wall'``.
        memory_optimizer (str, optional): ``'sgd'`` / ``'adamw'`` state counted in the
            training step (``memory_train``). Defaults to None.
        attention (sequence of str): Attention paths of the tracked figures
            (``models[].tracked``; :data:`.memory.ATTENTION`); empty: none. Defaults to
            ``('fused', 'math')``.
        runtimes (sequence of str): Each model is timed in each (all interleaved in the same
            rounds; :data:`~.records.RUNTIMES`). Defaults to ``('torch', )``.

    Returns:
        BenchmarkRecord: The models named ``'a'``, ``'b'``... (then ``'m27'``...), once per
        runtime (same name, its ``runtime``), runtime by runtime.

    Raises:
        ValueError: Bad settings (named).
    """
    if not configs:
        raise ValueError('give at least one config')
    dev = _check_device(device)  # the rest is checked by compare_models
    bad = [a for a in attention if a not in ATTENTION]
    if bad:
        raise ValueError(f'attention paths must be among {", ".join(ATTENTION)}, got {bad[0]!r}')
    if memory_optimizer is not None and (memory_optimizer not in OPTIMIZERS or
                                         not memory_train):
        raise ValueError(f'the memory optimizer must be one of {", ".join(OPTIMIZERS)}, with '
                         f'a training step (--train-memory), got {memory_optimizer!r}')
    if memory_budget_gb is not None and not (memory_budget_gb > 0 and memory):
        raise ValueError(f'the memory budget must be a positive number of GiB, with memory '
                         f'measured, got {memory_budget_gb!r}')
    if memory_budget_gb is not None and 'torch' not in runtimes:
        raise ValueError(f'the working load (memory budget) is measured on the torch model: '
                         f'add torch to the runtimes, got {", ".join(runtimes)}')
    memory = memory and 'torch' in runtimes  # memory is measured on the torch entries only
    attention = list(dict.fromkeys(attention)) if memory else []
    if img_size:
        hw, size_source = _hw(tuple(img_size)), 'given'
    else:
        hw, size_source = measure_size(configs[0][0])
    models = [build_model(cfg, ckpt, part=part, device=str(dev)) for cfg, ckpt in configs]
    date = datetime.datetime.now(datetime.timezone.utc)
    measured = compare_models(models, batch_size, hw, dev, precision, warmup, repeats,
                              memory=memory, memory_train=memory_train, clock=clock,
                              memory_optimizer=memory_optimizer, runtimes=runtimes)
    entries = []
    names = [string.ascii_lowercase[i] if i < 26 else f'm{i + 1}' for i in range(len(models))]
    tagged = [(runtime, item) for runtime in runtimes
              for item in zip(names, configs, models)]
    for (runtime, (name, (cfg, ckpt), model)), result in zip(tagged, measured):
        # memory is a property of the torch model: measured once, on its torch entry
        tracked = {path: _tracked(model, batch_size, hw, precision, memory_train,
                                  memory_optimizer, path, memory_budget_gb)
                   for path in attention} if runtime == 'torch' else {}
        lb = None
        if runtime == 'torch' and memory_budget_gb is not None:
            if dev.type != 'cuda' and 'fused' in tracked:
                lb = tracked['fused'].largest_batch  # the CPU's method: tracked, fused attention
            else:
                with alone(model, models, dev):  # only the searched model on the GPU
                    lb = largest_batch(model, memory_budget_gb, hw, dev, precision,
                                       train=memory_train, optimizer=memory_optimizer)
        entries.append(MeasuredModel(
            **vars(result), name=name, config=getattr(cfg, 'filename', None),
            config_sha256=config_sha256(cfg), checkpoint=ckpt, largest_batch=lb,
            model=ModelInfo.from_json(model_info(cfg, model), 'model'),
            tracked=tracked or None, runtime=runtime))
    git = git_commit()
    return BenchmarkRecord(
        run_id=f'{date.strftime("%Y%m%dT%H%M%SZ")}-{uuid.uuid4().hex[:8]}',
        date=date.isoformat(timespec='seconds'), hardware=env_info(),
        git=GitInfo(**git) if git else None, models=entries, settings=BenchmarkSettings(
            batch_size=batch_size, img_size=list(hw), img_size_source=size_source,
            device=str(dev), precision=precision, warmup=warmup, repeats=repeats, part=part,
            num_threads=torch.get_num_threads(), clock=clock, memory=memory,
            memory_train=memory_train, memory_budget_gb=memory_budget_gb,
            memory_method=MEMORY_METHODS[dev.type] if memory else None,
            memory_optimizer=memory_optimizer,
            tracked_method=f'{TRACKED_METHOD}, fake tensors' if attention else None))


def _tracked(model: Any, batch_size: int, hw: Tuple[int, int], precision: str, train: bool,
             optimizer: Optional[str], path: str, budget_gb: Optional[float]) -> TrackedMemory:
    """Tracked bytes of one step on attention ``path``, and the working load in the budget."""
    cpu_precision = 'bf16' if precision == 'fp16' else precision  # autocast's CPU type
    step = tracked_peak(model, batch_size, hw, cpu_precision, train, optimizer, path,
                        in_channels=_in_channels(model))
    lb = None if budget_gb is None else largest_batch(
        model, budget_gb, hw, 'cpu', cpu_precision, train, method='tracked',
        optimizer=optimizer, attention=path)
    return TrackedMemory(peak_bytes=step.peak_bytes, base_bytes=step.base_bytes,
                         attention_ops=step.attention_ops, largest_batch=lb)


_CPU = {'fp16': 'bf16 autocast', 'bf16': 'bf16 autocast'}


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
        for path, t in (entry.tracked or {}).items():
            load = '' if not t.largest_batch else \
                f', working load @ {s.memory_budget_gb:g} GiB {t.largest_batch.batch_size}' + \
                (' (capped)' if t.largest_batch.capped else '')
            lines.append(f'   tracked, {path} attention: peak {t.peak_bytes / 2**20:.1f} MiB '
                         f'(before the step {t.base_bytes / 2**20:.1f}){load}')
    step = ('train step' if s.memory_train else 'inference step') + \
        (f' with {s.memory_optimizer} state' if s.memory_optimizer else '')
    if s.memory_method:
        lines.append(f'peak memory ({step}): {s.memory_method}')
    if s.tracked_method:
        lines.append(f'tracked ({step}, {_CPU.get(s.precision, s.precision)} on CPU): '
                     f'{s.tracked_method}; blind to allocator rounding and caching, '
                     f'cuBLAS / cuDNN workspaces and kernel scratch buffers '
                     f'(benchmarks/README.md)')
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
        if r.tracked_largest_batch:
            paper = PAPER_WORKING_LOAD_GAIN.get(
                (entry.model.arch_name, tuple(sorted(entry.model.removed_layers))))
            if entry.model.arch_name != base.model.arch_name or base.model.removed_layers \
                    or entry.model.task != 'classification':
                paper = None  # the paper's figure: its classifier over the unpruned one
            lines.append(
                f'working load @ {s.memory_budget_gb:g} GiB {entry.name.upper()}/'
                f'{base.name.upper()} (tracked): ' + ', '.join(
                    f'{path} attention {v - 1:+.1%}' + (' (capped)' if any(
                        m.tracked[path].largest_batch.capped for m in (entry, base)) else '')
                    for path, v in r.tracked_largest_batch.items())
                + (f' (the paper: {paper:+.1f}% for DeiT-B 40%, on its GPUs)' if paper
                   else ''))
    return '\n'.join(lines)
