"""What a config's model is (task, dataset, arch, layers, input size) and building it to measure.

Shared by ``ResultsHook``, ``tools/benchmark.py`` and the leaderboard (``benchmarks/README.md``).
"""
import hashlib
import json
import os.path as osp
from typing import Any, Dict, Optional, Tuple

import torch
from mmpretrain.utils import get_ori_model

from nose_mm.models.builder import build_model_from_cfg
from nose_mm.models.dilution import find_dilutable_modules
from nose_mm.models.family import families, family_of_type
from nose_mm.models.backbones.token_merge_mixin import TokenMergeMixin
from nose_mm.models.token_merge import parse_token_merge

__all__ = [
    'TASKS', 'PARTS', 'RESULTS_FILE', 'BENCHMARK_FILE', 'dataset_name', 'arch_name',
    'display_name', 'model_info', 'selected_on', 'measure_size', 'in_channels', 'config_sha256',
    'build_model', 'TensorForward'
]

TASKS = ('classification', 'segmentation')
#: What :func:`build_model` measures: the whole model or its backbone.
PARTS = ('model', 'backbone')
RESULTS_FILE = 'results.json'
BENCHMARK_FILE = 'benchmark.json'

#: Dataset classes -> the names the leaderboard (and the model zoos) use.
DATASET_NAMES = {
    'ImageNet': 'ImageNet-1k', 'ImageNet21k': 'ImageNet-21k', 'CIFAR100': 'CIFAR-100',
    'NoseCIFAR100': 'CIFAR-100', 'CIFAR10': 'CIFAR-10', 'ADE20KDataset': 'ADE20k',
    'CityscapesDataset': 'Cityscapes', 'PascalVOCDataset': 'Pascal VOC 2012'
}
#: ``arch`` names -> display names, of every registered family (``'deit-base'``: ``'DeiT-B'``).
ARCH_NAMES = {k: v for family in families() for k, v in family.arch_names.items()}
_ARCH_KEYS = (('embed_dims', 'd'), ('num_layers', 'L'), ('num_heads', 'h'),
              ('feedforward_channels', 'ffn'))
_SEG_MODEL_TYPES = ('EncoderDecoder', 'CascadeEncoderDecoder', 'SegTTAModel')


def _get(node: Any, key: str, default: Any = None) -> Any:
    return node.get(key, default) if isinstance(node, dict) else getattr(node, key, default)


def _model_cfgs(cfg: Any) -> Tuple[Any, Any]:
    """The config's ``model`` and ``model.backbone`` (``{}`` when absent)."""
    model = _get(cfg, 'model') or {}
    return model, _get(model, 'backbone') or {}


def _short_type(type_name: Any) -> Optional[str]:
    """``'mmpretrain.VisionTransformer'`` -> ``'VisionTransformer'``."""
    if type_name is not None and not isinstance(type_name, str):
        type_name = getattr(type_name, '__name__', str(type_name))
    return None if type_name is None else type_name.rsplit('.', 1)[-1]


def task_of(cfg: Any) -> str:
    """``'segmentation'`` (a ``decode_head`` or an mmseg segmentor), else ``'classification'``."""
    model = _model_cfgs(cfg)[0]
    seg = _get(model, 'decode_head') is not None or \
        _short_type(_get(model, 'type')) in _SEG_MODEL_TYPES
    return 'segmentation' if seg else 'classification'


def _dataset_cfg(cfg: Any, split: str) -> Optional[dict]:
    loader = _get(cfg, f'{split}_dataloader')
    dataset = _get(loader, 'dataset') if loader else None
    while isinstance(dataset, dict) and _get(dataset, 'type') in (
            'RepeatDataset', 'ClassBalancedDataset', 'ConcatDataset', 'KFoldDataset'):
        inner = _get(dataset, 'dataset') or (_get(dataset, 'datasets') or [None])[0]
        if inner is None:
            break
        dataset = inner
    return dataset


def dataset_name(cfg: Any, split: str = 'test') -> Optional[str]:
    """The evaluation dataset's display name (``'ImageNet-1k'``, ``'ADE20k'``...).

    Args:
        cfg (Config | dict): A loaded config.
        split (str): ``'test'``, ``'val'`` or ``'train'`` (then val, train). Defaults to ``'test'``.

    Returns:
        str | None: :data:`DATASET_NAMES` of the class, else its name; None without a loader.
    """
    for name in dict.fromkeys((split, 'val', 'train')):
        dataset = _dataset_cfg(cfg, name)
        if dataset is None:
            continue
        ds_type = _short_type(_get(dataset, 'type'))
        if ds_type == 'CustomDataset':
            root = str(_get(dataset, 'data_root') or '').rstrip('/')
            return f'CustomDataset({osp.basename(root)})' if root else 'CustomDataset'
        return DATASET_NAMES.get(ds_type, ds_type)
    return None


