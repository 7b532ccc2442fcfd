"""Run a selection method on a model and a calibration loader: the work behind the tool and hook."""
import time
from typing import Any, Dict, Iterable, List, Optional

import torch

from .adapters import build_adapter
from .baselines import select_attn_entropy, select_cosine, select_first, select_random
from .evaluators import CachedEvaluator, NaiveEvaluator, layer_statistics
from .greedy import check_budget, greedy_select
from .io import file_sha256
from .loading import StreamedBatches, collect_batches, prepare_calibration
from .settings import METHODS, SelectionSettings

__all__ = ['METHODS', 'run_selection', 'adapter_task', 'calibration_record', 'select_from_config']

#: Version of the selection record layout.
RECORD_VERSION = 1


def run_selection(model: torch.nn.Module,
                  dataloader: Optional[Iterable],
                  num_layers: Optional[int] = None,
                  settings: Optional[SelectionSettings] = None,
                  progress: bool = True,
                  batches: Optional[List[torch.Tensor]] = None,
                  **options: Any) -> Dict[str, Any]:
    """Select ``num_layers`` attention layers of ``model`` (in eval mode, restored after).

    Args:
        model (nn.Module): A classifier supported by :func:`~nose_mm.selection.build_adapter`.
        dataloader (Iterable, optional): Calibration batches (None with ``batches``).
        num_layers (int, optional): Budget ``K`` (overrides ``settings``).
        settings (SelectionSettings, optional): The settings. Defaults to ``SelectionSettings()``.
        progress (bool): Show a progress bar. Defaults to True.
        batches (list[Tensor], optional): Preprocessed calibration batches. Defaults to None.
        **options: Single settings (``method='random'``...) replacing ``settings``'.

    Returns:
        dict: The selection record (keys in docs/design.md).

    Raises:
        ValueError: A bad setting, ``K`` missing or too large, or no calibration data.
    """
    if num_layers is not None:
        options['num_layers'] = num_layers
    settings = SelectionSettings.build(settings, **options)
    num_layers, method, nose = settings.budget(), settings.method, settings.method == 'nose'
    adapter = build_adapter(model, features=settings.features, skip_mode=settings.skip_mode)
    candidates = adapter.candidate_layers
    check_budget(candidates, num_layers)
    t_start = time.perf_counter()
    if settings.needs_data and batches is None:
        if dataloader is None:
            raise ValueError(f'method {method!r} needs calibration data: give a dataloader')
        batches = (StreamedBatches(adapter.model, dataloader)
                   if settings.calibration_images == 'stream'
                   else collect_batches(adapter.model, dataloader))
    t_data = time.perf_counter()
    num_samples = getattr(batches, 'num_samples', None)
    if num_samples is None:
        num_samples = sum(int(b.shape[0]) for b in batches) if batches else 0
    entropies, cost = None, None

    was_training = adapter.model.training
    adapter.model.eval()
    try:
        if method == 'random':
            result = select_random(candidates, num_layers, seed=settings.seed)
        elif method == 'first':
            result = select_first(candidates, num_layers)
        elif not nose:
            stats = layer_statistics(adapter, batches)
            if method == 'attn_entropy':
                result = select_attn_entropy(stats['attn_entropy'], candidates, num_layers)
            else:
                result = select_cosine(stats['attn_cosine'], candidates, num_layers)
            cost = dict(blocks_computed=adapter.num_layers * num_samples,
                        forward_equivalents=1.0)
        else:
            from tqdm import tqdm
            if settings.evaluator == 'cached':
                evaluate = CachedEvaluator(adapter, batches, criterion=settings.criterion)
            else:
                evaluate = NaiveEvaluator(adapter, batches)
            total = sum(len(candidates) - step for step in range(num_layers))
            with tqdm(total=total, disable=not progress, desc=f'NOSE selection (K={num_layers})',
                      unit='eval', leave=False) as bar:
                h_full = evaluate.full_entropy()

                def counted(selected, candidate):
                    te = evaluate(selected, candidate)
                    bar.update(1)
                    return te

                result = greedy_select(counted, candidates, num_layers,
                                       criterion=settings.criterion)
            per_step = [h_full - float(result.table[step, candidates.index(layer)])
                        for step, layer in enumerate(result.selection)]
            entropies = dict(full=h_full, per_step=per_step)
            cost = dict(blocks_computed=evaluate.blocks_computed,
                        forward_equivalents=evaluate.forward_equivalents)
    finally:
        adapter.model.train(was_training)
    t_end = time.perf_counter()

    record = dict(version=RECORD_VERSION, method=result.method, criterion=result.criterion,
                  selection=list(result.selection), candidates=list(result.candidates),
                  te_table=None, scores=None)
    if result.table_name == 'transfer_entropy':
        record['te_table'] = result.table_as_lists()
    elif result.table_name is not None:
        record['scores'] = dict(name=result.table_name,
                                values={str(c): float(v) for c, v in
                                        zip(result.candidates, result.table[0])})
    record.update(result.extra)
    record.update(task=adapter_task(adapter), entropies=entropies, num_layers=num_layers,
                  total_layers=adapter.num_layers,
                  removed_layers=adapter.removed_layers, num_samples=num_samples,
                  seed=settings.seed, features=settings.features,
                  evaluator=settings.evaluator if nose else None,
                  skip_mode=settings.skip_mode if nose else None, cost=cost,
                  timing=dict(data_s=t_data - t_start, select_s=t_end - t_data,
                              total_s=t_end - t_start))
    return record


