"""How often the NOSE-selected layer set changes with the calibration seed, per N and split.

    python tools/analysis/selection_stability.py CONFIG CHECKPOINT --num-layers K [K ...]
        [--num-samples 64 256 1024 all] [--seeds 0 1 2 3 4] [--splits train val]
        [--skip-modes identity compensated] [--batch-size B] [--device DEV]
        [--out DIR] [--trust-checkpoint] [--cfg-options k=v ...]

For every split, N (``all``: the whole split, run once since it does not
depend on the seed; an N larger than the split is left out), seed and skip
mode, runs the NOSE selection with budget max(K) (its first k layers are the
budget-k selection). Prints one table per budget: for each N, the number of
distinct layer sets over the seeds and how many seeds gave the all-images set,
and the smallest N from which on the selection is stable. Writes
``DIR/selection_stability.json`` (every run, the summary, the command, date
and machine) and ``DIR/selection_stability.md``, atomically.
"""
import datetime
import os.path as osp
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


def parse_args(argv=None):
    from mmengine.config import DictAction

    from nose_mm.selection.adapters import SKIP_MODES
    from nose_mm.selection.settings import SPLITS, add_setting_arg
    from nose_mm.checkpoint.reader import add_trust_checkpoint_arg
    parser = ToolParser(description='NOSE selection stability (nose_mm)')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='trained checkpoint matching the config')
    parser.add_argument('--num-layers', '-k', type=int, nargs='+', required=True, metavar='K',
                        help='budgets K')
    parser.add_argument('--num-samples', '-n', nargs='+', default=['64', '256', '1024', 'all'],
                        metavar='N', help="calibration sizes, ints or 'all' "
                        '(default: 64 256 1024 all)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4],
                        help='calibration subset seeds (default: 0 1 2 3 4)')
    parser.add_argument('--splits', nargs='+', choices=SPLITS, default=list(SPLITS),
                        help='calibration splits (default: train val)')
    parser.add_argument('--skip-modes', nargs='+', choices=SKIP_MODES, default=['identity'],
                        help='skip modes (default: identity)')
    add_setting_arg(parser, 'batch_size')
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    parser.add_output('--out', folder=True, default='selection_stability', help='output folder')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    add_trust_checkpoint_arg(parser)
    return parser.parse_args(argv)


@cli_main(*INPUT_ERRORS)
def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from tqdm import tqdm

    from nose_mm.analysis.selection_stability import (RECORD_FORMAT, check_num_samples_grid,
                                                      measure_selection_stability,
                                                      smallest_stable_n, stability_markdown,
                                                      stability_rows)
    from nose_mm.benchmark.env import env_info, git_commit
    from nose_mm.models.builder import build_model_from_cfg
    from nose_mm.selection import build_adapter, check_budget, file_sha256
    from nose_mm.selection.loading import build_calibration_dataset, check_calibration_data
    from nose_mm.selection.settings import SelectionSettings
    from nose_mm.utils.config import load_config
    from nose_mm.utils.fileio import atomic_write, atomic_write_json
    from nose_mm.checkpoint.reader import apply_trust_checkpoint

    grid = check_num_samples_grid(args.num_samples)
    settings = SelectionSettings(batch_size=args.batch_size)
    for k in args.num_layers:
        SelectionSettings(num_layers=k)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = load_config(args.config, args.cfg_options)
    apply_trust_checkpoint(args.trust_checkpoint, [args.checkpoint], cfg)
    splits = list(dict.fromkeys(args.splits))
    for split in splits:
        check_calibration_data(cfg, split)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist')
    model = build_model_from_cfg(cfg, args.checkpoint, device)
    check_budget(build_adapter(model).candidate_layers, max(args.num_layers))
    datasets = {split: build_calibration_dataset(cfg, split) for split in splits}
    total = sum(len(args.skip_modes) * (1 if n == 'all' or n == len(ds) else len(args.seeds))
                for ds in datasets.values() for n in grid if n == 'all' or n <= len(ds))
    with tqdm(total=total, desc='selections', unit='run', leave=False) as bar:
        runs = measure_selection_stability(model, datasets, args.num_layers, grid, args.seeds,
                                           args.skip_modes, settings, progress=bar.update)
    rows = stability_rows(runs, args.num_layers)
    record = dict(format=RECORD_FORMAT, version=1,
                  command='python ' + ' '.join([osp.relpath(__file__)] + list(
                      sys.argv[1:] if argv is None else argv)),
                  date=datetime.datetime.now(datetime.timezone.utc).strftime(
                      '%Y-%m-%d %H:%M UTC'),
                  environment=dict(env_info(), device=device), git=git_commit(),
                  config=args.config,
                  checkpoint=dict(path=args.checkpoint, sha256=file_sha256(args.checkpoint)),
                  num_layers=sorted(args.num_layers), num_samples=grid, seeds=args.seeds,
                  splits=splits, skip_modes=args.skip_modes,
                  dataset_sizes={s: len(d) for s, d in datasets.items()},
                  settings=settings.to_dict(), rows=rows,
                  smallest_stable_n=smallest_stable_n(rows), runs=runs)
    table = stability_markdown(record)
    json_path = osp.join(args.out, 'selection_stability.json')
    md_path = osp.join(args.out, 'selection_stability.md')
    atomic_write_json(json_path, record)

    def write_md(tmp):
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(table)

    atomic_write(md_path, write_md)
    print(table)
    print(f'wrote {json_path} and {md_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
