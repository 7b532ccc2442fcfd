"""Export a config's model (pruned, baseline, NOSE + ToMe, UperNet) to ONNX and check it.

    python tools/deploy/export.py CONFIG [CHECKPOINT] --out MODEL.onnx
        [--part model|backbone] [--img-size H [W]] [--no-check] [--atol 1e-4] [--rtol 1e-4]
        [--trust-checkpoint] [--cfg-options k=v ...]

Writes MODEL.onnx (opset 17, dynamic batch; the description below in its metadata,
key ``nose_mm``) and MODEL.json beside it (both atomically): the model, its removed
layers, the preprocessing a deployer must apply (mean / std, channel order, input
size, the config's test pipeline), the exporter, the graph's attention node counts
and the check. The check runs the file once in onnxruntime on a random batch of
another size than the export's and compares with PyTorch: it passes when
max |onnxruntime - torch| <= atol + rtol * max |torch|; otherwise the tool exits
with status 2 naming the largest difference: MODEL.onnx / MODEL.json are left as
they were, the failed export is kept as MODEL.check-failed.onnx / .json.
Weights are random without CHECKPOINT. What is exported is what
``tools/benchmark.py`` times (``benchmarks/README.md``); details: ``docs/deploy.md``.
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, UserError, cli_main


def parse_args(argv=None):
    from mmengine.config import DictAction

    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='Export a model to ONNX and check it (nose_mm)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (random weights if omitted)')
    parser.add_output('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--part', choices=('model', 'backbone'), default='model',
                        help='export the whole model (default) or its backbone')
    parser.add_argument('--img-size', type=int, nargs='+', metavar='PX',
                        help='input size: one side or H W (default: the config\'s test size)')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the onnxruntime comparison with PyTorch')
    parser.add_argument('--atol', type=float, default=None, help='absolute tolerance (1e-4)')
    parser.add_argument('--rtol', type=float, default=None,
                        help='tolerance relative to max |output| (1e-4)')
    parser.add_argument('--threads', type=int, help='torch intra-op threads')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.token_merge.r=4')
    add_trust_checkpoint_arg(parser)
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None):
    args = parse_args(argv)
    import os.path as osp

    import torch

    from nose_mm.checkpoint.reader import apply_trust_checkpoint
    from nose_mm.deploy import ATOL, RTOL, export_config
    from nose_mm.utils.config import load_config

    apply_trust_checkpoint(args.trust_checkpoint, named=[args.checkpoint])
    if args.img_size and len(args.img_size) not in (1, 2):
        raise UserError(f'--img-size takes one side or H W, got {args.img_size}')
    if any(s <= 0 for s in args.img_size or []):
        raise UserError(f'--img-size must be positive, got {args.img_size}')
    for flag, value in (('--atol', args.atol), ('--rtol', args.rtol)):
        if value is not None and not value >= 0:
            raise UserError(f'{flag} must be a number >= 0, got {value}')
    if args.checkpoint and '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise UserError(f'checkpoint {args.checkpoint!r} does not exist')
    if args.threads:
        torch.set_num_threads(args.threads)
    img_size = None
    if args.img_size:
        img_size = args.img_size * 2 if len(args.img_size) == 1 else args.img_size
    cfg = load_config(args.config, args.cfg_options)
    atol = ATOL if args.atol is None else args.atol
    rtol = RTOL if args.rtol is None else args.rtol
    result = export_config(cfg, args.checkpoint, args.out, part=args.part, img_size=img_size,
                           check=not args.no_check, atol=atol, rtol=rtol)
    meta, nodes = result.metadata, result.nodes
    pre = meta['preprocessing']
    print(f'nose_mm: wrote {result.onnx} and {result.sidecar}: {meta["model"]["display"]}, '
          f'removed layers {meta["removed_layers"]}, input {pre["input"]["shape"]} '
          f'(mean {pre["mean"]}, std {pre["std"]}, channels {pre["channel_order"]}); graph: '
          f'{nodes["softmax"]} Softmax, {nodes["attention_matmul"]} attention MatMul, '
          f'{nodes["nodes"]} nodes')
    if result.check is not None:
        c = result.check
        print(f'nose_mm: check passed: onnxruntime vs PyTorch, batch {c.batch_size}: largest '
              f'difference {c.max_abs_diff:.3g} <= tolerance {c.tolerance:.3g} (atol {atol:g} '
              f'+ rtol {rtol:g} x max |output| {c.max_abs_ref:.3g})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
