"""Select attention layers to dilute (NOSE or a baseline) and write selection.json.

    python tools/nose_select.py CONFIG [CHECKPOINT] --num-layers K [--num-samples N]
        [--method {nose,random,first,attn_entropy,cosine}] [--criterion {abs,signed}]
        [--batch-size B] [--seed S] [--features {head_input,logits,seg_logits,dense}]
        [--evaluator {cached,naive}] [--skip-mode {identity,compensated}]
        [--split {train,val}] [--calibration-images {keep,stream}]
        [--preset {default,reference}] [--device DEV] [--out selection.json]
        [--trust-checkpoint] [--cfg-options k=v ...]

Calibration images are N images of the config's *training* dataset (test data
is assumed unavailable) run through the config's test pipeline, so they are
deterministic, or with ``--split val`` of its val dataset (as the reference
code measured); the subset is drawn with --seed. ``--skip-mode compensated``
measures TE as the reference did (a skipped attention leaves 2x, not x);
``--preset reference`` sets every setting of the reference's probe (compensated skips,
49,920 val images, head input; see nose_mm/selection/presets.py), single flags still
override it.
A segmentation config (mmseg ``EncoderDecoder``) selects on the task: ``--features
seg_logits`` (the decode head's per-pixel output; a trained segmentor's checkpoint)
or ``--features dense`` (the backbone's out_indices features; without CHECKPOINT,
the backbone the config initialises, e.g. ImageNet-pretrained), on images of its
training split. Give the written file to a
training config with ``custom_hooks = [dict(type='NoseSelectionHook',
selection_file='selection.json')]`` or read it with
``nose_mm.selection.load_selection``.
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


def parse_args(argv=None):
    from mmengine.config import DictAction

    from nose_mm.selection.presets import PRESETS
    from nose_mm.selection.settings import add_selection_args
    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='NOSE attention-layer selection (nose_mm)')
    parser.add_argument('config', help='model config file (its train dataset calibrates)')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='pre-trained checkpoint matching the config; omitted with '
                        '--features dense: the backbone as the config initialises it '
                        '(model.backbone.init_cfg, e.g. ImageNet-pretrained)')
    parser.add_argument('--preset', choices=tuple(PRESETS), default='default',
                        help='the settings\' defaults: docs/method.md\'s definition (default) '
                        'or the reference code\'s probe (reference); other flags override it')
    add_selection_args(parser)
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    parser.add_argument('--num-workers', type=int, default=0, help='data loader workers')
    parser.add_output('--out', default='selection.json', help='output JSON file')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_dataloader.dataset.'
                        'data_root=data/cifar100')
    add_trust_checkpoint_arg(parser)
    known, _ = parser.parse_known_args(argv)
    if known.preset in PRESETS:  # the preset's settings become the flags' defaults
        parser.set_defaults(**PRESETS[known.preset])
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None):
    args = parse_args(argv)
    import torch

    from nose_mm.selection import (preset_record, save_selection, select_from_config,
                                   settings_from_args)
    from nose_mm.selection.loading import check_calibration_data
    from nose_mm.utils.config import load_config
    from nose_mm.checkpoint.reader import apply_trust_checkpoint

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    settings = settings_from_args(args)
    cfg = load_config(args.config, args.cfg_options)
    apply_trust_checkpoint(args.trust_checkpoint, [args.checkpoint], cfg)
    check_calibration_data(cfg, settings.split)
    record = select_from_config(cfg, args.checkpoint, settings=settings, device=device,
                                num_workers=args.num_workers, progress=not args.no_progress)
    record.update(preset_record(args.preset, settings))
    save_selection(args.out, record)
    cost = record['cost'] or {}
    data = f'{record["num_samples"]} {record["split"]} images, ' if record['split'] else ''
    print(f'{record["method"]} selection of {record["num_layers"]} / {record["total_layers"]} '
          f'layers: {record["selection"]}  ({data}'
          f'{cost.get("forward_equivalents", 0):.2f} forward-pass equivalents, '
          f'{record["timing"]["total_s"]:.1f} s) -> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
