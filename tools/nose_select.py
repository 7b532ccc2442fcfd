"""Select attention layers to dilute (NOSE or a baseline) and write selection.json.

    python tools/nose_select.py CONFIG CHECKPOINT --num-layers K [--num-samples N]
        [--method {nose,random,first,attn_entropy,cosine}] [--criterion {abs,signed}]
        [--batch-size B] [--seed S] [--features {head_input,logits}]
        [--evaluator {cached,naive}] [--device DEV] [--out selection.json]
        [--trust-checkpoint] [--cfg-options k=v ...]

Calibration images are N images of the config's *training* dataset (test data
is assumed unavailable) run through the config's test pipeline, so they are
deterministic; the subset is drawn with --seed. Give the written file to a
training config with ``custom_hooks = [dict(type='NoseSelectionHook',
selection_file='selection.json')]`` or read it with
``nose_mm.selection.load_selection``.
"""
import argparse
import sys

METHODS = ('nose', 'random', 'first', 'attn_entropy', 'cosine')


def parse_args(argv=None):
    from mmengine.config import DictAction

    from nose_mm.utils.safe_load import add_trust_checkpoint_arg
    parser = argparse.ArgumentParser(description='NOSE attention-layer selection (nose_mm)')
    parser.add_argument('config', help='model config file (its train dataset calibrates)')
    parser.add_argument('checkpoint', help='pre-trained checkpoint matching the config')
    parser.add_argument('--num-layers', '-k', type=int, required=True,
                        help='number of attention layers to select (K)')
    parser.add_argument('--num-samples', '-n', type=int, default=256,
                        help='calibration images N (default: 256)')
    parser.add_argument('--method', choices=METHODS, default='nose',
                        help='selection method (default: nose)')
    parser.add_argument('--criterion', choices=('abs', 'signed'), default='abs',
                        help='NOSE: smallest |TE| (abs) or smallest TE (signed) (default: abs)')
    parser.add_argument('--batch-size', type=int, default=32,
                        help='calibration batch size (default: 32)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the calibration subset and the random baseline')
    parser.add_argument('--features', choices=('head_input', 'logits'), default='head_input',
                        help='entropy of what the head reads (default) or of the logits')
    parser.add_argument('--evaluator', choices=('cached', 'naive'), default='cached',
                        help='TE evaluation with the prefix cache (default) or full passes')
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    parser.add_argument('--num-workers', type=int, default=0, help='data loader workers')
    parser.add_argument('--out', default='selection.json', help='output JSON file')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_dataloader.dataset.'
                        'data_root=data/cifar100')
    add_trust_checkpoint_arg(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    import nose_mm  # noqa: F401  (compat fixes, registries)
    from nose_mm.apis import LaunchError, check_data_roots, load_config
    from nose_mm.selection import save_selection, select_from_config
    from nose_mm.utils.safe_load import apply_trust_checkpoint

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        cfg = load_config(args.config, args.cfg_options)
        apply_trust_checkpoint(args.trust_checkpoint, cfg)
        check_data_roots(cfg, ['train_dataloader'])
        record = select_from_config(
            cfg, args.checkpoint, args.num_layers, num_samples=args.num_samples,
            method=args.method, criterion=args.criterion, batch_size=args.batch_size,
            seed=args.seed, features=args.features, evaluator=args.evaluator, device=device,
            num_workers=args.num_workers, progress=not args.no_progress)
        save_selection(args.out, record)
    except (LaunchError, ValueError, FileNotFoundError) as exc:
        print(f'nose_mm: error: {exc}', file=sys.stderr)
        return 2
    cost = record['cost'] or {}
    print(f'{record["method"]} selection of {record["num_layers"]} / {record["total_layers"]} '
          f'layers: {record["selection"]}  ({record["num_samples"]} images, '
          f'{cost.get("forward_equivalents", 0):.2f} forward-pass equivalents, '
          f'{record["timing"]["total_s"]:.1f} s) -> {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
