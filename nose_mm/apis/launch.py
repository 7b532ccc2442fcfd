"""What ``tools/train.py`` and ``tools/test.py`` do, as functions.

The tools only parse arguments; loading the config, applying the command-line
options, checking the data folders, setting up CPU-distributed runs and
building the Runner live here so they are tested and reusable.

Every user error (bad config path, missing data folder, unknown launcher,
``--amp`` without a GPU...) raises :class:`~nose_mm.utils.cli.UserError`
with a one-line message.

What every run has is declared in ``configs/_base_/`` (``runner_type`` and the
``default_hooks`` of :data:`RUN_HOOKS`), so a config dump shows what runs; for
a config that leaves them out the launcher adds them and says so.
"""
import glob
import itertools
import logging
import os
import os.path as osp
from typing import Any, Callable, Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from ..datasets.folders import ClassFolderError, check_class_folders
from ..utils.cli import UserError
from ..utils.config import DATALOADER_KEYS, iter_datasets, check_data_roots, load_config
from ..checkpoint.reader import apply_trust_checkpoint
from ..utils.fileio import check_writable
from ..utils.dist import LAUNCHERS, default_wrapper_cfg, init_dist_if_needed

__all__ = [
    'DictAction', 'LAUNCHERS', 'RUN_HOOKS', 'add_launch_args', 'parse_launch_args',
    'load_config', 'check_data_roots', 'check_split_classes', 'check_run_defaults',
    'setup_train_cfg', 'setup_test_cfg', 'build_runner', 'prepare_launch', 'finish_launch',
    'launch'
]

#: ``default_hooks`` key -> hook every run has (``configs/_base_/*_runtime.py`` declare them):
#: ``results.json`` for the leaderboard, a stop at a non-finite loss, exact resume.
RUN_HOOKS = {'results': 'ResultsHook', 'divergence': 'DivergenceHook',
             'random_state': 'RandomStateHook'}


def check_split_classes(cfg: Config, keys: Sequence[str]) -> None:
    """Check that class-folder splits agree (see :mod:`nose_mm.datasets.folders`).

    Args:
        cfg (Config): The loaded config.
        keys (sequence of str): Dataloader keys, the reference (training) first.

    Raises:
        UserError: Naming the split, the missing / extra classes and the fix.
    """
    try:
        check_class_folders((where, ds) for key in keys if cfg.get(key)
                            for where, ds in iter_datasets(cfg[key].get('dataset'),
                                                            f'{key}.dataset'))
    except ClassFolderError as exc:
        raise UserError(str(exc)) from exc


