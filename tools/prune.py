"""Prune a dilution-trained checkpoint: drop LN1 + attention of layers trained to lam = 0.

Works for every backbone family (ViT / DeiT / DeiT-III keys ``layers.{i}.ln1/attn``,
Swin keys ``stages.{s}.blocks.{j}.norm1/attn`` with global layer indices), read from
the keys by ``nose_mm.models.layouts``.

    python tools/prune.py CKPT OUT [--layers 0 2 4] [--prefix backbone.]

CKPT is a Runner-saved checkpoint of a run with ``DilutionHook`` (its meta records
``dilution_lam``). Checkpoints saved while lam > 0 are refused: their attention
layers still contribute. OUT holds ``state_dict`` and ``meta`` (with
``removed_layers``); build the model with
``backbone=dict(type='NoseVisionTransformer', removed_layers=<meta removed_layers>,
compensate=<meta dilution_compensate>)`` (or ``NoseDeiT3`` / ``NoseSwinTransformer``).
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Prune a lam = 0 dilution checkpoint')
    parser.add_argument('checkpoint', help='Runner-saved checkpoint trained to lam = 0')
    parser.add_argument('out', help='output checkpoint file')
    parser.add_argument('--layers', type=int, nargs='+',
                        help='layers to prune (default: all diluted layers in the meta)')
    parser.add_argument('--prefix', default='backbone.',
                        help='prefix of the backbone keys (default: backbone.)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from nose_mm.models.prune import convert_checkpoint_file, prune_checkpoint
    try:
        pruned = convert_checkpoint_file(
            args.checkpoint, args.out,
            lambda ckpt: prune_checkpoint(ckpt, args.layers, args.prefix))
    except (OSError, ValueError) as e:
        print(f'prune.py: error: {e}', file=sys.stderr)
        return 1
    meta = pruned['meta']
    print(f'pruned layers {meta["pruned_layers"]} -> {args.out} '
          f'(removed_layers={meta["removed_layers"]}, '
          f'compensate={meta["dilution_compensate"]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
