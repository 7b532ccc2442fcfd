"""Convert an official / timm ViT, DeiT, DeiT-III or Swin checkpoint to mmpretrain keys.

    python tools/convert/deit_to_mmpretrain.py SRC DST [--trust-checkpoint]

SRC: ``{'model': state_dict}`` (facebookresearch/deit, microsoft/Swin-Transformer
releases), a timm state dict, or ``{'state_dict': ...}``. The family is read from the
keys (an unknown layout is refused). DST loads with ``load_from`` into an
``ImageClassifier`` with the backbone named in its ``meta['backbone']``
(``NoseVisionTransformer`` / ``NoseDeiT3`` + ``VisionTransformerClsHead``;
``NoseSwinTransformer`` + ``GlobalAveragePooling`` + ``LinearClsHead``) or with
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``.
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


def parse_args(argv=None):
    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(
        description='timm / official ViT, DeiT, DeiT-III or Swin -> mmpretrain checkpoint')
    parser.add_argument('src', help='source checkpoint')
    parser.add_output('dst', help='output checkpoint file')
    add_trust_checkpoint_arg(parser)
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None) -> int:
    args = parse_args(argv)
    from nose_mm.models.convert import convert_deit_checkpoint
    from nose_mm.models.prune import convert_checkpoint_file
    from nose_mm.checkpoint.reader import apply_trust_checkpoint
    apply_trust_checkpoint(args.trust_checkpoint, named=[args.src])
    converted = convert_checkpoint_file(args.src, args.dst, convert_deit_checkpoint)
    meta = converted['meta']
    print(f'converted {len(converted["state_dict"])} tensors -> {args.dst} '
          f'({meta["converted_from"]}: build backbone type {meta["backbone"]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