def add_launch_args(parser, cfg_example: str) -> None:
    """Add ``--cfg-options``, ``--launcher`` and ``--local-rank`` (train and test tools).

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        cfg_example (str): An example override shown in ``--cfg-options``' help.
    """
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help=f'override config settings, e.g. --cfg-options {cfg_example}')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_launch_args(parser, argv=None):
    """Parse the tool's arguments and export ``LOCAL_RANK`` if the launcher did not."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _check_launcher(launcher: str) -> None:
    if launcher not in LAUNCHERS:
        raise UserError(f'unknown launcher {launcher!r}; allowed: {", ".join(LAUNCHERS)}')


def _common_setup(cfg: Config, work_dir: Optional[str], config_path: str,
                  launcher: str) -> None:
    _check_launcher(launcher)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
    check_writable(cfg.work_dir, 'work dir', folder=True)
    if launcher != 'none' and cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = default_wrapper_cfg(cfg.get('find_unused_parameters', False))
    check_run_defaults(cfg, config_path)


def _hook_type(hook: Any) -> Optional[str]:
    name = hook.get('type') if isinstance(hook, dict) else type(hook).__name__
    return name.rsplit('.', 1)[-1] if isinstance(name, str) else None


def check_run_defaults(cfg: Config, config_path: str) -> list:
    """Check that the config declares what every nose_mm run has; add what it leaves out.

    Every run uses ``runner_type='NoseRunner'`` (strict checkpoint fit, see
    :mod:`nose_mm.engine.runner`) and the ``default_hooks`` of
    :data:`RUN_HOOKS`, as ``configs/_base_/default_runtime.py`` and
    ``seg_runtime.py`` declare them. A config that does not inherit them gets
    them added, with a warning naming each; a hook set to None in
    ``default_hooks`` stays off (its key is removed: mmengine's Runner takes
    None only for its own default hooks), and one listed in ``custom_hooks``
    (with its own arguments) is kept there.

    Returns:
        list[str]: The settings added.

    Raises:
        UserError: A hook both in ``default_hooks`` and in ``custom_hooks``.
    """
    added = []
    if 'runner_type' not in cfg:
        cfg.runner_type = 'NoseRunner'
        added.append("runner_type='NoseRunner'")
    default_hooks = dict(cfg.get('default_hooks') or {})
    custom = {_hook_type(h) for h in cfg.get('custom_hooks') or []}
    for key, hook_type in RUN_HOOKS.items():
        if key in default_hooks and default_hooks[key] is None:
            del default_hooks[key]  # turned off; mmengine takes None for its own keys only
            continue
        if hook_type in custom:
            if key in default_hooks:
                raise UserError(f'{config_path}: {hook_type} is both default_hooks.{key} and '
                                f'in custom_hooks; keep one (set default_hooks.{key}=None to '
                                f'use the custom_hooks entry)')
            continue
        if key not in default_hooks:
            default_hooks[key] = dict(type=hook_type)
            added.append(f'default_hooks.{key}={hook_type}')
    cfg.default_hooks = default_hooks
    if added:
        print_log(f'{config_path} leaves out what every nose_mm run has; added: '
                  f'{", ".join(added)} (inherit configs/_base_/default_runtime.py or '
                  f'seg_runtime.py to declare them)', logger='current', level=logging.WARNING)
    return added


def setup_train_cfg(cfg: Config, config_path: str, work_dir: Optional[str] = None,
                    resume: Optional[str] = None, amp: bool = False,
                    auto_scale_lr: bool = False, no_validate: bool = False,
                    launcher: str = 'none') -> Config:
    """Apply ``tools/train.py``'s options to a loaded config (in place).

    Args:
        cfg (Config): The loaded config.
        config_path (str): Its path (names the default work dir).
        work_dir (str, optional): Overrides ``cfg.work_dir``. Defaults to
            ``./work_dirs/<config name>`` when the config sets none.
        resume (str, optional): ``'auto'`` resumes from the latest checkpoint in
            the work dir, a path resumes from that checkpoint. Defaults to None.
        amp (bool): Mixed precision through ``AmpOptimWrapper`` (needs CUDA).
            Defaults to False.
        auto_scale_lr (bool): Scale the learning rate by the actual batch size
            (``cfg.auto_scale_lr`` must hold ``base_batch_size``). Defaults to False.
        no_validate (bool): Skip validation during training. Defaults to False.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
            Defaults to ``'none'``.

    Returns:
        Config: ``cfg``.
    """
    _common_setup(cfg, work_dir, config_path, launcher)
    if amp:
        if not torch.cuda.is_available():
            raise UserError('--amp needs a CUDA GPU (mmengine AmpOptimWrapper); '
                            'none is available here: drop --amp to train in fp32')
        optim = cfg.get('optim_wrapper')
        if optim is None:
            raise UserError('--amp needs an optim_wrapper in the config')
        allowed = ('OptimWrapper', 'AmpOptimWrapper', 'AutoAmpOptimWrapper')
        if optim.get('type', 'OptimWrapper') not in allowed:
            raise UserError(f'--amp cannot be applied to optim_wrapper type {optim.type!r}; '
                            f'allowed: {", ".join(allowed)}')
        optim.type = 'AmpOptimWrapper'
        optim.setdefault('loss_scale', 'dynamic')
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise UserError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=N)` '
                            'in the config')
        cfg.auto_scale_lr.enable = True
    if no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if resume == 'auto':
        _check_last_checkpoint(cfg.work_dir)
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        if not osp.isfile(resume):
            raise UserError(f'--resume checkpoint {resume!r} does not exist')
        cfg.resume = True
        cfg.load_from = resume
    keys = ['train_dataloader'] if no_validate else list(DATALOADER_KEYS[:2])
    check_data_roots(cfg, keys)
    check_split_classes(cfg, keys)
    return cfg


def _check_last_checkpoint(work_dir: str) -> None:
    """Refuse ``--resume`` when the work dir's ``last_checkpoint`` names a missing file."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return  # mmengine starts afresh, with a warning
    with open(record, encoding='utf-8') as f:
        named = f.read().strip()
    if named and not osp.isfile(named):
        found = sorted(glob.glob(osp.join(glob.escape(work_dir), '*.pth')), key=osp.getmtime)
        there = (f'; checkpoints there: {", ".join(map(osp.basename, found[-3:]))} '
                 f'(--resume {found[-1]})' if found else '; the work dir holds no checkpoint')
        raise UserError(f'--resume: {record} names {named!r}, which does not exist{there}; '
                        f'or remove {record} to train from the start')