def arch_name(arch: Any, backbone: Optional[str] = None) -> str:
    """A short name for a backbone ``arch``: a preset or ``custom(d32,L4,h2,ffn64)``.

    Args:
        arch (str | dict | None): The backbone config's ``arch``.
        backbone (str, optional): The backbone class (its family's prefix). Defaults to None.

    Returns:
        str: The name.
    """
    if arch is None:
        name = 'default'
    elif isinstance(arch, str):
        name = arch.lower()
    elif isinstance(arch, dict):
        parts = [f'{short}{arch[key]}' for key, short in _ARCH_KEYS if key in arch]
        others = sorted(k for k in arch if k not in dict(_ARCH_KEYS))
        parts += [f'{k}={arch[k]}' for k in others]
        name = f'custom({",".join(parts)})'
    else:
        name = str(arch)
    family = family_of_type(backbone)
    return family.arch_name(name) if family else name


def display_name(name: str, backbone: Optional[str] = None) -> str:
    """The display name of an :func:`arch_name` (``'DeiT-B'``...); unknown names as they are.

    Args:
        name (str): An :func:`arch_name`.
        backbone (str, optional): The backbone class (its family's table). Defaults to None.

    Returns:
        str: The display name.
    """
    family = family_of_type(backbone)
    return family.display_name(name) if family is not None else ARCH_NAMES.get(name, name)


def _token_merge(backbone_cfg: Any, model: Optional[torch.nn.Module]) -> Optional[Dict]:
    """The built model's (else the config's) ``token_merge`` as a plain dict (None: no merging)."""
    settings, option = None, _get(backbone_cfg, 'token_merge')
    merging = [m for m in (model.modules() if model is not None else ())
               if isinstance(m, TokenMergeMixin)]
    if merging:  # the built backbone's option
        settings = merging[0].token_merge
    elif option is not None:
        settings = parse_token_merge(option.to_dict() if hasattr(option, 'to_dict') else option)
    if settings is None:
        return None
    r = settings.r if isinstance(settings.r, int) else list(settings.r)
    return {'r': r, 'start': settings.start, 'prop_attn': settings.prop_attn}


def model_info(cfg: Any, model: Optional[torch.nn.Module] = None) -> Dict[str, Any]:
    """Describe the model of a config (and, if given, the built model).

    Args:
        cfg (Config | dict): A loaded config.
        model (torch.nn.Module, optional): The built model (its layers win). Defaults to None.

    Returns:
        dict: The fields of :class:`~nose_mm.benchmark.records.ModelInfo`.
    """
    model_cfg, backbone = _model_cfgs(cfg)
    arch = _get(backbone, 'arch')
    if hasattr(arch, 'to_dict'):
        arch = arch.to_dict()
    elif isinstance(arch, dict):
        arch = dict(arch)
    backbone_type = _short_type(_get(backbone, 'type'))
    name = arch_name(arch, backbone_type)
    head = _get(model_cfg, 'decode_head') or _get(model_cfg, 'head')
    neck = _get(model_cfg, 'neck')
    removed = _get(backbone, 'removed_layers') or []
    diluted, lam = _get(backbone, 'diluted_layers') or [], None
    found = find_dilutable_modules(get_ori_model(model)) if model is not None else []
    if found:  # the layers a hook may have chosen during the run
        removed, diluted = found[0].removed_layers, found[0].diluted_layers
        lam = float(found[0].get_dilution_lam())
    return {
        'task': task_of(cfg), 'type': _short_type(_get(model_cfg, 'type')),
        'backbone': backbone_type, 'arch': arch, 'arch_name': name,
        'display': display_name(name, backbone_type),
        'neck': _short_type(_get(neck, 'type')) if isinstance(neck, dict) else None,
        'head': _short_type(_get(head, 'type')) if isinstance(head, dict) else None,
        'removed_layers': sorted(int(i) for i in removed),
        'diluted_layers': sorted(int(i) for i in diluted),
        'dilution_lam': lam, 'token_merge': _token_merge(backbone, model),
        'selected_on': selected_on(cfg),
    }


def selected_on(cfg: Any) -> Optional[str]:
    """The config's ``selected_on``: how its layer set was chosen (e.g. ``'transferred'``,
    ``'dense (pre-trained backbone)'``, ``'seg_logits (trained segmentor)'``), or None.

    Raises:
        ValueError: Not a non-empty string.
    """
    value = _get(cfg, 'selected_on')
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise ValueError(f'selected_on must be a non-empty string (how the layer set was '
                         f'chosen), got {value!r}')
    return value


def _pair(value: Any) -> Optional[Tuple[int, int]]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    return None


