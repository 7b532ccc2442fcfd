"""NoseSelectionHook: choose the diluted attention layers before training starts."""
import os.path as osp
from typing import Any, Callable, Dict, Optional

from mmengine.dist import broadcast_object_list, get_rank
from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from nose_mm.registry import HOOKS
from nose_mm.selection.io import file_sha256, load_selection_record, save_selection
from nose_mm.selection.loading import build_calibration_dataset, build_calibration_loader
from nose_mm.selection.presets import preset_record, preset_settings
from nose_mm.selection.runner import calibration_record, run_selection

__all__ = ['NoseSelectionHook', 'broadcast_from_main']


def broadcast_from_main(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only and give its result (or its error) to every rank.

    Args:
        fn (callable): Computes a picklable result.

    Returns:
        The result of ``fn`` on rank 0.
    """
    payload: list = [None]
    if get_rank() == 0:
        try:
            payload[0] = ('ok', fn())
        except Exception as exc:  # noqa: BLE001 - forwarded to the other ranks
            broadcast_object_list([('error', f'{type(exc).__name__}: {exc}')], src=0)
            raise
    broadcast_object_list(payload, src=0)
    status, value = payload[0]
    if status == 'error':
        raise RuntimeError(f'layer selection failed on rank 0: {value}')
    return value


@HOOKS.register_module()
class NoseSelectionHook(Hook):
    """Select the attention layers to dilute (NOSE or a baseline) before training.

    Reuses ``selection_file`` (or, on resume, the work dir's record), else rank 0 selects;
    README: "Layer selection in training".

    Args:
        selection_file (str, optional): A selection JSON to use instead. Defaults to None.
        file_name (str): Record name in the work dir. Defaults to ``'selection.json'``.
        num_workers (int): Calibration loader workers. Defaults to 0.
        progress (bool): Progress bar on rank 0. Defaults to True.
        preset (str, optional): A :data:`~nose_mm.selection.presets.PRESETS` name whose
            settings ``settings`` then change (``'reference'``: the reference code's probe).
            Defaults to None (the ``SelectionSettings`` defaults, preset ``'default'``).
        **settings: ``SelectionSettings`` fields (``num_layers`` without ``selection_file``).
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 selection_file: Optional[str] = None,
                 file_name: str = 'selection.json',
                 num_workers: int = 0,
                 progress: bool = True,
                 preset: Optional[str] = None,
                 **settings: Any) -> None:
        self.preset = preset
        self.settings = preset_settings('default' if preset is None else preset, **settings)
        if self.settings.num_layers is None and selection_file is None:
            raise ValueError('NoseSelectionHook needs num_layers (the budget K) or a '
                             'selection_file')
        if selection_file is not None and not osp.isfile(selection_file):
            raise ValueError(f'selection_file {selection_file!r} does not exist')
        self.selection_file = selection_file
        self.file_name = file_name
        self.num_workers = num_workers
        self.progress = progress

    def _select(self, runner, model) -> Dict[str, Any]:
        """Run the selection (rank 0) and add provenance to the record."""
        s, loader = self.settings, None
        if s.features == 'seg_logits' and not runner.cfg.get('load_from') and \
                not (runner.cfg.get('model') or {}).get('init_cfg'):
            raise ValueError("NoseSelectionHook: features 'seg_logits' read the trained "
                             "decode head, but the run loads no segmentor (no load_from, no "
                             "model.init_cfg): set load_from, or select with features='dense' "
                             "(the backbone as init_cfg loads it)")
        if s.needs_data:
            dataset = build_calibration_dataset(runner.cfg, s.split)
            loader = build_calibration_loader(dataset, s.num_samples, s.batch_size, s.seed,
                                              self.num_workers)
        data = f' on {s.num_samples} {s.split} images' if loader is not None else ''
        runner.logger.info(f'NoseSelectionHook: selecting {s.num_layers} attention layers '
                           f'with {s.method!r}{data}')
        record = run_selection(model, loader, settings=s, progress=self.progress)
        load_from = runner.cfg.get('load_from')
        record.update(
            calibration_record(s), **preset_record(self.preset, s), source='NoseSelectionHook',
            config=getattr(runner.cfg, 'filename', None),
            checkpoint=dict(path=load_from,
                            sha256=file_sha256(load_from)
                            if load_from and osp.isfile(load_from) else None))
        return record

    def _record(self, runner, model) -> Dict[str, Any]:
        """Rank 0: the record to use (from a file, or a new selection)."""
        work_file = osp.join(runner.work_dir, self.file_name)
        origin = self.selection_file
        if origin is None and osp.isfile(work_file) and getattr(runner, '_resume', False):
            origin = work_file
        record = self._select(runner, model) if origin is None else load_selection_record(origin)
        num_layers = self.settings.num_layers
        if num_layers is not None and len(record['selection']) != num_layers:
            raise ValueError(f'{origin} selects {len(record["selection"])} layers '
                             f'{record["selection"]} but num_layers={num_layers}')
        if origin != work_file:  # the work dir always records the selection in use
            save_selection(work_file, record)
        if origin is not None:
            runner.logger.info(f'NoseSelectionHook: reusing the selection of {origin}')
        return record

    def before_train(self, runner) -> None:
        """Reuse or run the selection and set the backbone's diluted layers."""
        model = get_ori_model(runner.model)
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
