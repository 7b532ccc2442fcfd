"""NoseSelectionHook: choose the diluted attention layers before training starts."""
import os.path as osp
from typing import Any, Callable, Dict, Optional

from mmengine.dist import broadcast_object_list, get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from nose_mm.registry import HOOKS
from nose_mm.selection.evaluators import EVALUATORS
from nose_mm.selection.greedy import CRITERIA
from nose_mm.selection.io import file_sha256, load_selection_record, save_selection
from nose_mm.selection.loading import build_calibration_dataset, build_calibration_loader
from nose_mm.selection.runner import METHODS, run_selection

__all__ = ['NoseSelectionHook', 'broadcast_from_main']


def broadcast_from_main(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only and give its result to every rank.

    Outside a distributed run this is just ``fn()``. If ``fn`` raises on rank
    0, rank 0 re-raises it and the other ranks raise a ``RuntimeError`` with
    its message (instead of waiting forever).

    Args:
        fn (callable): Computes a picklable result.

    Returns:
        The result of ``fn`` on rank 0.
    """
    payload: list = [None]
    error: Optional[BaseException] = None
    if get_rank() == 0:
        try:
            payload[0] = ('ok', fn())
        except Exception as exc:  # noqa: BLE001 - forwarded to the other ranks
            error = exc
            payload[0] = ('error', f'{type(exc).__name__}: {exc}')
    broadcast_object_list(payload, src=0)
    status, value = payload[0]
    if status == 'error':
        if error is not None:
            raise error
        raise RuntimeError(f'layer selection failed on rank 0: {value}')
    return value


@HOOKS.register_module()
class NoseSelectionHook(Hook):
    """Select the attention layers to dilute with NOSE, before training.

    In ``before_train`` (after the pre-trained weights are loaded):

    1. If ``selection_file`` is given, or the run resumes (``--resume``) and
       ``<work_dir>/<file_name>`` exists, that selection is reused; no
       selection runs. A fresh run in a used work dir selects again.
    2. Otherwise rank 0 runs :func:`~nose_mm.selection.run_selection` on
       ``num_samples`` images of the config's training dataset with the test
       pipeline (see :mod:`nose_mm.selection.loading`; rebuilt from the
       runner's config, test data is assumed unavailable).
    3. The result is broadcast to every rank, the backbone's diluted layers are
       set with ``backbone.set_diluted_layers(selection)`` and rank 0 writes the
       record to ``<work_dir>/<file_name>`` atomically.

    Runs with priority ``'VERY_HIGH'`` so it comes before the ``DilutionHook``
    that drives ``lam`` on the selected layers.

    Args:
        num_layers (int, optional): Budget ``K``. Required unless
            ``selection_file`` is given (then, if set, it must match the file).
            Defaults to None.
        num_samples (int): Calibration images ``N``. Defaults to 256.
        method (str): ``'nose'``, ``'random'``, ``'first'``, ``'attn_entropy'``
            or ``'cosine'``. Defaults to ``'nose'``.
        criterion (str): NOSE criterion, ``'abs'`` or ``'signed'``. Defaults to
            ``'abs'``.
        batch_size (int): Calibration batch size. Defaults to 32.
        seed (int): Seed of the calibration subset and of the random baseline.
            Defaults to 0.
        features (str): ``'head_input'`` or ``'logits'``. Defaults to
            ``'head_input'``.
        evaluator (str): ``'cached'`` or ``'naive'``. Defaults to ``'cached'``.
        selection_file (str, optional): A selection JSON (from
            ``tools/nose_select.py``) to use instead of selecting. Defaults to
            None.
        file_name (str): Record name inside the work dir. Defaults to
            ``'selection.json'``.
        num_workers (int): Calibration loader workers. Defaults to 0.
        progress (bool): Progress bar on rank 0. Defaults to True.

    Raises:
        ValueError: On bad arguments, naming the allowed values.

    Example:
        >>> # select 3 layers on 1024 training images, then dilute them
        >>> custom_hooks = [
        ...     dict(type='NoseSelectionHook', num_layers=3, num_samples=1024),
        ...     dict(type='DilutionHook', begin=0, end=299)]
        >>> # or reuse a selection made by tools/nose_select.py
        >>> custom_hooks = [
        ...     dict(type='NoseSelectionHook', selection_file='selection.json'),
        ...     dict(type='DilutionHook', begin=0, end=299)]
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 num_layers: Optional[int] = None,
                 num_samples: int = 256,
                 method: str = 'nose',
                 criterion: str = 'abs',
                 batch_size: int = 32,
                 seed: int = 0,
                 features: str = 'head_input',
                 evaluator: str = 'cached',
                 selection_file: Optional[str] = None,
                 file_name: str = 'selection.json',
                 num_workers: int = 0,
                 progress: bool = True) -> None:
        if method not in METHODS:
            raise ValueError(f'unknown method {method!r}; allowed: {", ".join(METHODS)}')
        if criterion not in CRITERIA:
            raise ValueError(f'unknown criterion {criterion!r}; allowed: {", ".join(CRITERIA)}')
        if evaluator not in EVALUATORS:
            raise ValueError(f'unknown evaluator {evaluator!r}; allowed: '
                             f'{", ".join(EVALUATORS)}')
        if num_layers is None and selection_file is None:
            raise ValueError('NoseSelectionHook needs num_layers (the budget K) or a '
                             'selection_file')
        if num_layers is not None and (isinstance(num_layers, bool)
                                       or not isinstance(num_layers, int) or num_layers < 1):
            raise ValueError(f'num_layers must be a positive int, got {num_layers!r}')
        if selection_file is not None and not osp.isfile(selection_file):
            raise ValueError(f'selection_file {selection_file!r} does not exist')
        self.num_layers = num_layers
        self.num_samples = num_samples
        self.method = method
        self.criterion = criterion
        self.batch_size = batch_size
        self.seed = seed
        self.features = features
        self.evaluator = evaluator
        self.selection_file = selection_file
        self.file_name = file_name
        self.num_workers = num_workers
        self.progress = progress

    def _select(self, runner, model) -> Dict[str, Any]:
        """Run the selection (rank 0) and add provenance to the record."""
        loader = None
        if self.method not in ('random', 'first'):
            dataset = build_calibration_dataset(runner.cfg)
            loader = build_calibration_loader(dataset, self.num_samples, self.batch_size,
                                              self.seed, self.num_workers)
        data = f' on {self.num_samples} training images' if loader is not None else ''
        runner.logger.info(f'NoseSelectionHook: selecting {self.num_layers} attention layers '
                           f'with {self.method!r}{data}')
        record = run_selection(model, loader, self.num_layers, method=self.method,
                               criterion=self.criterion, seed=self.seed,
                               features=self.features, evaluator=self.evaluator,
                               progress=self.progress)
        load_from = runner.cfg.get('load_from')
        record.update(
            batch_size=self.batch_size, source='NoseSelectionHook',
            config=getattr(runner.cfg, 'filename', None),
            checkpoint=dict(path=load_from,
                            sha256=file_sha256(load_from)
                            if load_from and osp.isfile(load_from) else None))
        return record

    def _record(self, runner, model) -> Dict[str, Any]:
        """Rank 0: the record to use (from a file, or a new selection)."""
        work_file = osp.join(runner.work_dir, self.file_name)
        if self.selection_file is not None:
            record = load_selection_record(self.selection_file)
            origin = self.selection_file
        elif osp.isfile(work_file) and getattr(runner, '_resume', False):
            record = load_selection_record(work_file)
            origin = work_file
        else:
            record = self._select(runner, model)
            origin = None
        if self.num_layers is not None and len(record['selection']) != self.num_layers:
            raise ValueError(f'{origin} selects {len(record["selection"])} layers '
                             f'{record["selection"]} but num_layers={self.num_layers}')
        if origin != work_file:  # the work dir always records the selection in use
            save_selection(work_file, record)
        if origin is not None:
            runner.logger.info(f'NoseSelectionHook: reusing the selection of {origin}')
        return record

    def before_train(self, runner) -> None:
        """Reuse or run the selection and set the backbone's diluted layers."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        backbone = getattr(model, 'backbone', None)
        if not callable(getattr(backbone, 'set_diluted_layers', None)):
            raise TypeError(f'NoseSelectionHook: the backbone {type(backbone).__name__} is not '
                            f'dilutable (it has no set_diluted_layers); use a dilutable '
                            f'backbone such as NoseVisionTransformer')
        record = broadcast_from_main(lambda: self._record(runner, model))
        before = tuple(getattr(backbone, 'diluted_layers', ()) or ())
        if before and sorted(before) != sorted(record['selection']):
            runner.logger.warning(f'NoseSelectionHook: replacing the configured diluted layers '
                                  f'{list(before)} with the selection')
        backbone.set_diluted_layers(list(record['selection']))
        runner.logger.info(f'NoseSelectionHook: diluted layers {record["selection"]} '
                           f'(method {record.get("method")})')
