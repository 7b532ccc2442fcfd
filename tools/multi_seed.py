"""Run one config over several seeds: ``<work_dir>/seed<k>`` per seed.

    python tools/multi_seed.py CONFIG --seeds 0 1 2 [--work-dir DIR]
        [--tool train.py|test.py] [-- TOOL ARGS ...]

Each seed runs ``tools/<tool> CONFIG [TOOL ARGS] --work-dir DIR/seed<k>
--cfg-options randomness.seed=<k>`` in this process, one after the other;
``{seed}`` in TOOL ARGS is replaced by the seed (e.g. a test of each seed's
checkpoint: ``--tool test.py -- work_dirs/x/seed{seed}/epoch_20.pth``). The
leaderboard shows the runs as one row, mean ± std over the seeds (see
nose_mm/benchmark/seeds.py). Exit status: 0 when every seed succeeded, else
the first failing run's.
"""
import os.path as osp
import sys

from nose_mm.utils.cli import ToolParser, UserError, cli_main

TOOLS = ('train.py', 'test.py')


def parse_args(argv=None):
    parser = ToolParser(description='Run a config over several seeds (nose_mm)')
    parser.add_argument('config', help='config file')
    parser.add_argument('--seeds', type=int, nargs='+', required=True,
                        help='seeds (distinct integers >= 0)')
    parser.add_output('--work-dir', folder=True, help='parent of the seed<k> work dirs (default: '
                        'work_dirs/<config name>)')
    parser.add_argument('--tool', choices=TOOLS, default='train.py', help='the tool to run')
    parser.epilog = 'Arguments after -- go to the tool; {seed} in them becomes the seed.'
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index('--') if '--' in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.tool_args = argv[split + 1:]
    return args


@cli_main()
def main(argv=None):
    args = parse_args(argv)
    bad = [s for s in args.seeds if s < 0]
    if bad or len(set(args.seeds)) != len(args.seeds):
        raise UserError(f'--seeds must be distinct integers >= 0, got {args.seeds}')
    extra = args.tool_args
    for opt in extra:
        if opt.startswith('randomness.seed=') or opt in ('--work-dir', '--work_dir'):
            raise UserError(f'{opt.split("=")[0]!r} is set per seed by multi_seed.py; remove it '
                            f'from the tool arguments')
    from nose_mm.benchmark.seeds import seed_folder
    if not osp.isfile(args.config):
        raise UserError(f'config {args.config!r} does not exist')
    work_dir = args.work_dir or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    from nose_mm.apis.inprocess import run_tool
    failed = []
    for seed in args.seeds:
        seed_dir = osp.join(work_dir, seed_folder(seed))
        tool_argv = [args.config] + [a.replace('{seed}', str(seed)) for a in extra] + [
            '--work-dir', seed_dir, '--cfg-options', f'randomness.seed={seed}']
        print(f'nose_mm: seed {seed}: tools/{args.tool} {" ".join(tool_argv)}', flush=True)
        status = run_tool(osp.join(osp.dirname(osp.abspath(__file__)), args.tool), tool_argv)
        if status:
            failed.append((seed, status))
    if failed:
        print(f'nose_mm: error: seed(s) {", ".join(str(s) for s, _ in failed)} failed '
              f'(exit {failed[0][1]}); the others are in {work_dir}', file=sys.stderr)
        return failed[0][1]
    print(f'nose_mm: {len(args.seeds)} seeds done in {work_dir}/seed<k>; tools/leaderboard.py '
          f'{work_dir} shows them as one row')
    return 0


if __name__ == '__main__':
    sys.exit(main())
