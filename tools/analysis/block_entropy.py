"""Entropy of each block's attention-branch vs MLP-branch outputs (paper Fig. 1).

    python tools/analysis/block_entropy.py CONFIG CHECKPOINT [--num-samples N]
        [--batch-size B] [--seed S] [--device DEV] [--out DIR] [--cfg-options k=v ...]

Uses N images of the config's training dataset with its test pipeline (as
tools/nose_select.py). Writes ``DIR/block_entropy.png`` and
``DIR/block_entropy.csv`` (block, attn_entropy, mlp_entropy, attn_cosine).
"""
import argparse
import sys


def main(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Per-block branch entropy (nose_mm)')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint matching the config')
    parser.add_argument('--num-samples', '-n', type=int, default=256, help='images (256)')
    parser.add_argument('--batch-size', type=int, default=32, help='batch size (32)')
    parser.add_argument('--seed', type=int, default=0, help='subset seed (0)')
    parser.add_argument('--device', default=None, help='default: cuda if available')
    parser.add_argument('--out', default='block_entropy', help='output folder')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    args = parser.parse_args(argv)

    import torch

    import nose_mm  # noqa: F401
    from nose_mm.analysis import block_entropies, plot_block_entropy
    from nose_mm.apis import LaunchError, check_data_roots, load_config
    from nose_mm.selection import build_adapter, collect_batches, prepare_calibration

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        cfg = load_config(args.config, args.cfg_options)
        check_data_roots(cfg, ['train_dataloader'])
        model, loader = prepare_calibration(cfg, args.checkpoint, args.num_samples,
                                            args.batch_size, args.seed, device)
        adapter = build_adapter(model)
        rows = block_entropies(adapter, collect_batches(model, loader))
        paths = plot_block_entropy(rows, args.out)
    except (LaunchError, ValueError, FileNotFoundError) as exc:
        print(f'nose_mm: error: {exc}', file=sys.stderr)
        return 2
    for r in rows:
        print(f'block {r["block"]:2d}: attention {r["attn_entropy"]:10.3f}  '
              f'MLP {r["mlp_entropy"]:10.3f}')
    print(f'wrote {paths["png"]} and {paths["csv"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
