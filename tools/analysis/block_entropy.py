"""Entropy of each block's attention-branch vs MLP-branch outputs (paper Fig. 1).

    python tools/analysis/block_entropy.py CONFIG CHECKPOINT [--num-samples N]
        [--batch-size B] [--seed S] [--device DEV] [--out DIR] [--trust-checkpoint]
        [--cfg-options k=v ...]

Uses N images of the config's training dataset with its test pipeline (as
tools/nose_select.py). Writes ``DIR/block_entropy.png`` and
``DIR/block_entropy.csv`` (block, attn_entropy, mlp_entropy, attn_cosine).
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


@cli_main(*INPUT_ERRORS)
def main(argv=None):
    from nose_mm.selection.loading import add_calibration_args, load_calibration
    parser = ToolParser(description='Per-block branch entropy (nose_mm)')
    add_calibration_args(parser)
    parser.add_output('--out', folder=True, default='block_entropy', help='output folder')
    args = parser.parse_args(argv)

    from nose_mm.analysis import block_entropies, block_report, plot_block_entropy
    from nose_mm.selection import build_adapter

    model, batches = load_calibration(args)
    rows = block_entropies(build_adapter(model), batches)
    paths = plot_block_entropy(rows, args.out)
    print(block_report(rows, [('attention', 'attn_entropy'), ('MLP', 'mlp_entropy')],
                       '10.3f', [paths['png'], paths['csv']]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
