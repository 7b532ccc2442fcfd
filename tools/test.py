"""Evaluate a checkpoint on a config's test set (top-1 or mIoU).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out preds.pkl]
        [--tta] [--amp] [--trust-checkpoint] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]
"""
import sys

from nose_mm.utils.cli import ToolParser, cli_main


def parse_args(argv=None):
    from nose_mm.apis.launch import add_launch_args, parse_launch_args
    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='Test a checkpoint (nose_mm)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and results')
    parser.add_output('--out', help='dump the raw predictions to this pickle file (.pkl)')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (segmentation: multi-scale + flip)')
    parser.add_argument('--amp', action='store_true',
                        help='evaluate under autocast as the reference code does: float16 on '
                        'CUDA, bfloat16 on CPU (sets test_cfg.fp16=True)')
    add_trust_checkpoint_arg(parser)
    add_launch_args(parser, 'test_dataloader.batch_size=1')
    args = parse_launch_args(parser, argv)
    if args.out and not args.out.endswith(('.pkl', '.pickle')):  # mmengine's DumpResults
        from nose_mm.utils.cli import UserError
        raise UserError(f'--out {args.out!r}: the predictions are written as a pickle; name '
                        f'the file *.pkl (or *.pickle)')
    return args


@cli_main()
def main(argv=None):
    args = parse_args(argv)
    from nose_mm.apis.launch import launch, setup_test_cfg

    def run(runner):
        if args.amp:
            import torch
            dtype = 'float16' if torch.cuda.is_available() else 'bfloat16'
            runner.logger.info(f'nose_mm: evaluating under autocast ({dtype})')
        if args.out:
            from mmengine.evaluator import DumpResults
            runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
        return runner.test()

    metrics = launch(args, lambda cfg: setup_test_cfg(
        cfg, args.config, args.checkpoint, work_dir=args.work_dir, launcher=args.launcher,
        tta=args.tta, amp=args.amp), run)
    print(f'nose_mm: test metrics: {metrics}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
