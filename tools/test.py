"""Evaluate a checkpoint on a config's test set (top-1 or mIoU).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out preds.pkl]
        [--tta] [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import sys


def parse_args(argv=None):
    from nose_mm.apis.launch import add_launch_args, parse_launch_args
    parser = argparse.ArgumentParser(description='Test a checkpoint (nose_mm)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and results')
    parser.add_argument('--out', help='dump the raw predictions to this pickle file')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (segmentation: multi-scale + flip)')
    add_launch_args(parser, 'test_dataloader.batch_size=1')
    return parse_launch_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    from nose_mm.apis import LaunchError, build_runner, finish_launch, load_config, prepare_launch
    from nose_mm.apis import setup_test_cfg
    from nose_mm.models import CheckpointFitError

    try:
        cfg = load_config(args.config, args.cfg_options)
        setup_test_cfg(cfg, args.config, args.checkpoint, work_dir=args.work_dir,
                       launcher=args.launcher, tta=args.tta)
        prepare_launch(args.launcher)
    except LaunchError as exc:
        print(f'nose_mm: error: {exc}', file=sys.stderr)
        return 2
    runner = build_runner(cfg)
    if args.out:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    try:
        metrics = runner.test()
    except CheckpointFitError as exc:  # checkpoint of another model
        print(f'nose_mm: error: {exc}', file=sys.stderr)
        return 2
    finish_launch()
    print(f'nose_mm: test metrics: {metrics}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
