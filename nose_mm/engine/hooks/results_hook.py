"""ResultsHook: writes ``results.json`` in the work dir of every train and test run."""
import datetime
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel
from mmpretrain.utils import get_ori_model

from nose_mm.registry import HOOKS

__all__ = ['ResultsHook']


def _autocast_dtype(cfg, model, test: bool) -> Optional[str]:
    """The dtype of the run's evaluation autocast (mmengine's ``fp16`` of ``test_cfg`` /
    ``val_cfg``: float16 on CUDA, bfloat16 on CPU), None for float32."""
    loop = cfg.get('test_cfg' if test else 'val_cfg') or {}
    if not loop.get('fp16', False):
        return None
    param = next(iter(model.parameters()), None)
    return 'float16' if param is not None and param.device.type == 'cuda' else 'bfloat16'


@HOOKS.register_module()
class ResultsHook(Hook):
    """Write ``<work_dir>/<filename>`` (a ``ResultsRecord``) on rank 0 after a train or test.

    A run stopped by ``DivergenceHook`` (``after_train_failure``) is written as
    failed. A record already in the work dir is renamed to ``<filename>.previous`` when
    the run starts: it described an earlier run whose checkpoints this one may overwrite,
    and a run killed before it writes its own must not leave it to be ranked.
    Every run has it (``default_hooks.results`` in ``configs/_base_/``).
    Fields: ``benchmarks/README.md``, "results.json".

    Args:
        filename (str): A file name inside the work dir. Defaults to ``'results.json'``.
        count_flops (bool): Count FLOPs at the end of the run. Defaults to True.
        flops_img_size (Sequence[int], optional): ``(H, W)``. Defaults to the config's.

    Raises:
        ValueError: A ``filename`` with folders, a ``flops_img_size`` that is no pair.
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
        self.filename, self.count_flops = filename, count_flops
        self.flops_img_size = tuple(flops_img_size) if flops_img_size else None
        self._reset()

    def _reset(self) -> None:
        self._mode, self._written = 'val', False
        self._metrics: Optional[Dict[str, Any]] = None
        self._epoch = self._iter = None  # of the last validation
        self._history: List[Dict[str, Any]] = []

    def before_run(self, runner) -> None:
        self._reset()
        from nose_mm.benchmark.seeds import seed_varies
        from nose_mm.utils.cli import UserError
        try:  # a bad value fails now, not when the record is written
            seed_varies(runner.cfg)
        except ValueError as exc:
            raise UserError(f'{exc} (in the config)') from None
        path = osp.join(runner.work_dir, self.filename)
        if is_main_process() and osp.isfile(path):
            os.replace(path, path + '.previous')
            runner.logger.warning(f'ResultsHook: moved the earlier run\'s {path} to '
                                  f'{path}.previous; this run writes its own when it ends')

    def before_train(self, runner) -> None:
        self._mode = 'train'

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, Any]] = None) -> None:
        if not metrics:
            return
        self._metrics = dict(metrics)
        self._epoch, self._iter = runner.epoch, runner.iter
        self._history.append({'epoch': runner.epoch, 'iter': runner.iter,
                              'metrics': {k: float(v) for k, v in metrics.items()
                                          if isinstance(v, (int, float))
                                          and not isinstance(v, bool)}})

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, Any]] = None) -> None:
        self._mode = 'test'
        self._metrics = dict(metrics or {})
        self._write(runner)

    def after_run(self, runner) -> None:
        if not self._written:
            self._write(runner)

    def after_train_failure(self, runner, error: str) -> None:
        """Record a training run that failed (a custom hook point)."""
        self._write(runner, failure=error)

    def _write(self, runner, failure: Optional[str] = None) -> None:
        """Write the run's ``ResultsRecord`` (counting errors go to its ``errors``)."""
        self._written = True
        if not is_main_process():
            return
        hub, cfg, test = runner.message_hub, runner.cfg, self._mode == 'test'
        checkpoint = hub.get_info('last_ckpt') if self._mode == 'train' else cfg.get('load_from')
        best = None if test else hub.get_info('best_ckpt')
        from nose_mm.benchmark import env, flops as fl, info as mi, records as rec, seeds
        info = rec.ModelInfo.from_json(mi.model_info(cfg, runner.model), 'model')
        inner = get_ori_model(runner.model)
        tta = isinstance(inner, BaseTTAModel)
        inner = inner.module if tta else inner
        errors: Dict[str, str] = {}
        params = backbone_params = flops = None
        hw = self.flops_img_size or mi.measure_size(cfg)[0]
        try:
            params = fl.count_params(inner)
            if getattr(inner, 'backbone', None) is not None:
                backbone_params = fl.count_params(inner.backbone)
        except Exception as exc:  # noqa: BLE001 - recorded, the run has succeeded
            errors['params'] = f'{type(exc).__name__}: {exc}'
        if self.count_flops and not failure:
            try:
                flops = fl.count_flops(mi.TensorForward(inner), (mi.in_channels(cfg), *hw))
            except Exception as exc:  # noqa: BLE001
                errors['flops'] = f'{type(exc).__name__}: {exc}'
        filename, work_dir = getattr(cfg, 'filename', None), cfg.get('work_dir')
        git = env.git_commit()
        results = rec.ResultsRecord(
            mode=self._mode, status='failed' if failure else 'ok', error=failure,
            dataset=mi.dataset_name(cfg, 'test' if test else 'val'), model=info,
            metrics=rec.normalize_metrics(self._metrics or {}, info.task, tta=tta), tta=tta,
            epoch=None if test else self._epoch, iter=None if test else self._iter,
            history=[rec.Evaluation.from_json(h, 'history') for h in self._history],
            params=params, backbone_params=backbone_params, flops=flops,
            flops_input=[mi.in_channels(cfg), *hw],
            config=osp.abspath(filename) if filename else None, config_sha256=mi.config_sha256(cfg),
            config_sha256_noseed=seeds.config_sha256_noseed(cfg), seed=seeds.config_seed(cfg),
            best_checkpoint=best,
            checkpoint=osp.abspath(checkpoint) if checkpoint and '://' not in checkpoint
            else checkpoint, work_dir=osp.abspath(work_dir) if work_dir else None,
            git=rec.GitInfo(**git) if git else None, hardware=env.env_info(), errors=errors,
            seed_varies=seeds.seed_varies(cfg) or None,
            autocast=_autocast_dtype(cfg, inner, test),
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
        path = osp.join(runner.work_dir, self.filename)
        results.save(path)
        runner.logger.info(f'ResultsHook: wrote {path}')
