"""``results.json`` (one per train / test run) and its merge with ``benchmark.json``.

:class:`~nose_mm.engine.hooks.ResultsHook` writes ``results.json``,
``tools/benchmark.py --out`` writes ``benchmark.json``; :func:`load_run` merges
the matching benchmark entry when the leaderboard reads a run, rewriting neither
(rules: ``benchmarks/README.md``, "Merging benchmark.json into the leaderboard").
"""
import datetime
import json
import math
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseTTAModel
from mmpretrain.utils import get_ori_model

from .env import env_info, git_commit
from .flops import count_flops as _count_flops
from .flops import count_params
from .info import (BENCHMARK_FILE, TASKS, TensorForward, config_sha256, dataset_name,
                   default_img_size, in_channels, model_info)
from .seeds import config_seed, config_sha256_noseed

__all__ = [
    'RESULTS_FORMAT', 'BENCHMARK_FORMAT', 'FORMAT_VERSION', 'METRIC_KEYS', 'MAIN_METRIC',
    'normalize_metrics', 'build_results', 'validate_results', 'load_json', 'match_benchmark',
    'load_run'
]

RESULTS_FORMAT = 'nose_mm.results'
BENCHMARK_FORMAT = 'nose_mm.benchmark'
FORMAT_VERSION = 1
#: Normalised metric names per task (percentages, as the evaluators report them).
METRIC_KEYS = {
    'classification': ('top1', 'top5'),
    'segmentation': ('mIoU', 'mIoU_ms_flip', 'mAcc', 'aAcc'),
}
#: The metric tables are sorted by.
MAIN_METRIC = {'classification': 'top1', 'segmentation': 'mIoU'}


