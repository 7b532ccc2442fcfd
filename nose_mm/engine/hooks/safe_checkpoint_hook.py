"""SafeCheckpointHook: never leaves a run without a loadable checkpoint (docs/design.md)."""
import glob
import hashlib
import os
import os.path as osp
import pickle
import shutil
from pathlib import Path
from typing import Any, List

from mmengine.dist import is_main_process, master_only
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

from nose_mm.registry import HOOKS
from nose_mm.utils.fileio import TMP_SUFFIX, atomic_write

__all__ = ['SafeCheckpointHook']

#: Name of the file backend that writes through a temporary file and a rename.
ATOMIC_BACKEND = 'nose_atomic_local'


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put``/``put_text`` are atomic."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(str(filepath), lambda tmp: super(AtomicLocalBackend, self).put(obj, tmp))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


class _DeferredRemoval:
    """A file backend proxy that records ``remove``/``rmtree`` instead of doing them."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.pending: List[str] = []

    def remove(self, path) -> None:
        self.pending.append(str(path))

    rmtree = remove

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` whose saves cannot lose the last checkpoint.

    Write to a temporary file, rename, then remove outdated ones (docs/design.md).

    Args:
        **kwargs: As ``CheckpointHook``'s (local ``backend_args`` only, no ``file_client_args``).
    """

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get('file_client_args') is not None:
            raise ValueError(f'{type(self).__name__} does not take file_client_args '
                             f'(deprecated in mmengine); got {kwargs["file_client_args"]!r}')
        backend_args = dict(kwargs.get('backend_args') or {})
        if backend_args.get('backend', 'local') not in ('local', ATOMIC_BACKEND):
            raise ValueError(f'{type(self).__name__} writes local folders only; got '
                             f'backend_args={kwargs["backend_args"]!r} (allowed backend: '
                             f'\'local\'); use mmengine\'s CheckpointHook for other storage')
        backend_args['backend'] = ATOMIC_BACKEND
        kwargs['backend_args'] = backend_args
        super().__init__(*args, **kwargs)

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        if '://' in str(out_dir):
            raise ValueError(f'{type(self).__name__} writes local folders only; got '
                             f'out_dir={out_dir!r}')
        super().before_train(runner)
        if is_main_process():
            for tmp in glob.glob(osp.join(glob.escape(str(self.out_dir)), f'.*{TMP_SUFFIX}')):
                os.remove(tmp)
                runner.logger.warning(f'{type(self).__name__}: removed {tmp}, left by a save '
                                      f'that did not finish')

    def _remove_checkpoint(self, runner, path: str) -> None:
        if osp.isfile(path):
            os.remove(path)
        elif osp.isdir(path):  # checkpoints saved by deepspeed are folders
            shutil.rmtree(path)
        else:
            return
        runner.logger.info(f'{type(self).__name__}: removed {path} (outdated)')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        outdated: List[int] = []
        new_id = self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                                  and self.keep_ckpt_ids[-1] == step)
        if new_id:
            ids = list(self.keep_ckpt_ids) + [step]
            outdated = ids[:-self.max_keep_ckpts]
            # saved with the checkpoint, so a resumed run removes what a kill kept
            runner.message_hub.update_info('keep_ckpt_ids', ids)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if new_id:
            self.keep_ckpt_ids.append(step)  # a deque of max_keep_ckpts: drops the oldest
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        if not is_main_process():
            return
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'),
                     lambda tmp: Path(tmp).write_text(str(self.last_ckpt), encoding='utf-8'))
        for old in outdated:
            self._remove_checkpoint(
                runner, self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # mmengine removes the previous best before saving: defer removals until all saved
        backend = self.file_backend
        deferred = _DeferredRemoval(backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        current = {str(p) for p in [getattr(self, 'best_ckpt_path', None), self.last_ckpt,
                                    *getattr(self, 'best_ckpt_path_dict', {}).values()] if p}
        for path in deferred.pending:
            if is_main_process() and path not in current:
                self._remove_checkpoint(runner, path)

    @master_only
    def _publish_model(self, runner, ckpt_path: str) -> None:
        """Save ``ckpt_path`` with only ``published_keys`` as ``<name>-<sha256[:8]>.pth``."""
        checkpoint = _load_checkpoint(ckpt_path, map_location='cpu')
        dropped = [key for key in checkpoint if key not in self.published_keys]
        for key in dropped:
            del checkpoint[key]
        if dropped:
            runner.logger.info(f'Publishing {ckpt_path} without {dropped} (not in '
                               f'published_keys)')
        digest = hashlib.sha256(pickle.dumps(checkpoint)).hexdigest()[:8]
        final_path = f'{osp.splitext(ckpt_path)[0]}-{digest}.pth'
        save_checkpoint(checkpoint, final_path, backend_args=self.backend_args)
        runner.logger.info(f'The checkpoint ({ckpt_path}) is published to {final_path}.')