def setup_test_cfg(cfg: Config, config_path: str, checkpoint: str,
                   work_dir: Optional[str] = None, launcher: str = 'none',
                   tta: bool = False, amp: bool = False) -> Config:
    """Apply ``tools/test.py``'s options to a loaded config (in place).

    Args:
        cfg (Config): The loaded config.
        config_path (str): Its path (names the default work dir).
        checkpoint (str): The checkpoint to evaluate.
        work_dir (str, optional): Overrides ``cfg.work_dir``. Defaults to None.
        launcher (str): See :func:`setup_train_cfg`. Defaults to ``'none'``.
        tta (bool): Test-time augmentation (mmseg's multi-scale + flip): wraps
            the model in ``cfg.tta_model`` and uses ``cfg.tta_pipeline``.
            Defaults to False.
        amp (bool): Evaluate under autocast, as the reference code does
            (``torch.cuda.amp.autocast``): float16 on CUDA, bfloat16 on CPU (the one
            dtype of CPU autocast); mmengine's ``test_cfg.fp16``. Defaults to False.

    Returns:
        Config: ``cfg``.
    """
    _common_setup(cfg, work_dir, config_path, launcher)
    if amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    if tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise UserError(f'--tta needs tta_model and tta_pipeline in {config_path!r}')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise UserError(f'checkpoint {checkpoint!r} does not exist')
    if cfg.get('test_dataloader') is None or cfg.get('test_evaluator') is None:
        raise UserError(f'config {config_path!r} has no test_dataloader/test_evaluator')
    cfg.load_from = checkpoint
    cfg.resume = False
    check_data_roots(cfg, ['test_dataloader'])
    check_split_classes(cfg, ['train_dataloader', 'test_dataloader'])
    return cfg


_RUNS_IN_PROCESS = itertools.count(1)


def _name_run(cfg: Config) -> None:
    """Give the second and later runs of one process their own experiment name.

    mmengine keys the run's default scope, logger and visualizer by
    ``<config name>_<second it started>``; two runs of one config in one second
    in one process (in-process tool runs: tests, the demo's workers) would get
    the first run's instances, e.g. its registry scope. Every process counts its
    runs the same way, so distributed ranks agree on the name.
    """
    run = next(_RUNS_IN_PROCESS)
    if run > 1 and cfg.get('experiment_name') is None:
        stem = osp.splitext(osp.basename(cfg.filename or 'run'))[0]
        cfg.experiment_name = f'{stem}_run{run}'


def build_runner(cfg: Config) -> Runner:
    """Build the Runner the config asks for (``runner_type`` or mmengine's)."""
    _name_run(cfg)
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def prepare_launch(launcher: str) -> None:
    """Start the CPU process group when needed (see :mod:`nose_mm.utils.dist`)."""
    _check_launcher(launcher)
    init_dist_if_needed(launcher)


def launch(args, setup: Callable[[Config], Any], run: Callable[[Runner], Any]) -> Any:
    """The body of ``tools/train.py`` and ``tools/test.py``.

    Loads ``args.config`` with ``args.cfg_options``, applies ``setup(cfg)``,
    starts the process group, builds the Runner, returns ``run(runner)`` and
    closes the group.
    """
    cfg = load_config(args.config, args.cfg_options)
    setup(cfg)
    # trusted: the run's own checkpoint (test's CHECKPOINT, train's --resume / load_from)
    apply_trust_checkpoint(getattr(args, 'trust_checkpoint', None), [cfg.get('load_from')], cfg)
    prepare_launch(args.launcher)
    result = run(build_runner(cfg))
    finish_launch()
    return result


def finish_launch() -> None:
    """Wait for every rank, then close the process group.

    Ranks finish at different times (rank 0 writes results); a rank that exits
    while gloo's threads still serve the group aborts ("terminate called
    without an active exception"), which fails the whole torchrun job.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

