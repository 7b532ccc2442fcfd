"""A config (+ checkpoint) to a checked ONNX file with its preprocessing written down.

What ``tools/deploy/export.py`` does, in plain functions: build the measured module as
``tools/benchmark.py`` does (:func:`nose_mm.benchmark.info.build_model`), export it
(:func:`.onnx_export.export_onnx`), describe what a deployer must do before the graph
(:func:`preprocessing`), and compare onnxruntime with PyTorch once
(:func:`.onnx_export.check_onnx`). Usage: ``docs/deploy.md``.
"""
import contextlib
import datetime
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import onnx
import onnxruntime
import torch

from nose_mm.benchmark.env import git_commit
from nose_mm.benchmark.info import build_model, config_sha256, measure_size, model_info, task_of
from nose_mm.utils.fileio import atomic_write_json

from .onnx_export import (ATOL, OPSET, RTOL, CheckResult, ExportCheckError, check_onnx,
                          export_onnx, failure_message)

__all__ = ['SIDECAR_FORMAT', 'preprocessing', 'sidecar_path', 'example_inputs', 'describe',
           'ExportResult', 'export_config']

SIDECAR_FORMAT = 'nose_mm.deploy'


def _plain(value: Any) -> Any:
    """A config value as JSON-able data (ConfigDicts, tuples, types as their names)."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return getattr(value, '__name__', str(value))


def _test_pipeline(cfg: Any) -> Optional[List[Any]]:
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    dataset = loader.get('dataset') if hasattr(loader, 'get') else None
    pipeline = (dataset.get('pipeline') if hasattr(dataset, 'get') else None) \
        or cfg.get('test_pipeline')
    return _plain(pipeline) if pipeline else None


def preprocessing(cfg: Any, img_size: Tuple[int, int]) -> Dict[str, Any]:
    """What turns an image into the graph's input: the config's data preprocessor, in words.

    Args:
        cfg (Config): The loaded config.
        img_size (tuple[int, int]): ``(H, W)`` of the exported graph.

    Returns:
        dict: ``input`` (name, layout, dtype, shape), ``mean`` / ``std`` (per channel, on
        0-255 pixel values, in the channel order after ``channel_order``),
        ``channel_order`` (what to do with decoded BGR images), ``steps`` (in order), the
        config's ``data_preprocessor`` and ``test_pipeline`` as they are.
    """
    model_pre = cfg.model.get('data_preprocessor') if hasattr(cfg.model, 'get') else None
    pre = _plain(cfg.get('data_preprocessor') or model_pre or {})
    mean, std = pre.get('mean'), pre.get('std')
    to_rgb = bool(pre.get('to_rgb') or pre.get('bgr_to_rgb'))
    order = 'BGR -> RGB (images decoded by mmcv/OpenCV are BGR: reverse the channels)' \
        if to_rgb else 'as decoded (no channel swap)'
    h, w = img_size
    steps = [f'decode the image and resize / crop it to {h}x{w} as the test pipeline does',
             f'channel order: {order}',
             'HWC uint8 -> CHW float32, add the batch dimension',
             'subtract mean and divide by std per channel' if mean is not None else
             'no normalisation (the config has no mean / std)']
    return {'input': {'name': 'input', 'layout': 'NCHW', 'dtype': 'float32',
                      'shape': ['batch', int(cfg.model.backbone.get('in_channels', 3)), h, w]},
            'mean': mean, 'std': std, 'channel_order': 'bgr_to_rgb' if to_rgb else 'as_is',
            'steps': steps, 'data_preprocessor': pre, 'test_pipeline': _test_pipeline(cfg)}


def sidecar_path(onnx_path: str) -> str:
    """The JSON written beside an ONNX file: ``x.onnx`` -> ``x.json``."""
    stem, ext = osp.splitext(onnx_path)
    return (stem if ext.lower() == '.onnx' else onnx_path) + '.json'


def example_inputs(in_channels: int, img_size: Tuple[int, int], batch_size: int,
                   seed: int = 0) -> torch.Tensor:
    """A seeded random pre-processed batch (``N, C, H, W``)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, in_channels, *img_size, generator=gen)


def _output_text(task: str, part: str) -> str:
    if part == 'backbone':
        return 'the backbone\'s output (first tensor)'
    if task == 'segmentation':
        return 'decode-head logits (N, num_classes, h, w) at the head\'s resolution, before ' \
               'resizing to the image; argmax over dim 1 gives the classes'
    return 'class logits (N, num_classes), before softmax'


