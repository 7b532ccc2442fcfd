"""Params, FLOPs, throughput and peak memory of a config's model, or of N timed in one run.

    python tools/benchmark.py CONFIG [CHECKPOINT] [--compare CONFIG2 [CHECKPOINT2]]
        [--compare CONFIG3 [CHECKPOINT3] ...]
        [--batch-size 8] [--img-size H [W]] [--device cpu|cuda] [--amp]
        [--repeats 5] [--warmup 2] [--clock wall|process] [--part model|backbone]
        [--memory-budget-gb GB] [--train-memory] [--memory-optimizer sgd|adamw]
        [--attention [fused] [math]] [--threads N] [--no-memory]
        [--runtime torch [torch.compile onnxruntime openvino]]
        [--out FILE.json] [--trust-checkpoint] [--cfg-options k=v ...]

What is measured: classification configs, the classifier (backbone, neck,
head) up to the logits; segmentation configs, the whole ``EncoderDecoder`` in
``mode='tensor'`` (backbone, neck, decode head; no auxiliary head, no
resizing; one window of slide inference), or its backbone alone with
``--part backbone``, at the config's test size (segmentation: the slide
window or the crop). Inputs are random pre-processed batches; weights are
random unless a checkpoint is given. FLOPs are multiply-accumulates per image,
attention products included. Throughput: the median img/s over ``--repeats``
timed forwards (every repeat is in the JSON); each ``--compare`` adds a model,
all are timed interleaved in this one process, and each is reported as a ratio
to the first (median and interquartile range of the per-round ratios).
``--clock process`` times this process's CPU time (use with ``--threads 1``).
``--runtime`` times every model in each runtime named (eager torch, ``torch.compile``,
the ONNX export in onnxruntime or OpenVINO; ``nose_mm.deploy.runtimes``), all pairs
interleaved in the same rounds; each ratio is to the first model in the same runtime.
``--amp`` runs under autocast: fp16 on CUDA, bf16 on CPU. Memory: CUDA's
allocator peak on GPUs; tracked tensor bytes of fake-tensor steps on every
device, per attention path (``nose_mm/benchmark/memory.py``). ``--out
WORK_DIR/benchmark.json`` next to a run's results.json puts img/s and memory
on the leaderboard (tools/leaderboard.py).
"""
import os.path as osp
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, UserError, cli_main, is_out_of_memory


def parse_args(argv=None):
    from mmengine.config import DictAction

    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='Benchmark a model (nose_mm)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (random weights if omitted)')
    parser.add_argument('--compare', nargs='+', action='append', metavar=('CONFIG2', 'CHECKPOINT2'),
                        help='another config (and checkpoint) to time with the first; repeat '
                        'for more models')
    parser.add_argument('--batch-size', type=int, default=8, help='images per forward')
    parser.add_argument('--img-size', type=int, nargs='+', metavar='PX',
                        help='input size: one side or H W (default: the config\'s)')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda[:N] (default: cuda if available, else cpu)')
    parser.add_argument('--amp', action='store_true',
                        help='autocast: fp16 on CUDA, bf16 on CPU (default fp32)')
    parser.add_argument('--repeats', type=int, default=5, help='timed forwards')
    parser.add_argument('--warmup', type=int, default=2, help='untimed forwards first')
    parser.add_argument('--clock', choices=('wall', 'process'), default='wall',
                        help='wall time (default) or CPU time of this process (with '
                        '--threads 1)')
    parser.add_argument('--part', choices=('model', 'backbone'), default='model',
                        help='measure the whole model or its backbone')
    parser.add_argument('--memory-budget-gb', type=float,
                        help='also find the largest batch whose step fits this memory (the '
                        'working load): CUDA allocator on GPUs, tracked tensor bytes always')
    parser.add_argument('--memory-optimizer', choices=('sgd', 'adamw'),
                        help='count this optimizer\'s state in the training step '
                        '(--train-memory)')
    parser.add_argument('--attention', nargs='*', choices=('fused', 'math'),
                        default=['fused', 'math'],
                        help='attention paths of the tracked memory (default both; none: '
                        'skip tracking on CUDA)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory step')
    parser.add_argument('--train-memory', action='store_true',
                        help='peak memory / largest batch of a training step (forward + '
                        'backward) instead of an inference forward')
    parser.add_argument('--runtime', nargs='+', default=['torch'], metavar='RUNTIME',
                        help='time every model in each runtime, interleaved in the same '
                        'rounds: torch (default), torch.compile, onnxruntime, openvino '
                        '(ratios only within a runtime)')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (and those of '
                        'onnxruntime / OpenVINO)')
    parser.add_output('--out', help='write the report to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config, e.g. model.backbone.arch=x')
    add_trust_checkpoint_arg(parser)
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None):
    args = parse_args(argv)
    import torch

    from nose_mm.benchmark import amp_precision, format_report, run_benchmark
    from nose_mm.utils.config import load_config
    from nose_mm.checkpoint.reader import apply_trust_checkpoint

    # the bare flag trusts CHECKPOINT; a --compare checkpoint only when named itself
    apply_trust_checkpoint(args.trust_checkpoint, named=[args.checkpoint])

    compares = args.compare or []
    for values in compares:
        if len(values) > 2:
            raise UserError(f'--compare takes CONFIG [CHECKPOINT], got {len(values)} values: '
                            f'{" ".join(values)}')
    if args.img_size and len(args.img_size) not in (1, 2):
        raise UserError(f'--img-size takes one side or H W, got {args.img_size}')
    from nose_mm.benchmark.records import RUNTIMES
    for runtime in args.runtime:
        if runtime not in RUNTIMES:
            raise UserError(f'--runtime {runtime!r}: allowed are {", ".join(RUNTIMES)}')
    if len(set(args.runtime)) != len(args.runtime):
        raise UserError(f'--runtime names a runtime twice: {" ".join(args.runtime)}')
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f'--threads must be a whole number >= 1 (torch intra-op threads), '
                            f'got {args.threads}')
        torch.set_num_threads(args.threads)
    if args.clock == 'process' and torch.get_num_threads() > 1:
        print(f'nose_mm: warning: --clock process sums the CPU time of all '
              f'{torch.get_num_threads()} torch threads, so it is not the time of one forward; '
              f'use --threads 1 with it, or --clock wall', file=sys.stderr)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    img_size = None
    if args.img_size:
        img_size = args.img_size * 2 if len(args.img_size) == 1 else args.img_size
    models = [(args.config, args.checkpoint)] + [
        (values[0], values[1] if len(values) > 1 else None) for values in compares]
    for _, ckpt in models:
        if ckpt and '://' not in ckpt and not osp.isfile(ckpt):
            raise UserError(f'checkpoint {ckpt!r} does not exist')
    configs = [(load_config(path, args.cfg_options), ckpt) for path, ckpt in models]
    try:
        report = run_benchmark(
            configs, batch_size=args.batch_size, img_size=img_size, device=device,
            precision=amp_precision(device) if args.amp else 'fp32', warmup=args.warmup,
            repeats=args.repeats, part=args.part, memory_budget_gb=args.memory_budget_gb,
            memory=not args.no_memory, memory_train=args.train_memory, clock=args.clock,
            memory_optimizer=args.memory_optimizer, attention=args.attention,
            runtimes=args.runtime)
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise UserError(f'--batch-size {args.batch_size} does not fit in {device} memory; '
                        f'pass a smaller one, e.g. --batch-size {max(1, args.batch_size // 2)}'
                        ) from exc
    print(format_report(report))
    if args.out:
        report.save(args.out)
        print(f'nose_mm: wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
