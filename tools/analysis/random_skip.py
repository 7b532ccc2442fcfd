"""Skip random sets of attention layers of a trained model, no training (paper Fig. 2).

    python tools/analysis/random_skip.py CONFIG CHECKPOINT [--ks 1 2 3]
        [--num-subsets M] [--split {val,train}] [--num-samples N] [--batch-size B]
        [--seed S] [--features {head_input,logits}] [--skip-mode {identity,compensated}]
        [--device DEV] [--out DIR] [--cfg-options k=v ...]

For every budget k (default: 1 .. number of attention layers), M seeded random
sets of k layers (all of them when there are no more than M) have their
attention skipped (identity, or 2x with ``--skip-mode compensated``); on N
images of the split (default: the val split with its pipeline; ``train`` uses
the test pipeline), each set gets its top-1 accuracy and its transfer entropy
TE(S) = H(full) - H(S). Writes ``DIR/random_skip.json`` (accuracy mean /
variance per k and every set's accuracy and TE) and ``DIR/random_skip.png``
(accuracy vs TE), atomically.
"""
import math
import os.path as osp
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


def parse_args(argv=None):
    from nose_mm.selection.loading import add_calibration_args
    from nose_mm.selection.settings import add_setting_arg
    parser = ToolParser(description='Random attention skipping (nose_mm)')
    add_calibration_args(parser, split='val')
    parser.add_argument('--ks', type=int, nargs='+', metavar='K',
                        help='budgets: numbers of layers to skip (default: all)')
    parser.add_argument('--num-subsets', '-m', type=int, default=10,
                        help='random sets per budget (10)')
    add_setting_arg(parser, 'features')
    add_setting_arg(parser, 'skip_mode')
    parser.add_output('--out', folder=True, default='random_skip', help='output folder')
    return parser.parse_args(argv)


def _load(args):
    """Model, adapters and (batches, labels) of N images of the chosen split."""
    import torch

    from nose_mm.analysis.random_skip import check_budgets, check_num_subsets
    from nose_mm.models.builder import build_model_from_cfg
    from nose_mm.selection import build_adapter
    from nose_mm.selection.loading import (build_calibration_dataset, build_calibration_loader,
                                           check_calibration_data)
    from nose_mm.utils.config import load_config
    from nose_mm.checkpoint.reader import apply_trust_checkpoint
    check_num_subsets(args.num_subsets)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = load_config(args.config, args.cfg_options)
    apply_trust_checkpoint(args.trust_checkpoint, [args.checkpoint], cfg)
    check_calibration_data(cfg, args.split)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    model = build_model_from_cfg(cfg, args.checkpoint, device)
    features = build_adapter(model, args.features, args.skip_mode)
    logits = features if args.features == 'logits' else build_adapter(model, 'logits',
                                                                      args.skip_mode)
    candidates = features.candidate_layers
    ks = check_budgets(args.ks if args.ks else range(1, len(candidates) + 1), len(candidates))
    dataset = build_calibration_dataset(cfg, args.split)
    loader = build_calibration_loader(dataset, args.num_samples, args.batch_size, args.seed)
    batches, labels = [], []
    with torch.no_grad():
        for data in loader:
            data = model.data_preprocessor(data, False)
            batches.append(data['inputs'])
            labels.append(torch.cat([s.gt_label.view(-1)[:1] for s in data['data_samples']]))
    return features, logits, ks, batches, labels


@cli_main(*INPUT_ERRORS)
def main(argv=None) -> int:
    args = parse_args(argv)
    from tqdm import tqdm

    from nose_mm.analysis.random_skip import plot_random_skip, random_skip_analysis
    from nose_mm.utils.fileio import atomic_write_json

    features, logits, ks, batches, labels = _load(args)
    total = sum(min(args.num_subsets, math.comb(len(features.candidate_layers), k))
                for k in ks)
    with tqdm(total=total, desc='random skip', unit='set', leave=False) as bar:
        record = random_skip_analysis(features, logits, batches, labels, ks,
                                      args.num_subsets, args.seed, progress=bar.update)
    record.update(config=args.config, checkpoint=args.checkpoint, split=args.split,
                  batch_size=args.batch_size)
    json_path, png_path = osp.join(args.out, 'random_skip.json'), osp.join(args.out,
                                                                         'random_skip.png')
    atomic_write_json(json_path, record)
    plot_random_skip(record, png_path)
    print(f'no skip: top-1 {record["full"]["accuracy"]:.2f}%')
    for b in record['budgets']:
        print(f'k={b["k"]:2d}: top-1 {b["accuracy_mean"]:6.2f} +- {b["accuracy_std"]:5.2f} '
              f'(var {b["accuracy_var"]:.3f}) over {b["num_subsets"]} sets, '
              f'mean TE {b["te_mean"]:.3f}')
    print(f'wrote {json_path} and {png_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
