"""Train a classification (mmpretrain) or segmentation (mmseg) model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--no-validate] [--trust-checkpoint] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

Distributed: ``tools/dist_train.sh CONFIG NPROC`` (torchrun) or
``tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR``; works on CPU (gloo) too.
"""
import sys

from nose_mm.utils.cli import ToolParser, cli_main


def parse_args(argv=None):
    from nose_mm.apis.launch import add_launch_args, parse_launch_args
    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='Train a model (nose_mm)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or, with no value, from the latest '
        'checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed-precision training (CUDA)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual batch size')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not validate checkpoints during training')
    add_trust_checkpoint_arg(parser)
    add_launch_args(parser, 'train_cfg.max_iters=10')
    return parse_launch_args(parser, argv)


@cli_main()
def main(argv=None):
    args = parse_args(argv)
    from nose_mm.apis.launch import launch, setup_train_cfg

    launch(args, lambda cfg: setup_train_cfg(
        cfg, args.config, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
        auto_scale_lr=args.auto_scale_lr, no_validate=args.no_validate,
        launcher=args.launcher), lambda runner: runner.train())
    return 0


if __name__ == '__main__':
    sys.exit(main())
