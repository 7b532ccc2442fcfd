"""Check an ONNX file against a config's model and checkpoint (does it compute them?).

    python tools/deploy/check.py MODEL.onnx CONFIG [CHECKPOINT] [--batch-size 3]
        [--part model|backbone] [--atol 1e-4] [--rtol 1e-4] [--trust-checkpoint]
        [--cfg-options k=v ...]

Runs MODEL.onnx once in onnxruntime on a random batch at the graph's input size and
compares it with the PyTorch model built from CONFIG (and CHECKPOINT): passes when
max |onnxruntime - torch| <= atol + rtol * max |torch|, else exits with status 2
naming the largest difference. ``tools/deploy/export.py`` runs the same check after
exporting; this tool re-checks a file later (another checkpoint, another machine).
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, UserError, cli_main


def parse_args(argv=None):
    from mmengine.config import DictAction

    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='Check an ONNX export against PyTorch (nose_mm)')
    parser.add_argument('onnx', help='the .onnx file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (random weights if omitted)')
    parser.add_argument('--batch-size', type=int, default=3, help='batch of the check (3)')
    parser.add_argument('--part', choices=('model', 'backbone'), default='model',
                        help='the file holds the whole model (default) or its backbone')
    parser.add_argument('--atol', type=float, default=None, help='absolute tolerance (1e-4)')
    parser.add_argument('--rtol', type=float, default=None,
                        help='tolerance relative to max |output| (1e-4)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    add_trust_checkpoint_arg(parser)
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None):
    args = parse_args(argv)
    import os.path as osp

    import onnx

    from nose_mm.benchmark.info import build_model
    from nose_mm.checkpoint.reader import apply_trust_checkpoint
    from nose_mm.deploy import ATOL, RTOL, check_onnx
    from nose_mm.deploy.export import example_inputs
    from nose_mm.utils.config import load_config

    apply_trust_checkpoint(args.trust_checkpoint, named=[args.checkpoint])
    if not osp.isfile(args.onnx):
        raise UserError(f'ONNX file {args.onnx!r} does not exist')
    if args.batch_size < 1:
        raise UserError(f'--batch-size must be >= 1, got {args.batch_size}')
    for flag, value in (('--atol', args.atol), ('--rtol', args.rtol)):
        if value is not None and not value >= 0:
            raise UserError(f'{flag} must be a number >= 0, got {value}')
    if args.checkpoint and '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise UserError(f'checkpoint {args.checkpoint!r} does not exist')
    try:
        graph = onnx.load(args.onnx, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf / onnx raise several types
        raise UserError(f'{args.onnx!r} is not an ONNX model ({exc})') from None
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField('dim_value') else None for d in dims]
    if len(shape) != 4 or None in shape[1:]:
        raise UserError(f'{args.onnx!r}: input shape {shape}: expected (batch, C, H, W) with '
                        f'fixed C, H, W (a file written by tools/deploy/export.py)')
    model = build_model(load_config(args.config, args.cfg_options), args.checkpoint,
                        part=args.part)
    atol = ATOL if args.atol is None else args.atol
    rtol = RTOL if args.rtol is None else args.rtol
    c = check_onnx(args.onnx, model, example_inputs(shape[1], tuple(shape[2:]), args.batch_size),
                   atol, rtol)
    print(f'nose_mm: check passed: {args.onnx} vs PyTorch, batch {c.batch_size}: largest '
          f'difference {c.max_abs_diff:.3g} <= tolerance {c.tolerance:.3g}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
