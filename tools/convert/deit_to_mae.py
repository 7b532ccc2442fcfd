"""Convert a DeiT / ViT checkpoint into the MAE / BEiT-style backbone of the authors' ADE20k recipe.

    python tools/convert/deit_to_mae.py SRC DST [--img-size 512] [--num-heads N]
        [--no-qv-bias] [--lambda-vit [--removed-layers 0 1 3 4 6] [--ema] [--no-compensate]
        [--final]] [--trust-checkpoint]

SRC: an official / timm DeiT (``{'model': state_dict}``), an mmpretrain / nose_mm
classifier checkpoint (``backbone.*`` keys; NOSE-pruned ones stay pruned, their
``meta['removed_layers']`` kept), or with ``--lambda-vit`` a reference-code (lambda_vit)
checkpoint (as ``tools/convert/lambda_vit_to_nose.py`` reads it). DST holds bare
``NoseMAE`` keys for ``init_cfg=dict(type='Pretrained', checkpoint=DST)``: q/v biases
(``--no-qv-bias``: mmseg MAE's qkv bias), layer scales 1, zero relative position bias
tables and ``pos_embed`` for ``--img-size`` crops; the classifier's final norm and head
are dropped. Other families (DeiT-III, Swin) are refused.
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


def parse_args(argv=None):
    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='DeiT / ViT checkpoint -> NoseMAE (BEiT-style) backbone')
    parser.add_argument('src', help='source checkpoint')
    parser.add_output('dst', help='output checkpoint file')
    parser.add_argument('--img-size', type=int, nargs='+', default=[512],
                        help='segmentation crop, one or two sizes (default: 512)')
    parser.add_argument('--num-heads', type=int, default=None,
                        help='attention heads (default: embed_dims // 64, every DeiT preset)')
    parser.add_argument('--no-qv-bias', action='store_true',
                        help="keep the qkv bias (mmseg's MAE) instead of q/v biases (TinyMIM)")
    parser.add_argument('--lambda-vit', action='store_true',
                        help='SRC is a reference-code (lambda_vit) checkpoint')
    parser.add_argument('--removed-layers', type=int, nargs='+', default=None,
                        help='with --lambda-vit: the removed layers (default: from the file)')
    parser.add_argument('--ema', action='store_true', help="with --lambda-vit: its model_ema")
    parser.add_argument('--no-compensate', action='store_true',
                        help='with --lambda-vit: trained without compensation (as '
                        'tools/convert/lambda_vit_to_nose.py)')
    parser.add_argument('--final', action='store_true',
                        help='with --lambda-vit: SRC is a finished model (lambda = 0), as '
                        'tools/convert/lambda_vit_to_nose.py --final')
    add_trust_checkpoint_arg(parser)
    args = parser.parse_args(argv)
    if len(args.img_size) > 2:
        parser.error(f'--img-size takes one or two sizes, got {args.img_size}')
    if not args.lambda_vit and (args.removed_layers is not None or args.ema or
                                args.no_compensate or args.final):
        parser.error('--removed-layers, --ema, --no-compensate and --final go with '
                     '--lambda-vit')
    return args


def to_vit_checkpoint(checkpoint: dict, args) -> dict:
    """SRC as a ViT-family checkpoint with mmpretrain keys."""
    from nose_mm.models.convert import (convert_deit_checkpoint, convert_lambda_vit,
                                        unwrap_state_dict)
    if args.lambda_vit:
        return convert_lambda_vit(checkpoint, compensate=not args.no_compensate,
                                  removed_layers=args.removed_layers, ema=args.ema,
                                  final=args.final)
    state_dict = unwrap_state_dict(checkpoint)
    if any(k.startswith('backbone.') for k in state_dict):
        return {'state_dict': state_dict, 'meta': checkpoint.get('meta') or {}}
    return convert_deit_checkpoint(checkpoint)


@cli_main(*INPUT_ERRORS)
def main(argv=None) -> int:
    args = parse_args(argv)
    from nose_mm.checkpoint.reader import apply_trust_checkpoint
    from nose_mm.models.backbones.nose_mae import convert_vit_to_mae
    from nose_mm.models.prune import convert_checkpoint_file
    apply_trust_checkpoint(args.trust_checkpoint, named=[args.src])
    size = args.img_size * 2 if len(args.img_size) == 1 else args.img_size
    converted = convert_checkpoint_file(
        args.src, args.dst, lambda ckpt: convert_vit_to_mae(
            to_vit_checkpoint(ckpt, args), img_size=size, num_heads=args.num_heads,
            qv_bias=not args.no_qv_bias))
    meta = converted['meta']
    print(f'converted {len(converted["state_dict"])} tensors -> {args.dst} (NoseMAE, '
          f'img_size={meta["img_size"]}, num_heads={meta["num_heads"]}, '
          f'qv_bias={meta["qv_bias"]}, removed_layers={meta["removed_layers"]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