def adapter_task(adapter: Any) -> str:
    """``'segmentation'`` for a :class:`~nose_mm.selection.segmentor.SegmentorAdapter`, else
    ``'classification'`` (the ``task`` of the selection record)."""
    from .segmentor import SegmentorAdapter
    return 'segmentation' if isinstance(adapter, SegmentorAdapter) else 'classification'


def calibration_record(settings: SelectionSettings) -> Dict[str, Any]:
    """``batch_size``, ``split`` and storage of the calibration images (None without data)."""
    return dict(batch_size=settings.batch_size,
                split=settings.split if settings.needs_data else None,
                calibration_images=settings.calibration_images if settings.needs_data else None)


def select_from_config(cfg: Any,
                       checkpoint: Optional[str],
                       num_layers: Optional[int] = None,
                       settings: Optional[SelectionSettings] = None,
                       device: str = 'cpu',
                       num_workers: int = 0,
                       progress: bool = True,
                       **options: Any) -> Dict[str, Any]:
    """Build the config's model, load ``checkpoint``, run :func:`run_selection` on its data.

    Args:
        cfg (mmengine.Config): The config (with ``filename`` when loaded from a file).
        checkpoint (str, optional): Checkpoint whose keys must match the config's model; None
            with ``features='dense'``: the model as its config initialises it (the backbone's
            ``init_cfg`` checkpoint, e.g. ImageNet-pretrained; see
            :func:`~nose_mm.selection.segmentor.init_checkpoint`).
        num_layers (int, optional): Budget ``K`` (overrides ``settings``).
        settings (SelectionSettings, optional): See :func:`run_selection`.
        device (str): Device. Defaults to ``'cpu'``.
        num_workers (int): Loader workers. Defaults to 0.
        progress (bool): Show a progress bar. Defaults to True.
        **options: Single settings replacing those of ``settings``.

    Returns:
        dict: :func:`run_selection`'s record, plus calibration, config and checkpoint.
    """
    if num_layers is not None:
        options['num_layers'] = num_layers
    settings = SelectionSettings.build(settings, **options)
    init = None
    if checkpoint is None:
        from .segmentor import init_checkpoint
        init = init_checkpoint(cfg, settings.features)

    def check(model: torch.nn.Module) -> None:
        check_budget(build_adapter(model, features=settings.features).candidate_layers,
                     settings.budget())

    model, loader = prepare_calibration(cfg, checkpoint, settings.num_samples,
                                        settings.batch_size, settings.seed, device,
                                        num_workers, check_model=check, split=settings.split)
    record = run_selection(model, loader, settings=settings, progress=progress)
    loaded = dict(path=checkpoint, sha256=file_sha256(checkpoint)) if init is None else \
        dict(path=init, sha256=file_sha256(init), loaded_by='model.backbone.init_cfg')
    record.update(calibration_record(settings), config=getattr(cfg, 'filename', None),
                  checkpoint=loaded)
    return record