def _number(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def normalize_metrics(metrics: Dict[str, Any], task: str, tta: bool = False) -> Dict[str, float]:
    """Map evaluator keys to the leaderboard's names.

    Classification: ``accuracy/top1`` -> ``top1``, ``accuracy/top5`` ->
    ``top5`` (any ``<prefix>/topK``). Segmentation: ``mIoU``, ``mAcc``,
    ``aAcc`` (mmseg's ``IoUMetric``); with ``tta=True`` (multi-scale + flip
    test) ``mIoU`` is stored as ``mIoU_ms_flip``.

    Args:
        metrics (dict): The evaluator's output.
        task (str): ``'classification'`` or ``'segmentation'``.
        tta (bool): The metrics come from test-time augmentation. Defaults
            to False.

    Returns:
        dict: Normalised name -> float (non-numeric values dropped).
    """
    if task not in TASKS:
        raise ValueError(f'task must be one of {", ".join(TASKS)}, got {task!r}')
    out: Dict[str, float] = {}
    for key, value in metrics.items():
        number = _number(value)
        if number is None:
            continue
        leaf = str(key).rsplit('/', 1)[-1]
        if task == 'classification' and leaf in ('top1', 'top5'):
            out[leaf] = number
        elif task == 'segmentation' and leaf in ('mIoU', 'mAcc', 'aAcc'):
            out['mIoU_ms_flip' if (tta and leaf == 'mIoU') else leaf] = number
    return out


def _is_tta(model: Optional[torch.nn.Module]) -> bool:
    return model is not None and isinstance(get_ori_model(model), BaseTTAModel)


def _measured_model(model: torch.nn.Module) -> torch.nn.Module:
    model = get_ori_model(model)
    if isinstance(model, BaseTTAModel):
        model = model.module
    return model


def build_results(cfg: Any, model: Optional[torch.nn.Module], metrics: Dict[str, Any],
                  mode: str, checkpoint: Optional[str] = None,
                  best_checkpoint: Optional[str] = None, epoch: Optional[int] = None,
                  iteration: Optional[int] = None,
                  history: Optional[Sequence[Dict[str, Any]]] = None,
                  count_flops: bool = True,
                  flops_img_size: Optional[Sequence[int]] = None,
                  failure: Optional[str] = None) -> Dict[str, Any]:
    """The content of ``results.json`` for one run.

    Args:
        cfg (Config): The run's config (``runner.cfg``).
        model (torch.nn.Module, optional): The run's model (wrappers are
            unwrapped); params and FLOPs are counted on it. Defaults to None
            (no counts).
        metrics (dict): The evaluator's last metrics (raw keys).
        mode (str): ``'train'``, ``'val'`` or ``'test'``.
        checkpoint (str, optional): Last checkpoint written (train) or the
            one evaluated (test). Defaults to None.
        best_checkpoint (str, optional): Best checkpoint, if kept.
            Defaults to None.
        epoch (int, optional): Epoch of the metrics. Defaults to None.
        iteration (int, optional): Iteration of the metrics. Defaults to None.
        history (sequence of dict, optional): Earlier evaluations
            (``{'epoch', 'iter', 'metrics'}``). Defaults to None.
        count_flops (bool): Count FLOPs (one trace of the model in eval mode,
            at ``flops_img_size``). Defaults to True.
        flops_img_size (sequence of int, optional): ``(H, W)`` for FLOPs.
            Defaults to :func:`~nose_mm.benchmark.info.default_img_size`.
        failure (str, optional): Why the run failed (e.g. training
            diverged): ``status`` is then ``'failed'`` with this ``error``,
            and no reader ranks it. Defaults to None (``status`` ``'ok'``).

    Returns:
        dict: See the module docstring and ``benchmarks/README.md``. FLOP or
        parameter counting errors are recorded in ``errors``, never raised.
    """
    info = model_info(cfg, model)
    task = info['task']
    tta = _is_tta(model)
    errors: Dict[str, str] = {}
    params = backbone_params = flops = None
    hw = tuple(flops_img_size) if flops_img_size else default_img_size(cfg)
    if model is not None:
        inner = _measured_model(model)
        try:
            params = count_params(inner)
            if getattr(inner, 'backbone', None) is not None:
                backbone_params = count_params(inner.backbone)
        except Exception as exc:  # noqa: BLE001 - recorded, the run has succeeded
            errors['params'] = f'{type(exc).__name__}: {exc}'
        if count_flops:
            try:
                flops = _count_flops(TensorForward(inner), (in_channels(cfg), ) + tuple(hw))
            except Exception as exc:  # noqa: BLE001
                errors['flops'] = f'{type(exc).__name__}: {exc}'
    filename = getattr(cfg, 'filename', None)
    git = git_commit()
    return {
        'format': RESULTS_FORMAT,
        'version': FORMAT_VERSION,
        'task': task,
        'mode': mode,
        'status': 'failed' if failure else 'ok',
        'error': failure,
        'dataset': dataset_name(cfg, 'test' if mode == 'test' else 'val'),
        'model': info,
        'removed_layers': info['removed_layers'],
        'diluted_layers': info['diluted_layers'],
        'metrics': normalize_metrics(metrics or {}, task, tta=tta),
        'raw_metrics': {str(k): v for k, v in (metrics or {}).items()
                        if _number(v) is not None},
        'tta': tta,
        'epoch': epoch,
        'iter': iteration,
        'history': list(history or []),
        'params': params,
        'backbone_params': backbone_params,
        'flops': flops,
        'flops_input': [in_channels(cfg), *hw],
        'flops_unit': 'multiply-accumulates per image (GFLOPs of the model zoos)',
        'config': osp.abspath(filename) if filename else None,
        'config_sha256': config_sha256(cfg),
        'config_sha256_noseed': config_sha256_noseed(cfg),
        'seed': config_seed(cfg),
        'checkpoint': osp.abspath(checkpoint) if checkpoint and '://' not in checkpoint
        else checkpoint,
        'best_checkpoint': best_checkpoint,
        'work_dir': osp.abspath(cfg.get('work_dir')) if cfg.get('work_dir') else None,
        'git_commit': git['commit'] if git else None,
        'git': git,
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'hardware': env_info(),
        'errors': errors,
    }


def load_json(path: str) -> Tuple[Optional[Any], Optional[str]]:
    """``(data, None)`` or ``(None, what is wrong)`` for a JSON file."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f), None
    except OSError as exc:
        return None, f'cannot be read ({exc.strerror or exc})'
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f'is not valid JSON ({exc})'


def validate_results(data: Any) -> List[str]:
    """What is wrong with a ``results.json`` content (empty list: usable).

    Required: ``format`` == ``'nose_mm.results'``, ``status`` ``'ok'``
    (absent in files written before it existed), ``task`` in
    :data:`~nose_mm.benchmark.info.TASKS`, a ``dataset`` string, a ``model``
    dict and a ``metrics`` dict holding at least one numeric metric of the
    task. ``params`` / ``flops``, if present, must be numbers (or null);
    ``removed_layers`` / ``diluted_layers`` lists of ints; ``date`` a string.
    (A malformed ``seed`` leaves the run usable, on its own row: see
    :mod:`nose_mm.benchmark.seeds`.)
    """
    if not isinstance(data, dict):
        return [f'top level is a {type(data).__name__}, expected an object']
    problems = []
    if data.get('format') != RESULTS_FORMAT:
        problems.append(f'"format" is {data.get("format")!r}, expected {RESULTS_FORMAT!r} '
                        f'(not written by nose_mm\'s ResultsHook)')
    if data.get('status', 'ok') != 'ok':  # what else is missing follows from it
        return [f'"status" is {data.get("status")!r} ({data.get("error")}): a failed run is '
                f'not ranked']
    task = data.get('task')
    if task not in TASKS:
        problems.append(f'"task" is {task!r}, expected one of {", ".join(TASKS)}')
    if not isinstance(data.get('dataset'), str) or not data.get('dataset'):
        problems.append('"dataset" is missing or not a string')
    if not isinstance(data.get('model'), dict):
        problems.append('"model" is missing or not an object')
    metrics = data.get('metrics')
    if not isinstance(metrics, dict):
        problems.append('"metrics" is missing or not an object')
    elif task in TASKS and not any(
            _number(metrics.get(k)) is not None for k in METRIC_KEYS[task]):
        problems.append(f'"metrics" holds none of {", ".join(METRIC_KEYS[task])} (partial '
                        f'results: the run ended before any evaluation?)')
    for key in ('params', 'flops'):
        if data.get(key) is not None and _number(data.get(key)) is None:
            problems.append(f'"{key}" is {data.get(key)!r}, expected a number')
    for key in ('removed_layers', 'diluted_layers'):
        layers = data.get(key) or []
        if not (isinstance(layers, list) and all(isinstance(i, int) for i in layers)):
            problems.append(f'"{key}" is {layers!r}, expected a list of integers')
    if data.get('date') is not None and not isinstance(data.get('date'), str):
        problems.append(f'"date" is {data.get("date")!r}, expected an ISO date string')
    return problems


def _model_key(info: Dict[str, Any]) -> Tuple[Any, ...]:
    """What must agree between a run and a measurement: task, arch, removed layers, merging."""
    merge = info.get('token_merge')
    return (info.get('task'), info.get('arch_name'),
            tuple(sorted(info.get('removed_layers') or [])),
            json.dumps(merge, sort_keys=True) if merge is not None else None)


def match_benchmark(results: Dict[str, Any],
                    benchmark: Any) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """Pick the ``benchmark.json`` entry measuring the run's model.

    Args:
        results (dict): A valid ``results.json`` content.
        benchmark (Any): A ``benchmark.json`` content.

    Returns:
        tuple: ``(entry, None)`` with the entry (its ``throughput``,
        ``peak_memory_bytes``, ``memory_method``...), or ``(None, reason)``.
    """
    if not isinstance(benchmark, dict) or benchmark.get('format') != BENCHMARK_FORMAT:
        return None, f'"format" is not {BENCHMARK_FORMAT!r}'
    models = benchmark.get('models')
    if not isinstance(models, list) or not models:
        return None, 'has no "models" list'
    run_info = dict(results.get('model') or {})
    run_info.setdefault('task', results.get('task'))
    run_info['removed_layers'] = results.get('removed_layers', run_info.get('removed_layers'))
    want = _model_key(run_info)
    seen = []
    for entry in models:
        info = entry.get('model') if isinstance(entry, dict) else None
        if not isinstance(info, dict):
            continue
        key = _model_key(info)
        seen.append(key)
        throughput = entry.get('throughput')
        if key == want and isinstance(throughput, dict) and \
                _number(throughput.get('img_per_s')) is not None:
            return entry, None
    return None, (f'measures {", ".join(map(str, seen)) or "no described model"}, not the '
                  f'run\'s model {want} (task, arch, removed layers, token merging)')


def load_run(path: str) -> Tuple[Optional[Dict[str, Any]], List[str]]:
    """Read one ``results.json`` and merge the ``benchmark.json`` beside it.

    Args:
        path (str): The ``results.json`` file.

    Returns:
        tuple: ``(results or None, problems)``. ``results`` is None when the
        file is unusable (the problems say why); otherwise it may carry a
        ``benchmark`` entry (see :func:`match_benchmark`) and the problems
        are about the benchmark file only. Nothing is written.
    """
    data, error = load_json(path)
    if error:
        return None, [f'{path}: {error}']
    problems = validate_results(data)
    if problems:
        return None, [f'{path}: {p}' for p in problems]
    bench_path = osp.join(osp.dirname(path), BENCHMARK_FILE)
    notes: List[str] = []
    if osp.exists(bench_path):
        bench, error = load_json(bench_path)
        entry, reason = (None, error) if error else match_benchmark(data, bench)
        if entry is None:
            notes.append(f'{bench_path}: not merged: {reason}')
        else:
            data['benchmark'] = dict(entry, file=bench_path,
                                     memory_method=entry.get('memory_method',
                                                             bench.get('memory_method')))
    return data, notes
