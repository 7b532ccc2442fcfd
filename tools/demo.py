"""The built-in demo: the benchmark pipeline end to end on CPU, on real digits.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/digits]
        [--seg-data-root data/digits_seg] [--quick] [--workers 2] [--families deit3]

Baseline training, NOSE / random / first-K selection, dilution to lam = 0,
pruning and evaluation over 3 seeds, NOSE + token merging, UperNet transfer,
one interleaved benchmark run per task, the same classification pipeline
(NOSE) on a second family, DeiT-III, and the leaderboard (mean ± std over
the seeds); the pipeline is the project ``projects/demo/`` (its steps in
``projects/demo/steps.py``). The tools run in-process in --workers worker
processes (one per core). Prints the leaderboard; plots land in
``<work-dir>/plots``.
"""
import os.path as osp
import sys

# projects/ of this checkout (appended: nose_mm stays the one the interpreter finds)
sys.path.append(osp.dirname(osp.dirname(osp.abspath(__file__))))
from projects.demo import DEMO_FAMILIES  # noqa: E402
from nose_mm.utils.cli import ToolParser, cli_main  # noqa: E402


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
    parser.add_argument('--workers', type=int, default=2,
                        help='worker processes running the steps (one per core)')
    parser.add_argument('--families', nargs='*', choices=sorted(DEMO_FAMILIES),
                        default=sorted(DEMO_FAMILIES),
                        help='further backbone families run through the classification '
                             'pipeline with NOSE (default: all; none: give the flag alone)')
    return parser.parse_args(argv)


@cli_main(ValueError)
def main(argv=None):
    args = parse_args(argv)
    from projects.demo import run_demo
    run_demo(args.work_dir, args.data_root, args.seg_data_root, quick=args.quick,
             workers=args.workers, families=args.families)
    return 0


if __name__ == '__main__':
    sys.exit(main())
