"""Cost of NOSE selection: prefix-cached vs naive TE evaluation, in one run.

    python tools/analysis/benchmark_selection.py [--arch deit-tiny] [--img-size 32]
        [--patch-size 4] [--num-samples 32] [--batch-size 16] [--num-layers 5]
        [--repeats 3] [--seed 0] [--threads 1]

Builds an mmpretrain ``ImageClassifier`` with a ``VisionTransformer`` backbone
through the registry (random weights: no checkpoints can be downloaded here),
feeds seeded random images and runs the same greedy selection with three
evaluators: naive (a full forward per candidate), cached without and with the
kept best trajectory. The runs are timed interleaved (median of ``--repeats``,
:func:`nose_mm.benchmark.time_interleaved`) so machine load hits all alike; the
process CPU time is reported next to the wall time, and torch runs on one
thread by default (on a shared machine multi-threaded wall times vary
several-fold between identical runs).
Reports the selections (which must agree), the cost in forward-pass
equivalents (blocks computed / (L x N); deterministic), the wall time, the
cached / naive ratios, and the cost the same evaluators would have for the
reference DeiT selection orders of docs/method.md (closed form,
:func:`nose_mm.selection.selection_cost`).
"""
import sys
import time

from nose_mm.utils.cli import ToolParser, UserError, cli_main

# Reference selections (docs/method.md §3), in their published order.
REFERENCE = {'DeiT-B 40% [0,1,3,4,6]': [0, 1, 3, 4, 6],
             'DeiT-S/T 30% [0,2,4,6]': [0, 2, 4, 6]}


@cli_main()
def main(argv=None):
    parser = ToolParser(description='NOSE selection cost benchmark (nose_mm)')
    parser.add_argument('--arch', default='deit-tiny', help='ViT arch (default deit-tiny)')
    parser.add_argument('--img-size', type=int, default=32, help='image size (32)')
    parser.add_argument('--patch-size', type=int, default=4, help='patch size (4)')
    parser.add_argument('--num-samples', '-n', type=int, default=32, help='images (32)')
    parser.add_argument('--batch-size', type=int, default=16, help='batch size (16)')
    parser.add_argument('--num-layers', '-k', type=int, default=5, help='budget K (5)')
    parser.add_argument('--criterion', choices=('abs', 'signed'), default='abs')
    parser.add_argument('--repeats', type=int, default=3, help='timed rounds (3)')
    parser.add_argument('--seed', type=int, default=0, help='seed of weights and images (0)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (1)')
    args = parser.parse_args(argv)

    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import MODELS, init_default_scope
    from mmpretrain.models import VisionTransformer

    import nose_mm  # noqa: F401
    from nose_mm.benchmark import median, time_interleaved
    from nose_mm.selection import (CachedEvaluator, NaiveEvaluator, build_adapter,
                                   greedy_select, selection_cost)

    if args.arch not in VisionTransformer.arch_zoo:
        raise UserError(f'unknown arch {args.arch!r}; allowed: '
                        f'{", ".join(sorted(VisionTransformer.arch_zoo))}')
    torch.set_num_threads(args.threads)
    MMLogger.get_current_instance().setLevel('WARNING')  # quiet init_weights
    init_default_scope('mmpretrain')
    torch.manual_seed(args.seed)
    embed = VisionTransformer.arch_zoo[args.arch]['embed_dims']
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='VisionTransformer', arch=args.arch, img_size=args.img_size,
                      patch_size=args.patch_size),
        head=dict(type='VisionTransformerClsHead', num_classes=100, in_channels=embed)))
    model.init_weights()
    model.eval()
    adapter = build_adapter(model)
    images = torch.randn(args.num_samples, 3, args.img_size, args.img_size,
                         generator=torch.Generator().manual_seed(args.seed))
    batches = list(images.split(args.batch_size))
    L, cands = adapter.num_layers, adapter.candidate_layers
    tokens = model.backbone.patch_resolution[0] * model.backbone.patch_resolution[1] + 1
    print(f'model: {args.arch} ({L} layers, {embed} dims), {args.img_size} px / patch '
          f'{args.patch_size} ({tokens} tokens), N={args.num_samples}, batch '
          f'{args.batch_size}, K={args.num_layers}, {args.criterion} criterion, '
          f'threads={torch.get_num_threads()}, median of {args.repeats}')

    makers = {'naive': lambda: NaiveEvaluator(adapter, batches),
              'cached (no kept trajectory)':
              lambda: CachedEvaluator(adapter, batches, args.criterion, keep_best=False),
              'cached': lambda: CachedEvaluator(adapter, batches, args.criterion)}
    outcome, cpu = {}, {name: [] for name in makers}

    def run(name):
        def fn():
            start = time.process_time()
            evaluator = makers[name]()
            result = greedy_select(evaluator, cands, args.num_layers, criterion=args.criterion)
            cpu[name].append(time.process_time() - start)
            outcome[name] = (result.selection, evaluator.forward_equivalents)
        return fn

    with torch.no_grad():
        adapter.forward(batches[0])  # warm-up
        times = time_interleaved({name: run(name) for name in makers}, repeats=args.repeats,
                                 warmup=0)
    for name in makers:
        sel, fwd = outcome[name]
        print(f'{name:>28}: selection {sel}  {fwd:6.2f} forward-pass equivalents  '
              f'wall {median(times[name]):7.2f} s  cpu {median(cpu[name]):7.2f} s')
    naive_fwd, naive_s = outcome['naive'][1], median(times['naive'])
    naive_cpu = median(cpu['naive'])
    for name in ('cached (no kept trajectory)', 'cached'):
        print(f'{name:>28} / naive: {outcome[name][1] / naive_fwd:.3f} x forward passes, '
              f'{median(times[name]) / naive_s:.3f} x wall time, '
              f'{median(cpu[name]) / naive_cpu:.3f} x cpu time')
    for label, order in REFERENCE.items():
        order = [i for i in order if i in cands][:args.num_layers]
        naive = selection_cost(L, cands, order, 'naive')
        cached = selection_cost(L, cands, order, 'cached')
        print(f'  reference order {label}: cached {cached:.2f} / naive {naive:.2f} = '
              f'{cached / naive:.3f} x forward passes (closed form)')
    same = len({tuple(sel) for sel, _ in outcome.values()}) == 1
    print('selections agree' if same else 'SELECTIONS DIFFER')
    return 0 if same else 1


if __name__ == '__main__':
    sys.exit(main())
