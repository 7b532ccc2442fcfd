"""Speed, FLOPs and parameters of pruned DeiTs against their unpruned baselines (CPU, fp32).

    python tools/analysis/benchmark_prune.py [--models deit-small deit-base]
        [--batch-size 4] [--repeats 5] [--train-model deit-small] [--train-batch-size 4]
        [--train-repeats 3] [--threads 1] [--clock {process,wall}]

For each model: the unpruned classifier and the pruned one (reference layer sets:
DeiT-S [0, 2, 4], DeiT-B [0, 1, 3, 4, 6]) with random weights; forward throughput
(images/s, median of interleaved repeats, one process), FLOPs (multiply-adds, the
attention matrix products included, see nose_mm.benchmark.flops) and parameters.
Then one training step (forward, backward, AdamW) of the diluted model at lam = 0
against the pruned model: at lam = 0 the diluted model skips its attention, so the
two should take about the same time (the diluted model keeps its attention
parameters, but they get no gradient at lam = 0 and AdamW skips them).
By default one thread is timed with the process's CPU clock, which other processes on
a busy machine barely disturb (wall-clock timings with all cores are available with
``--threads N --clock wall``). The ratios are what matters. Each ratio is
printed three ways: ratio of the medians, median of the per-round ratios (rounds are
interleaved, so both variants of a round see about the same load) and ratio of the
best times.
"""
import sys
import time

from nose_mm.utils.cli import ToolParser, cli_main

REFERENCE_LAYERS = {
    'deit-tiny': [0, 2, 4],
    'deit-small': [0, 2, 4],
    'deit-base': [0, 1, 3, 4, 6],
}
DIMS = {'deit-tiny': 192, 'deit-small': 384, 'deit-base': 768}


def parse_args(argv=None):
    parser = ToolParser(description='Benchmark pruned vs unpruned DeiT (CPU)')
    parser.add_argument('--models', nargs='+', default=['deit-small', 'deit-base'],
                        choices=sorted(REFERENCE_LAYERS))
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=5, help='timed forward rounds')
    parser.add_argument('--train-model', default='deit-small',
                        choices=sorted(REFERENCE_LAYERS) + ['none'])
    parser.add_argument('--train-batch-size', type=int, default=4)
    parser.add_argument('--train-repeats', type=int, default=3, help='timed training steps')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (default: 1, see --clock)')
    parser.add_argument('--clock', choices=['wall', 'process'], default='process',
                        help='CPU time of this process (default; steady on a busy machine, '
                        'but only meaningful with --threads 1, as idle worker threads spin) '
                        'or wall time')
    return parser.parse_args(argv)


def build_classifier(arch, **backbone):
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='NoseVisionTransformer', arch=arch, **backbone),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=1000, in_channels=DIMS[arch])))


@cli_main()
def main(argv=None):
    args = parse_args(argv)
    import torch

    import nose_mm  # noqa: F401
    from nose_mm.benchmark import count_flops, count_params, median, paired_ratio, time_interleaved
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == 'wall' else time.process_time
    torch.manual_seed(0)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, '
          f'fp32, CPU, '
          f'batch {args.batch_size}, {args.img_size} px, median of {args.repeats} '
          f'interleaved repeats')
    for arch in args.models:
        layers = REFERENCE_LAYERS[arch]
        models = {'baseline': build_classifier(arch),
                  'pruned': build_classifier(arch, removed_layers=layers)}
        one = torch.randn(1, 3, args.img_size, args.img_size)
        stats = {}
        for name, model in models.items():
            model.eval()
            stats[name] = dict(flops=count_flops(model, (one, )), params=count_params(model))
        x = torch.randn(args.batch_size, 3, args.img_size, args.img_size)

        def forward(model):
            def run():
                with torch.no_grad():
                    model(x, mode='tensor')
            return run

        times = time_interleaved({n: forward(m) for n, m in models.items()},
                                 repeats=args.repeats, clock=clock)
        for name in models:
            stats[name]['ips'] = args.batch_size / median(times[name])
        base, pruned = stats['baseline'], stats['pruned']
        print(f'\n{arch} pruned {layers}:')
        for name, s in stats.items():
            print(f'  {name:9s} {s["params"] / 1e6:7.2f} M params  {s["flops"] / 1e9:6.3f} '
                  f'GMACs  {s["ips"]:7.2f} img/s')
        print(f'  params ratio {pruned["params"] / base["params"]:.4f} '
              f'(-{base["params"] - pruned["params"]:,} = '
              f'{(base["params"] - pruned["params"]) // len(layers):,} per layer)')
        print(f'  FLOP ratio   {pruned["flops"] / base["flops"]:.4f} '
              f'(-{(base["flops"] - pruned["flops"]) / len(layers) / 1e9:.3f} GMACs per layer)')
        print(f'  throughput ratio (pruned / baseline): {pruned["ips"] / base["ips"]:.3f} '
              f'(ratio of medians), {paired_ratio(times, "baseline", "pruned"):.3f} '
              f'(median of per-round ratios), '
              f'{min(times["baseline"]) / min(times["pruned"]):.3f} (best times)')
        del models

    if args.train_model == 'none':
        return
    arch = args.train_model
    layers = REFERENCE_LAYERS[arch]
    models = {'diluted lam=0': build_classifier(arch, diluted_layers=layers, init_lam=0.0),
              'pruned': build_classifier(arch, removed_layers=layers)}
    x = torch.randn(args.train_batch_size, 3, args.img_size, args.img_size)
    y = torch.randint(0, 1000, (args.train_batch_size, ))

    def step(model):
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

        def run():
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x, mode='tensor'), y)
            loss.backward()
            optimizer.step()
        return run

    times = time_interleaved({n: step(m) for n, m in models.items()},
                             repeats=args.train_repeats, clock=clock)
    med = {n: median(t) for n, t in times.items()}
    print(f'\ntraining step, {arch} layers {layers}, batch {args.train_batch_size}, '
          f'median of {args.train_repeats}:')
    for name, t in med.items():
        print(f'  {name:14s} {t:.3f} s/step')
    print(f'  step-time ratio (diluted lam=0 / pruned): '
          f'{med["diluted lam=0"] / med["pruned"]:.3f} (ratio of medians), '
          f'{paired_ratio(times, "diluted lam=0", "pruned"):.3f} (median of per-round ratios), '
          f'{min(times["diluted lam=0"]) / min(times["pruned"]):.3f} (best times)')


if __name__ == '__main__':
    sys.exit(main())
