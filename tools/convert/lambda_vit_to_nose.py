"""Convert a pruned checkpoint of the reference code (lambda_vit) to nose_mm.

    python tools/convert/lambda_vit_to_nose.py SRC DST [--no-compensate] [--trust-checkpoint]

The reference's pruned blocks have no ``norm1`` / ``attn`` weights; they become
``removed_layers`` in DST's meta (the backbone to load DST into is printed, see
:func:`nose_mm.models.prune.pruned_backbone_cfg`).
"""
import argparse
import sys

from nose_mm.utils.cli import INPUT_ERRORS, cli_main


def parse_args(argv=None):
    from nose_mm.utils.safe_load import add_trust_checkpoint_arg
    parser = argparse.ArgumentParser(description='lambda_vit pruned checkpoint -> nose_mm')
    parser.add_argument('src', help='source checkpoint ({"model": state_dict} or a state dict)')
    parser.add_argument('dst', help='output checkpoint file')
    parser.add_argument('--no-compensate', action='store_true',
                        help='the model was trained without residual compensation '
                        '(the reference default is compensated: pruned blocks compute 2 * x)')
    add_trust_checkpoint_arg(parser)
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None) -> int:
    args = parse_args(argv)
    from nose_mm.models.convert import convert_lambda_vit
    from nose_mm.models.prune import convert_checkpoint_file, pruned_backbone_cfg
    from nose_mm.utils.safe_load import apply_trust_checkpoint
    apply_trust_checkpoint(args.trust_checkpoint)
    converted = convert_checkpoint_file(
        args.src, args.dst,
        lambda ckpt: convert_lambda_vit(ckpt, compensate=not args.no_compensate))
    print(f'converted {len(converted["state_dict"])} tensors -> {args.dst}; backbone: '
          f'{pruned_backbone_cfg(converted["meta"])}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
