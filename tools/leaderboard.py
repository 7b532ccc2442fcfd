"""Leaderboard of runs (their results.json) beside the published reference numbers.

    python tools/leaderboard.py WORK_DIR [WORK_DIR ...] [--reference FILE.yml | --no-reference]
        [--format md|csv|html] --out FILE [--plot FILE.png] [--depth 2] [--runtime NAME]

Each WORK_DIR is a run's work dir, a folder of work dirs (results.json is
searched up to --depth folder levels below), or a results.json file. One table
per task and dataset, sorted by top-1 / mIoU; reference rows (default:
benchmarks/reference.yml) are marked "reported". img/s and memory come from a
benchmark.json next to results.json (tools/benchmark.py --out
WORK_DIR/benchmark.json), in the runtime --runtime names (default: the first the
file timed; the "Throughput setting" column names it). Malformed or partial results
files are named on stderr (never modified); any input left out (a path without
results.json, an unreadable, partial or impossible results file, a run that did not
finish, a record whose checkpoint is gone) is an error (exit 2) and --out is left as it
was, unless --allow-partial, which writes the table without them and lists them in it.
See nose_mm/benchmark/leaderboard/.
"""
import os.path as osp
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, UserError, cli_main

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_REFERENCE = osp.join(REPO, 'benchmarks', 'reference.yml')
FORMATS = ('md', 'csv', 'html')


def parse_args(argv=None):
    parser = ToolParser(description='Build the leaderboard (nose_mm)')
    parser.add_argument('work_dirs', nargs='+', help='work dirs, folders of them, or '
                        'results.json files')
    parser.add_argument('--reference', default=DEFAULT_REFERENCE,
                        help='reference rows (YAML); default: benchmarks/reference.yml')
    parser.add_argument('--no-reference', action='store_true', help='runs only')
    parser.add_argument('--format', choices=FORMATS, default=None,
                        help='output format (default: from the --out suffix, else md)')
    parser.add_output('--out', required=True, help='output file')
    parser.add_output('--plot', help='also write accuracy vs throughput as a PNG')
    parser.add_argument('--allow-partial', action='store_true',
                        help='write the table even when inputs must be left out (they are '
                        'listed in it); default: refuse, leaving --out as it was')
    parser.add_argument('--depth', type=int, default=2,
                        help='folder levels searched below each work dir')
    parser.add_argument('--runtime', default=None,
                        help='img/s of this runtime (tools/benchmark.py --runtime; default: '
                        'the first each benchmark.json timed)')
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None):
    args = parse_args(argv)
    fmt = args.format
    if fmt is None:
        suffix = osp.splitext(args.out)[1].lstrip('.').lower()
        fmt = {'markdown': 'md', 'htm': 'html'}.get(suffix, suffix)
        fmt = fmt if fmt in FORMATS else 'md'
    if args.depth < 0:
        raise UserError(f'--depth must be >= 0, got {args.depth}')
    reference = None if args.no_reference else args.reference
    if reference and not osp.isfile(reference):
        raise UserError(f'reference file {reference!r} does not exist')
    from nose_mm.benchmark.leaderboard import (Skipped, build_leaderboard, plot_leaderboard,
                                               write_leaderboard)
    from nose_mm.benchmark.records import RUNTIMES
    if args.runtime is not None and args.runtime not in RUNTIMES:
        raise UserError(f'--runtime {args.runtime!r}: allowed are {", ".join(RUNTIMES)}')
    tables, problems = build_leaderboard(args.work_dirs, reference, depth=args.depth,
                                         runtime=args.runtime)
    for problem in problems:
        print(f'nose_mm: warning: {problem}', file=sys.stderr)
    runs = sum(not r.reported for t in tables for r in t.rows)
    if not runs:  # a mistyped or empty folder must not replace a good leaderboard
        searched = ', '.join(repr(p) for p in args.work_dirs)
        print(f'nose_mm: error: no runs found (searched {searched} for results.json up to '
              f'{args.depth} levels below); {args.out!r} not written', file=sys.stderr)
        return 2
    skipped = [p for p in problems if isinstance(p, Skipped)]
    if skipped and not args.allow_partial:  # the table would silently shrink
        raise UserError(f'{len(skipped)} input(s) cannot be used (listed above; first: '
                        f'{skipped[0]}); {args.out!r} not written: fix or remove them, or '
                        f'pass --allow-partial to write a table that lists them as skipped')
    write_leaderboard(tables, args.out, fmt, skipped)
    refs = sum(r.reported for t in tables for r in t.rows)
    print(f'nose_mm: wrote {args.out} ({fmt}): {len(tables)} tables, {runs} runs, '
          f'{refs} reported rows, {len(problems)} warnings'
          + (f', {len(skipped)} inputs skipped (listed in it)' if skipped else ''))
    if args.plot:
        points = plot_leaderboard(tables, args.plot)
        print(f'nose_mm: wrote {args.plot} ({points} points)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
