"""ResultsHook: writes ``results.json`` in the work dir of every train and test run."""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from nose_mm.registry import HOOKS

__all__ = ['ResultsHook']


@HOOKS.register_module()
class ResultsHook(Hook):
    """Record what a run was and what it scored, for the leaderboard.

    Writes ``<work_dir>/<filename>`` on rank 0 after a run (``status: 'failed'`` after a
    divergence); fields in ``benchmarks/README.md``.

    Args:
        filename (str): File name inside the work dir. Defaults to ``'results.json'``.
        count_flops (bool): Count FLOPs at the end of the run. Defaults to True.
        flops_img_size (Sequence[int], optional): ``(H, W)`` for FLOPs. Defaults to the config's.
    """

    priority = 'VERY_LOW'

    def __init__(self, filename: str = 'results.json', count_flops: bool = True,
                 flops_img_size: Optional[Sequence[int]] = None) -> None:
        if not isinstance(filename, str) or not filename or osp.basename(filename) != filename:
            raise ValueError(f'filename must be a plain file name (no folders), got '
                             f'{filename!r}')
        if flops_img_size is not None and not (
                isinstance(flops_img_size, (list, tuple)) and len(flops_img_size) == 2
                and all(isinstance(v, int) and v > 0 for v in flops_img_size)):
            raise ValueError(f'flops_img_size must be None or (height, width) positive '
                             f'integers, got {flops_img_size!r}')
        self.filename = filename
        self.count_flops = count_flops
        self.flops_img_size = tuple(flops_img_size) if flops_img_size else None
        self._reset()

    def _reset(self) -> None:
        self._mode = 'val'
        self._metrics: Optional[Dict[str, Any]] = None
        self._epoch: Optional[int] = None
        self._iter: Optional[int] = None
        self._history: List[Dict[str, Any]] = []
        self._written = False

    def before_run(self, runner) -> None:
        self._reset()

    def before_train(self, runner) -> None:
        self._mode = 'train'

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, Any]] = None) -> None:
        if not metrics:
            return
        self._metrics = dict(metrics)
        self._epoch, self._iter = runner.epoch, runner.iter
        self._history.append({'epoch': runner.epoch, 'iter': runner.iter,
                              'metrics': {k: v for k, v in metrics.items()
                                          if isinstance(v, (int, float))}})

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, Any]] = None) -> None:
        self._mode = 'test'
        self._metrics = dict(metrics or {})
        self._write(runner, checkpoint=runner.cfg.get('load_from'))

    def after_run(self, runner) -> None:
        if self._written:
            return
        hub = runner.message_hub
        if self._mode == 'train':
            checkpoint = hub.get_info('last_ckpt')
        else:
            checkpoint = runner.cfg.get('load_from')
        self._write(runner, checkpoint=checkpoint, best=hub.get_info('best_ckpt'))

    def after_train_failure(self, runner, error: str) -> None:
        """Record a training run that failed (a custom hook point)."""
        hub = runner.message_hub
        self._write(runner, checkpoint=hub.get_info('last_ckpt'),
                    best=hub.get_info('best_ckpt'), failure=error)

    def _write(self, runner, checkpoint: Optional[str], best: Optional[str] = None,
               failure: Optional[str] = None) -> None:
        self._written = True
        if not is_main_process():
            return
        from nose_mm.benchmark.results import build_results
        from nose_mm.utils.fileio import atomic_write_json
        results = build_results(
            runner.cfg, runner.model, self._metrics or {}, self._mode, checkpoint=checkpoint,
            best_checkpoint=best, epoch=self._epoch if self._mode != 'test' else None,
            iteration=self._iter if self._mode != 'test' else None, history=self._history,
            count_flops=self.count_flops and not failure, flops_img_size=self.flops_img_size,
            failure=failure)
        path = osp.join(runner.work_dir, self.filename)
        atomic_write_json(path, results)
        runner.logger.info(f'ResultsHook: wrote {path}')
