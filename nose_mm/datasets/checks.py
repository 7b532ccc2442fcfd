"""Datasets that fail with one line naming the folder or the files (docs/design.md)."""
import os
import os.path as osp
import re
from typing import Any, Optional

import cv2
from mmcv.transforms import LoadAnnotations
from mmengine.registry import DATASETS

from ..utils.cli import UserError

__all__ = ['DataError', 'BUILD_ERRORS', 'build_dataset', 'dataset_build_error',
           'check_dataset']

#: Exceptions of dataset classes that mean the data on disk is not as expected.
BUILD_ERRORS = (RuntimeError, OSError, ValueError, AssertionError)
#: Exceptions of a pipeline that mean a sample's files cannot be used (``cv2.error``:
#: OpenCV cannot decode the bytes, e.g. an empty file).
SAMPLE_ERRORS = (OSError, ValueError, AssertionError, cv2.error)


class DataError(UserError):
    """The data on disk cannot be used (names the folder or the files)."""


def _describe(cfg: Any) -> str:
    cfg = cfg if isinstance(cfg, dict) else {}
    root = cfg.get('data_root')
    if not root and isinstance(cfg.get('dataset'), dict):  # a wrapper (RepeatDataset...)
        return _describe(cfg['dataset'])
    what = str(cfg.get('type', 'the dataset'))
    if not root:
        return what
    empty = osp.isdir(root) and not any(files for _, _, files in os.walk(root))
    return f'{what} at data_root {str(root)!r}' + (' (a folder without any file)' if empty else '')


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message``, without object addresses."""
    text = str(exc).strip()
    text = re.sub(r' object at 0x[0-9a-fA-F]+', ' object', text.split('\n')[0])
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__


def dataset_build_error(cfg: Any, exc: BaseException) -> DataError:
    """The :class:`DataError` for ``exc`` raised while building dataset ``cfg``."""
    return DataError(f'cannot read {_describe(cfg)}: {_first_line(exc)}')


def check_dataset(dataset: Any, cfg: Any = None) -> Any:
    """Refuse an empty dataset; make its samples' load errors name their files.

    Args:
        dataset: The built dataset (wrappers included).
        cfg (dict, optional): Its config, named in the message. Defaults to None.

    Returns:
        ``dataset``, its pipelines wrapped in :class:`SampleErrorNaming`.
    """
    if len(dataset) == 0:
        raise DataError(f'{_describe(cfg or {})} holds no samples; put the data there in '
                        'the layout the dataset class reads, or set the data_root')
    _wrap_pipelines(dataset)
    return dataset


def build_dataset(cfg: dict) -> Any:
    """``DATASETS.build(cfg)`` with one-line errors (docs/design.md)."""
    try:
        dataset = DATASETS.build(cfg)
    except BUILD_ERRORS as exc:
        raise dataset_build_error(cfg, exc) from exc
    return check_dataset(dataset, cfg)


def _wrap_pipelines(dataset: Any) -> None:
    pipeline = getattr(dataset, 'pipeline', None)
    if pipeline is not None and not isinstance(pipeline, SampleErrorNaming):
        dataset.pipeline = SampleErrorNaming(pipeline)
    for sub in [getattr(dataset, 'dataset', None), *getattr(dataset, 'datasets', [])]:
        if sub is not None:
            _wrap_pipelines(sub)


def _check_seg_map_size(results: dict) -> dict:
    """Refuse an annotation whose size differs from its image's ``ori_shape``."""
    seg, img = results.get('gt_seg_map'), results.get('img')
    if seg is None or img is None:
        return results
    height, width = tuple(results.get('ori_shape') or img.shape)[:2]
    if tuple(seg.shape[:2]) != (height, width):
        raise DataError(
            f'annotation {results.get("seg_map_path")!r} is {seg.shape[0]}x{seg.shape[1]} '
            f'pixels but its image {results.get("img_path")!r} is '
            f'{height}x{width}; an annotation must have its image\'s size')
    return results


class SampleErrorNaming:
    """A dataset pipeline whose load errors name the sample's files (plus a size check)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        transforms: Optional[list] = getattr(pipeline, 'transforms', None)
        if isinstance(transforms, list):
            for i, transform in enumerate(transforms):
                if isinstance(transform, LoadAnnotations):
                    transforms.insert(i + 1, _check_seg_map_size)
                    break

    def __call__(self, results: dict) -> Any:
        files = [str(results[k]) for k in ('img_path', 'seg_map_path') if results.get(k)]
        try:
            return self.pipeline(results)
        except DataError:
            raise
        except SAMPLE_ERRORS as exc:
            empty = [f for f in files if osp.isfile(f) and osp.getsize(f) == 0]
            reason = (f'{empty[0]!r} is an empty file (0 bytes)' if empty else
                      'OpenCV cannot decode it as an image' if isinstance(exc, cv2.error)
                      else _first_line(exc))
            raise DataError(f'cannot load sample {", ".join(map(repr, files))}: '
                            f'{reason}') from exc

    def __repr__(self) -> str:
        return repr(self.pipeline)
