"""Params, FLOPs and throughput of several configs' models, timed interleaved in one run.

    python tools/analysis/benchmark_interleaved.py CONFIG [CONFIG ...] [--checkpoints C ...]
        [--batch-size 8] [--img-size PX] [--repeats 5] [--warmup 2] [--threads N]
        [--clock wall|process] [--out FILE.json]

``tools/benchmark.py --compare`` measures two models; this measures any number
the same way (random pre-processed batches, the whole classifier in
``mode='tensor'``, inference, fp32 on CPU, one process) with the rounds
interleaved (A, B, C, A, B, C, ...) so drifts of a shared machine hit all
models alike. Ratios are against the first config: ``params`` and ``flops``
(B / A), ``throughput`` (ratio of median img/s) and ``throughput_paired``
(median over rounds of the per-round img/s ratio). ``--clock process`` times
the CPU time of this process, which other processes on a busy machine barely
disturb (meaningful with ``--threads 1`` only: idle worker threads spin).
FLOPs are multiply-adds per image with the attention products
(nose_mm.analysis.flops); with token merging they are counted on the merged
token counts (see benchmarks/README.md).
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


def parse_args(argv=None):
    parser = ToolParser(
        description='Benchmark several models interleaved (nose_mm)')
    parser.add_argument('configs', nargs='+', help='config files; ratios are against the first')
    parser.add_argument('--checkpoints', nargs='+', default=[],
                        help='one checkpoint per config, or "none" (default: random weights)')
    parser.add_argument('--batch-size', type=int, default=8, help='images per forward')
    parser.add_argument('--img-size', type=int, help='input side (default: the first config\'s)')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first')
    parser.add_argument('--threads', type=int, help='torch intra-op threads')
    parser.add_argument('--clock', choices=('wall', 'process'), default='wall',
                        help='wall time (default) or CPU time of this process (use with '
                        '--threads 1)')
    parser.add_output('--out', help='write every figure and repeat to this JSON file')
    return parser.parse_args(argv)


def measure(models, batch_size, hw, repeats, warmup, clock):
    """Params, FLOPs and interleaved timings of ``{name: model}`` (CPU, fp32)."""
    import time

    import torch

    from nose_mm.benchmark import median, paired_ratio, time_interleaved
    from nose_mm.benchmark import count_flops, count_params

    x = torch.randn(batch_size, 3, *hw, generator=torch.Generator().manual_seed(0))

    def forward(model):
        def run():
            with torch.inference_mode():
                model(x)
        return run

    report = {name: {'params': count_params(model), 'flops': count_flops(model, (3, ) + hw)}
              for name, model in models.items()}
    times = time_interleaved({name: forward(m) for name, m in models.items()},
                             repeats=repeats, warmup=warmup,
                             clock=time.process_time if clock == 'process' else time.perf_counter)
    first = next(iter(models))
    for name, entry in report.items():
        entry['img_per_s'] = batch_size / median(times[name])
        entry['img_per_s_repeats'] = [batch_size / t for t in times[name]]
        entry['ratios'] = {
            'params': entry['params'] / report[first]['params'],
            'flops': entry['flops'] / report[first]['flops'],
            'throughput': entry['img_per_s'] / report[first]['img_per_s'],
            'throughput_paired': paired_ratio(times, first, name),
        }
    return report


@cli_main(*INPUT_ERRORS)
def main(argv=None):
    args = parse_args(argv)
    import torch

    import nose_mm  # noqa: F401  (compat fixes, registries)
    from nose_mm.utils.cli import UserError
    from nose_mm.utils.config import load_config
    from nose_mm.benchmark import build_model, default_img_size
    from nose_mm.benchmark import cpu_model_name
    from nose_mm.utils import atomic_write_json

    def fail(message):
        print(f'nose_mm: error: {message}', file=sys.stderr)
        return 2

    if args.checkpoints and len(args.checkpoints) != len(args.configs):
        return fail(f'--checkpoints takes one entry per config ({len(args.configs)}), got '
                    f'{len(args.checkpoints)}')
    if args.batch_size < 1 or args.repeats < 1 or args.warmup < 0:
        return fail(f'need --batch-size >= 1, --repeats >= 1 and --warmup >= 0, got '
                    f'{args.batch_size}, {args.repeats}, {args.warmup}')
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoints = [None if c in (None, 'none') else c
                   for c in (args.checkpoints or [None] * len(args.configs))]
    try:
        cfgs = [load_config(path) for path in args.configs]
        hw = (args.img_size, ) * 2 if args.img_size else tuple(default_img_size(cfgs[0]))
        torch.manual_seed(0)
        models = {path: build_model(cfg, ckpt) for path, cfg, ckpt in
                  zip(args.configs, cfgs, checkpoints)}
    except (UserError, ValueError, FileNotFoundError) as exc:
        return fail(exc)
    if len(models) != len(args.configs):
        return fail('a config is given twice')
    report = measure(models, args.batch_size, hw, args.repeats, args.warmup, args.clock)
    print(f'{cpu_model_name() or "CPU"}, torch {torch.__version__}, {torch.get_num_threads()} '
          f'threads, {args.clock} clock, fp32, batch {args.batch_size}, {hw[0]}x{hw[1]} px, '
          f'median of {args.repeats} interleaved repeats ({args.warmup} warm-up)')
    print(f'{"config":60s} {"params (M)":>10s} {"GMACs":>8s} {"img/s":>7s} '
          f'{"params":>7s} {"FLOPs":>7s} {"img/s":>7s} {"paired":>7s}')
    for name, e in report.items():
        r = e['ratios']
        print(f'{name[-60:]:60s} {e["params"] / 1e6:10.2f} {e["flops"] / 1e9:8.3f} '
              f'{e["img_per_s"]:7.2f} {r["params"]:7.4f} {r["flops"]:7.4f} '
              f'{r["throughput"]:7.3f} {r["throughput_paired"]:7.3f}')
    if args.out:
        atomic_write_json(args.out, {
            'settings': {'batch_size': args.batch_size, 'img_size': list(hw),
                         'repeats': args.repeats, 'warmup': args.warmup, 'device': 'cpu',
                         'clock': args.clock,
                         'precision': 'fp32', 'num_threads': torch.get_num_threads(),
                         'cpu_model': cpu_model_name(), 'torch': torch.__version__},
            'models': [dict(config=name, checkpoint=ckpt, **entry)
                       for (name, entry), ckpt in zip(report.items(), checkpoints)]})
        print(f'nose_mm: wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
