"""Prune a dilution-trained checkpoint: drop LN1 + attention of layers trained to lam = 0.

Works for every backbone family (ViT / DeiT / DeiT-III keys ``layers.{i}.ln1/attn``,
Swin keys ``stages.{s}.blocks.{j}.norm1/attn`` with global layer indices, MAE / BEiT keys
``layers.{i}.ln1/attn/gamma_1``), read from
the keys by ``nose_mm.models.layouts``.

    python tools/prune.py CKPT OUT [--layers 0 2 4] [--prefix backbone.] [--trust-checkpoint]

CKPT is a Runner-saved checkpoint of a run with ``DilutionHook`` (its meta records
``dilution_lam``). Checkpoints saved while lam > 0 are refused: their attention
layers still contribute. OUT holds ``state_dict`` and ``meta``; the backbone it
loads into is printed (:func:`nose_mm.models.prune.pruned_backbone_cfg`).
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


def parse_args(argv=None):
    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='Prune a lam = 0 dilution checkpoint')
    parser.add_argument('checkpoint', help='Runner-saved checkpoint trained to lam = 0')
    parser.add_output('out', help='output checkpoint file')
    parser.add_argument('--layers', type=int, nargs='+',
                        help='layers to prune (default: all diluted layers in the meta)')
    parser.add_argument('--prefix', default='backbone.',
                        help='prefix of the backbone keys (default: backbone.)')
    add_trust_checkpoint_arg(parser)
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None) -> int:
    args = parse_args(argv)
    from nose_mm.models.prune import (convert_checkpoint_file, prune_checkpoint,
                                      pruned_backbone_cfg)
    from nose_mm.checkpoint.reader import apply_trust_checkpoint
    apply_trust_checkpoint(args.trust_checkpoint, named=[args.checkpoint])
    pruned = convert_checkpoint_file(
        args.checkpoint, args.out,
        lambda ckpt: prune_checkpoint(ckpt, args.layers, args.prefix))
    meta = pruned['meta']
    print(f'pruned layers {meta["pruned_layers"]} -> {args.out}; backbone: '
          f'{pruned_backbone_cfg(meta, pruned["state_dict"], args.prefix)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
