"""Model and calibration-data loading for selection and the analysis tools (docs/design.md)."""
import copy
import os.path as osp
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch
from mmpretrain.utils import get_ori_model
from torch.utils.data import DataLoader, Subset

from nose_mm.datasets.checks import build_dataset
from nose_mm.models.builder import build_model_from_cfg
from nose_mm.utils.config import check_data_roots, iter_datasets, load_config
from nose_mm.checkpoint.reader import add_trust_checkpoint_arg, apply_trust_checkpoint

from .greedy import check_choice
from .settings import SPLITS, add_setting_arg

__all__ = ['SPLITS', 'check_calibration_data', 'calibration_dataset_cfg',
           'build_calibration_dataset', 'calibration_indices', 'build_calibration_loader',
           'collect_batches', 'prepare_calibration', 'add_calibration_args', 'load_calibration']


def _split_dataset(cfg: Any, split: str) -> Any:
    """``cfg.<split>_dataloader.dataset``; raises ValueError if the config has none."""
    check_choice('split', split, SPLITS)
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not loader.get('dataset'):
        raise ValueError(f'the config has no {split}_dataloader.dataset to calibrate on')
    dataset = copy.deepcopy(loader['dataset'])
    return dataset.to_dict() if hasattr(dataset, 'to_dict') else dict(dataset)


def check_calibration_data(cfg: Any, split: str = 'train') -> None:
    """Check, before anything is built, that the config has the split's dataset on disk.

    Args:
        cfg (mmengine.Config): The config.
        split (str): One of :data:`SPLITS`. Defaults to ``'train'``.

    Raises:
        ValueError: An unknown split, or no ``<split>_dataloader.dataset``.
        UserError: Its ``data_root`` folder does not exist.
    """
    _split_dataset(cfg, split)
    check_data_roots(cfg, [f'{split}_dataloader'])


def calibration_dataset_cfg(cfg: Any, split: str = 'train') -> dict:
    """The calibration dataset config of ``split`` (docs/design.md).

    Args:
        cfg (mmengine.Config): A config with ``<split>_dataloader``.
        split (str): ``'train'`` (test pipeline) or ``'val'``. Defaults to ``'train'``.

    Returns:
        dict: A copy of the split's dataset config.

    Raises:
        ValueError: An unknown split, no dataset for it, or (``'train'``) no test/val pipeline.
    """
    dataset = _split_dataset(cfg, split)
    if split == 'val':
        return dataset
    found = [node['pipeline'] for key in ('test_dataloader', 'val_dataloader')
             for _, node in iter_datasets(cfg.get(key), key) if node.get('pipeline') is not None]
    pipeline = found[0] if found else cfg.get('test_pipeline') or cfg.get('val_pipeline')
    if pipeline is None:
        raise ValueError('the config has no test or val pipeline (test_dataloader, '
                         'val_dataloader, test_pipeline or val_pipeline) to apply to the '
                         'calibration images')
    for _, node in iter_datasets(dataset, 'dataset'):
        if 'pipeline' in node:
            node['pipeline'] = copy.deepcopy(list(pipeline))
    return dataset


def build_calibration_dataset(cfg: Any, split: str = 'train') -> torch.utils.data.Dataset:
    """Build :func:`calibration_dataset_cfg` of ``split`` in the config's default scope."""
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return build_dataset(calibration_dataset_cfg(cfg, split))


