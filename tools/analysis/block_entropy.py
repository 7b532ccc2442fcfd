"""Entropy of each block's attention-branch vs MLP-branch outputs (paper Fig. 1).

    python tools/analysis/block_entropy.py CONFIG CHECKPOINT [--num-samples N]
        [--batch-size B] [--seed S] [--device DEV] [--out DIR] [--trust-checkpoint]
        [--cfg-options k=v ...]

Uses N images of the config's training dataset with its test pipeline (as
tools/nose_select.py). Writes ``DIR/block_entropy.png`` and
``DIR/block_entropy.csv`` (block, attn_entropy, mlp_entropy, attn_cosine).
"""
import argparse
import sys


def main(argv=None):
    from nose_mm.selection.loading import add_calibration_args, load_calibration
    parser = argparse.ArgumentParser(description='Per-block branch entropy (nose_mm)')
    add_calibration_args(parser)
    parser.add_argument('--out', default='block_entropy', help='output folder')
    args = parser.parse_args(argv)

    from nose_mm.analysis import block_entropies, plot_block_entropy
    from nose_mm.apis import LaunchError
    from nose_mm.selection import build_adapter

    try:
        model, batches = load_calibration(args)
        rows = block_entropies(build_adapter(model), batches)
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