def _fixed_test_resize(cfg: Any) -> Optional[Tuple[int, int]]:
    """``(H, W)`` of a test pipeline ``Resize`` to a fixed size (``keep_ratio=False``)."""
    pipeline = _get(_dataset_cfg(cfg, 'test') or {}, 'pipeline') or _get(cfg, 'test_pipeline')
    for step in pipeline or []:
        if _short_type(_get(step, 'type')) == 'Resize' and not _get(step, 'keep_ratio', False):
            size = _pair(_get(step, 'scale'))
            if size:
                return (size[1], size[0])  # mmcv's scale is (width, height)
    return None


def measure_size(cfg: Any) -> Tuple[Tuple[int, int], str]:
    """The ``(H, W)`` a config's model is measured at (rules: ``benchmarks/README.md``).

    Segmentation: the slide window, a fixed test ``Resize``, the crop, the backbone's
    ``img_size``, else 512. Classification: the backbone's ``img_size``, else 224.

    Args:
        cfg (Config | dict): A loaded config.

    Returns:
        tuple: ``((H, W), source)``, ``source`` naming the config key used.
    """
    model_cfg, backbone = _model_cfgs(cfg)
    if task_of(cfg) == 'segmentation':
        test_cfg = _get(model_cfg, 'test_cfg') or {}
        candidates = [
            (_get(test_cfg, 'crop_size') if _get(test_cfg, 'mode') == 'slide' else None,
             'model.test_cfg.crop_size (slide inference: one window)'),
            (_fixed_test_resize(cfg), 'test pipeline Resize scale'),
            (_get(_get(model_cfg, 'data_preprocessor') or {}, 'size'),
             'model.data_preprocessor.size (the crop)'),
            (_get(cfg, 'crop_size'), 'crop_size'),
            (_get(backbone, 'img_size'), 'model.backbone.img_size'),
        ]
        default = (512, 512)
    else:
        candidates = [(_get(backbone, 'img_size'), 'model.backbone.img_size')]
        default = (224, 224)
    for value, source in candidates:
        size = _pair(value)
        if size:
            return size, source
    return default, f'default {default[0]}x{default[1]}'


def in_channels(cfg: Any) -> int:
    """Input channels of the config's backbone (3 unless it says otherwise)."""
    return int(_get(_model_cfgs(cfg)[1], 'in_channels', 3) or 3)


def config_sha256(cfg: Any) -> Optional[str]:
    """sha256 (hex) of ``Config.dump()`` (as the Runner saves it), else of its sorted JSON.

    Returns None for objects that are neither.
    """
    text = None
    try:
        text = cfg.dump()
    except Exception:  # noqa: BLE001 - fall back to a stable JSON form
        try:
            data = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
            text = json.dumps(data, sort_keys=True, default=str)
        except Exception:  # noqa: BLE001
            return None
    if not isinstance(text, str):
        return None
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


class TensorForward(torch.nn.Module):
    """Call an OpenMMLab model (``mode='tensor'``) or its backbone as ``module(x)`` on a tensor.

    What each part covers: ``benchmarks/README.md``, "Conventions".

    Args:
        model (torch.nn.Module): An mmengine ``BaseModel`` (or any module called as ``model(x)``).
        part (str): ``'model'`` or ``'backbone'``. Defaults to ``'model'``.

    Raises:
        ValueError: Another ``part``, or ``'backbone'`` of a model without one.
    """

    def __init__(self, model: torch.nn.Module, part: str = 'model') -> None:
        super().__init__()
        if part not in PARTS:
            raise ValueError(f'part must be one of {", ".join(PARTS)}, got {part!r}')
        if part == 'backbone' and getattr(model, 'backbone', None) is None:
            raise ValueError(f'part="backbone" needs a model with a backbone, got '
                             f'{type(model).__name__}')
        from mmengine.model import BaseModel
        self.in_channels = 3
        self.module = model.backbone if part == 'backbone' else model
        self._tensor_mode = part == 'model' and isinstance(model, BaseModel)

    def forward(self, x: torch.Tensor) -> Any:
        """Run the measured part on a pre-processed batch."""
        if self._tensor_mode:
            return self.module(x, mode='tensor')
        return self.module(x)


def build_model(cfg: Any, checkpoint: Optional[str] = None, part: str = 'model',
                device: str = 'cpu') -> TensorForward:
    """Build a config's model (random weights without ``checkpoint``) for measuring.

    Args:
        cfg (Config): A loaded config.
        checkpoint (str, optional): Weights to load. Defaults to None.
        part (str): ``'model'`` or ``'backbone'`` (:class:`TensorForward`). Defaults to ``'model'``.
        device (str): Where to put the model. Defaults to ``'cpu'``.

    Returns:
        TensorForward: The model in eval mode, called as ``model(x)``.

    Raises:
        ValueError: An unknown ``part``.
    """
    wrapped = TensorForward(build_model_from_cfg(cfg, checkpoint), part)
    wrapped.in_channels = in_channels(cfg)
    return wrapped.to(device).eval()
