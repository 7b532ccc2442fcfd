"""Plot the per-step transfer-entropy heatmap of a NOSE selection (paper Fig. 4).

    python tools/analysis/plot_te_heatmap.py selection.json --out DIR

Writes ``DIR/te_heatmap.png`` and ``DIR/te_heatmap.csv`` (one row per step:
the selected layer and the signed TE of every candidate; empty cells for
layers selected earlier).
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


@cli_main(*INPUT_ERRORS)
def main(argv=None):
    parser = ToolParser(description='TE heatmap of a NOSE selection (nose_mm)')
    parser.add_argument('selection', help='selection.json from tools/nose_select.py')
    parser.add_output('--out', folder=True, required=True, help='output folder')
    args = parser.parse_args(argv)

    from nose_mm.analysis import plot_te_heatmap
    from nose_mm.selection import load_selection_record
    paths = plot_te_heatmap(load_selection_record(args.selection), args.out)
    print(f'wrote {paths["png"]} and {paths["csv"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
