"""The built-in demo: the benchmark pipeline end to end on CPU, on real digits.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/digits]
        [--seg-data-root data/digits_seg] [--quick]

Baseline training, NOSE / random / first-K selection, dilution to lam = 0,
pruning, evaluation, UperNet transfer, benchmark and leaderboard; see
:mod:`nose_mm.apis.demo`. Prints the leaderboard; plots land in
``<work-dir>/plots``.
"""
import sys

from nose_mm.utils.cli import ToolParser, cli_main


def parse_args(argv=None):
    parser = ToolParser(description='nose_mm built-in demo')
    parser.add_output('--work-dir', folder=True, default='work_dirs/demo',
                      help='where every run goes')
    parser.add_argument('--data-root', default='data/digits',
                        help='digit classification data (written if missing)')
    parser.add_argument('--seg-data-root', default='data/digits_seg',
                        help='digit segmentation data (written if missing)')
    parser.add_argument('--quick', action='store_true',
                        help='a shortened run (a few iterations) for tests')
    return parser.parse_args(argv)


@cli_main(RuntimeError)
def main(argv=None):
    args = parse_args(argv)
    from nose_mm.apis.demo import run_demo
    run_demo(args.work_dir, args.data_root, args.seg_data_root, quick=args.quick)
    return 0


if __name__ == '__main__':
    sys.exit(main())
