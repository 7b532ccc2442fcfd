"""Convert a checkpoint of the reference code (lambda_vit) to a pruned nose_mm one.

    python tools/convert/lambda_vit_to_nose.py SRC DST [--removed-layers 0 1 3 4 6]
        [--ema] [--no-compensate] [--final] [--trust-checkpoint]

SRC is either as ``main_lambda.py`` saves it (the weights under ``'model'``, or ``'net'``
as ``main_lambda.py --finetune`` also reads) (every block still has ``norm1`` /
``attn``; the removed set is ``args.prune_layer``, or ``--removed-layers``) or
already stripped (the removed blocks have no ``norm1`` / ``attn``). The removed
layers become ``removed_layers`` in DST's meta. Build the model with
the backbone printed (see :func:`nose_mm.models.prune.pruned_backbone_cfg`).
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


def parse_args(argv=None):
    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='lambda_vit checkpoint -> pruned nose_mm')
    parser.add_argument('src', help='reference checkpoint (as main_lambda.py saves it, or a '
                        'stripped state dict)')
    parser.add_output('dst', help='output checkpoint file')
    parser.add_argument('--removed-layers', type=int, nargs='+', metavar='I',
                        help='the removed (pruned) layers; gives or overrides '
                        'args.prune_layer of SRC')
    parser.add_argument('--ema', action='store_true',
                        help='convert the EMA weights (SRC["model_ema"]) instead of SRC["model"]')
    parser.add_argument('--no-compensate', action='store_true',
                        help='the model was trained without residual compensation '
                        '(the reference default is compensated: pruned blocks compute 2 * x)')
    parser.add_argument('--final', action='store_true',
                        help='SRC is a finished model (lambda reached 0 for every removed '
                        'layer); needed, with --removed-layers, when SRC still holds their '
                        'attention and records no epoch')
    add_trust_checkpoint_arg(parser)
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None) -> int:
    args = parse_args(argv)
    from nose_mm.models.convert import convert_lambda_vit
    from nose_mm.models.prune import convert_checkpoint_file, pruned_backbone_cfg
    from nose_mm.checkpoint.reader import apply_trust_checkpoint
    apply_trust_checkpoint(args.trust_checkpoint, named=[args.src])
    converted = convert_checkpoint_file(
        args.src, args.dst,
        lambda ckpt: convert_lambda_vit(ckpt, compensate=not args.no_compensate,
                                        removed_layers=args.removed_layers, ema=args.ema,
                                        final=args.final))
    meta = converted['meta']
    print(f'converted {len(converted["state_dict"])} tensors -> {args.dst} '
          f'(removed_layers={meta["removed_layers"]} from {meta["removed_layers_from"]}); '
          f'backbone: {pruned_backbone_cfg(meta, converted["state_dict"])}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