def calibration_indices(length: int, num_samples: int, seed: int = 0) -> List[int]:
    """``num_samples`` distinct indices of ``range(length)``, seeded, ascending.

    Args:
        length (int): Dataset size.
        num_samples (int): How many to draw; all of them if equal to ``length``.
        seed (int): Seed of :func:`numpy.random.default_rng`. Defaults to 0.

    Returns:
        list[int]: Sorted indices.

    Raises:
        ValueError: If ``num_samples`` < 2 or > ``length``.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) \
            or num_samples < 2:
        raise ValueError(f'num_samples must be an int >= 2 (entropy needs a spread), got '
                         f'{num_samples!r}')
    if num_samples > length:
        raise ValueError(f'num_samples={num_samples} is larger than the calibration dataset '
                         f'({length} images)')
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(length, size=num_samples, replace=False))


def build_calibration_loader(dataset: torch.utils.data.Dataset, num_samples: int,
                             batch_size: int = 32, seed: int = 0,
                             num_workers: int = 0) -> DataLoader:
    """A deterministic loader over a seeded subset of ``dataset``.

    Args:
        dataset (Dataset): The calibration dataset (test pipeline).
        num_samples (int): Number of images ``N``.
        batch_size (int): Images per batch. Defaults to 32.
        seed (int): Subset seed. Defaults to 0.
        num_workers (int): Loader workers. Defaults to 0.

    Returns:
        DataLoader: Unshuffled, ``pseudo_collate`` batches.

    Raises:
        ValueError: On a bad ``num_samples`` or ``batch_size``.
    """
    from mmengine.dataset import pseudo_collate
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'batch_size must be a positive int, got {batch_size!r}')
    indices = calibration_indices(len(dataset), num_samples, seed)
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers, collate_fn=pseudo_collate)


def collect_batches(model: torch.nn.Module, dataloader: Any) -> List[torch.Tensor]:
    """Run the model's data preprocessor (eval mode) on every batch of ``dataloader``.

    Args:
        model (nn.Module): A model with a ``data_preprocessor`` (unwrapped here).
        dataloader (Iterable): Yields batches for that preprocessor.

    Returns:
        list[Tensor]: Preprocessed input batches on the model's device (for a segmentor, a
        batch of images of several sizes split by :func:`same_size_groups`; a classifier's
        preprocessor pads them as before).
    """
    model = get_ori_model(model)
    with torch.no_grad():
        return [inputs for data in dataloader for inputs in _preprocessed(model, data)]


def _preprocessed(model: torch.nn.Module, data: Any) -> List[torch.Tensor]:
    """The preprocessed input batches of one collated batch (a segmentor's: one per size)."""
    split = same_size_groups if hasattr(model, 'decode_head') else (lambda data: [data])
    return [model.data_preprocessor(group, False)['inputs'] for group in split(data)]


def same_size_groups(data: Any) -> List[Any]:
    """A collated batch split into runs of consecutive images of one size (test pipelines
    that keep the aspect ratio, e.g. ADE20k's, give images of several sizes, which a data
    preprocessor cannot stack); one group when all sizes agree."""
    inputs = data.get('inputs') if isinstance(data, dict) else None
    if not isinstance(inputs, (list, tuple)) or len({tuple(i.shape) for i in inputs}) < 2:
        return [data]
    shapes, groups, start = [tuple(i.shape) for i in inputs], [], 0
    for end in range(1, len(inputs) + 1):
        if end == len(inputs) or shapes[end] != shapes[start]:
            groups.append({key: value[start:end] if isinstance(value, (list, tuple))
                           and len(value) == len(inputs) else value
                           for key, value in data.items()})
            start = end
    return groups


class StreamedBatches:
    """The preprocessed batches of a loader, read again on every iteration (none kept).

    What the evaluators iterate over instead of :func:`collect_batches`' list when the
    calibration set is too large to keep (``calibration_images='stream'``).

    Args:
        model (nn.Module): A model with a ``data_preprocessor`` (unwrapped here).
        dataloader (DataLoader): Re-iterable, deterministic (unshuffled) batches.
    """

    def __init__(self, model: torch.nn.Module, dataloader: Any) -> None:
        self.model = get_ori_model(model)
        self.dataloader = dataloader
        dataset = getattr(dataloader, 'dataset', None)
        #: Images per pass (None when the loader has no sized dataset).
        self.num_samples = len(dataset) if dataset is not None else None

    def __len__(self) -> int:
        return len(self.dataloader)

    def __iter__(self):
        with torch.no_grad():
            for data in self.dataloader:  # as collect_batches (a segmentor's: one per size)
                yield from _preprocessed(self.model, data)


def prepare_calibration(cfg: Any, checkpoint: Optional[str], num_samples: int,
                        batch_size: int = 32, seed: int = 0, device: str = 'cpu',
                        num_workers: int = 0,
                        check_model: Optional[Callable[[torch.nn.Module], None]] = None,
                        split: str = 'train') -> Tuple[torch.nn.Module, DataLoader]:
    """Model (checkpoint loaded, eval mode) and calibration loader from a config.

    Args:
        cfg (mmengine.Config): The config.
        checkpoint (str, optional): Checkpoint path; None keeps initial weights.
        num_samples (int): Calibration images ``N``.
        batch_size (int): Calibration batch size. Defaults to 32.
        seed (int): Subset seed. Defaults to 0.
        device (str): Model device. Defaults to ``'cpu'``.
        num_workers (int): Loader workers. Defaults to 0.
        check_model (callable, optional): Called with the model before the data. Defaults to None.
        split (str): Calibration split (:data:`SPLITS`). Defaults to ``'train'``.

    Returns:
        tuple: ``(model, dataloader)``.

    Raises:
        FileNotFoundError: The checkpoint does not exist.
        ValueError: An unknown split or a bad dataset / ``num_samples``.
    """
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    model = build_model_from_cfg(cfg, checkpoint, device)
    if check_model is not None:
        check_model(model)
    dataset = build_calibration_dataset(cfg, split)
    loader = build_calibration_loader(dataset, num_samples, batch_size, seed, num_workers)
    return model, loader


def add_calibration_args(parser, split: str = 'train') -> None:
    """Add the arguments :func:`load_calibration` reads (config, checkpoint, ``-n``...).

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        split (str): Default of ``--split``. Defaults to ``'train'``.
    """
    from mmengine.config import DictAction
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint matching the config')
    parser.add_argument('--num-samples', '-n', type=int, default=256, help='images (256)')
    parser.add_argument('--batch-size', type=int, default=32, help='batch size (32)')
    parser.add_argument('--seed', type=int, default=0, help='subset seed (0)')
    add_setting_arg(parser, 'split', default=split)
    parser.add_argument('--device', default=None, help='default: cuda if available')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    add_trust_checkpoint_arg(parser)


def load_calibration(args) -> Tuple[torch.nn.Module, List[Any]]:
    """The model and its calibration batches for the arguments of :func:`add_calibration_args`.

    Raises:
        UserError: Bad config path or missing data folder.
        ValueError, FileNotFoundError: As :func:`prepare_calibration`.
    """
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = load_config(args.config, args.cfg_options)
    apply_trust_checkpoint(args.trust_checkpoint, [args.checkpoint], cfg)
    check_calibration_data(cfg, args.split)
    model, loader = prepare_calibration(cfg, args.checkpoint, args.num_samples,
                                        args.batch_size, args.seed, device, split=args.split)
    return model, collect_batches(model, loader)
