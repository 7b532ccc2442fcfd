"""The built-in demo: the benchmark pipeline end to end on CPU, on real digits.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/digits]
        [--quick]

Builds the demo data from scikit-learn's bundled handwritten digits (no
download), trains the baseline config and evaluates it.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASELINE_CFG = osp.join(REPO, 'configs', 'demo', 'deit-demo_baseline_digits-32px.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='nose_mm built-in demo')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where every run goes')
    parser.add_argument('--data-root', default='data/digits',
                        help='where the digit dataset is written (reused if present)')
    parser.add_argument('--quick', action='store_true',
                        help='a shortened run (fewer epochs) for tests')
    return parser.parse_args(argv)


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    subprocess.run(cmd, check=True, cwd=REPO, env=env)


def main(argv=None):
    args = parse_args(argv)
    from nose_mm.datasets import build_digits_classification
    start = time.time()
    data_root = osp.abspath(args.data_root)
    if not osp.isdir(osp.join(data_root, 'val')):
        print(f'[demo] writing digits to {data_root}: '
              f'{build_digits_classification(data_root)}', flush=True)
    work = osp.abspath(osp.join(args.work_dir, 'baseline'))
    opts = [f'{k}_dataloader.dataset.data_root={data_root}' for k in ('train', 'val', 'test')]
    if args.quick:
        opts += ['train_cfg.max_epochs=2', 'train_cfg.val_interval=2']
    run([sys.executable, osp.join(REPO, 'tools', 'train.py'), BASELINE_CFG, '--work-dir', work,
         '--cfg-options', *opts])
    run([sys.executable, osp.join(REPO, 'tools', 'test.py'), BASELINE_CFG,
         osp.join(work, 'epoch_2.pth' if args.quick else 'epoch_15.pth'), '--work-dir',
         osp.join(work, 'test'), '--cfg-options', *opts])
    print(f'[demo] finished in {time.time() - start:.0f} s; results under {args.work_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