def describe(cfg: Any, model: torch.nn.Module, checkpoint: Optional[str],
             img_size: Tuple[int, int], part: str) -> Dict[str, Any]:
    """The metadata of an export: model, removed layers, preprocessing, output, provenance."""
    info = model_info(cfg, model)
    git = git_commit()
    return {
        'format': SIDECAR_FORMAT, 'version': 1, 'config': getattr(cfg, 'filename', None),
        'config_sha256': config_sha256(cfg), 'checkpoint': checkpoint, 'part': part,
        'model': info, 'removed_layers': info['removed_layers'],
        'token_merge': info['token_merge'], 'task': task_of(cfg),
        'output': _output_text(task_of(cfg), part), 'preprocessing': preprocessing(cfg, img_size),
        'exporter': {'torch': torch.__version__, 'onnx': onnx.__version__, 'opset': OPSET,
                     'tool': 'torch.onnx.export(dynamo=False)', 'dynamic_axes': ['batch']},
        'git': git, 'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds')}


@dataclass
class ExportResult:
    """What :func:`export_config` wrote and measured.

    Attributes:
        onnx (str), sidecar (str): The files written.
        nodes (dict): :func:`.onnx_export.attention_nodes` of the graph.
        check (CheckResult | None): The onnxruntime check (None: not run).
        metadata (dict): The description stored in both files.
    """

    onnx: str
    sidecar: str
    nodes: Dict[str, int]
    check: Optional[CheckResult]
    metadata: Dict[str, Any]


def export_config(cfg: Any, checkpoint: Optional[str], out: str, part: str = 'model',
                  img_size: Optional[Sequence[int]] = None, export_batch: int = 2,
                  check_batch: int = 3, check: bool = True, atol: float = ATOL,
                  rtol: float = RTOL, seed: int = 0) -> ExportResult:
    """Build a config's model, export it to ``out`` and check it in onnxruntime.

    Args:
        cfg (Config): The loaded config.
        checkpoint (str, optional): Weights (random ones without). Defaults to None.
        out (str): The ``.onnx`` file; the description also goes to :func:`sidecar_path`.
        part (str): ``'model'`` or ``'backbone'``. Defaults to ``'model'``.
        img_size (sequence of int, optional): ``(H, W)``; default: the size
            ``tools/benchmark.py`` measures (:func:`~nose_mm.benchmark.info.measure_size`).
        export_batch (int): Batch of the traced example. Defaults to 2.
        check_batch (int): Batch of the check, another one to test the dynamic batch.
            Defaults to 3.
        check (bool): Run the check. Defaults to True.
        atol, rtol (float): Tolerances of :func:`.onnx_export.check_onnx`.
        seed (int): Seed of the random input batches. Defaults to 0.

    Returns:
        ExportResult: The files, node counts and the check.

    Raises:
        ExportCheckError: The check failed (the largest difference is named) or could
            not compare anything; ``out`` is left as it was, the failed export and its
            JSON (recording the failed check) are written beside it as
            ``<out>.check-failed.onnx`` / ``.json``, for inspection.
        ValueError: Bad sizes.
    """
    for name, value in (('export_batch', export_batch), ('check_batch', check_batch)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
    hw = tuple(img_size) if img_size else measure_size(cfg)[0]
    model = build_model(cfg, checkpoint, part=part)
    channels = int(getattr(model, 'in_channels', 3))
    metadata = describe(cfg, model, checkpoint, hw, part)
    metadata['check'] = {'atol': atol, 'rtol': rtol, 'rule': 'max |onnxruntime - torch| <= '
                         'atol + rtol * max |torch|', 'runtime': 'onnxruntime '
                         + onnxruntime.__version__, 'batch': check_batch}
    # checked under another name: a file that fails never replaces ``out`` (nor a good
    # export already there), it stays beside it as ``*.check-failed.onnx``
    stem, ext = osp.splitext(out)
    trial = f'{stem}.checking{ext}' if check else out
    nodes = export_onnx(model, trial, example_inputs(channels, hw, export_batch, seed),
                        metadata)
    metadata['graph'] = nodes
    result, error = None, None
    if check:
        failed = f'{stem}.check-failed{ext}'
        try:
            result = check_onnx(trial, model, example_inputs(channels, hw, check_batch,
                                                             seed + 1),
                                atol, rtol, raise_on_fail=False)
        except ExportCheckError as exc:  # a check that could not run: recorded, then raised
            error = ExportCheckError(str(exc).replace(trial, failed))
            metadata['check']['error'] = str(error)
        except BaseException:  # no half-checked file left behind
            with contextlib.suppress(OSError):
                os.remove(trial)
            raise
        else:
            metadata['check'].update(asdict(result))
            if not result.ok:
                error = ExportCheckError(failure_message(failed, result, atol, rtol))
        if error is not None:
            os.replace(trial, failed)
            atomic_write_json(sidecar_path(failed), metadata)
            raise ExportCheckError(f'{error}; {out!r} was not written (left as it was), the '
                                   f'failed export is {failed!r} with {sidecar_path(failed)!r}')
        os.replace(trial, out)
    else:
        metadata['check'] = None
    sidecar = sidecar_path(out)
    atomic_write_json(sidecar, metadata)
    return ExportResult(onnx=out, sidecar=sidecar, nodes=nodes, check=result,
                        metadata=metadata)
