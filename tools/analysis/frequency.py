"""Frequency content of each block's patch features (paper Fig. 5).

    python tools/analysis/frequency.py CONFIG CHECKPOINT [--num-samples N]
        [--batch-size B] [--seed S] [--edges E1 E2] [--num-bins K] [--device DEV]
        [--out DIR] [--cfg-options k=v ...]

Per block: patch tokens -> B x C x H x W, 2-D FFT over H x W, fftshift, |F|
averaged over images and channels against the normalised radial distance
(0 = DC, 1 = farthest corner). Band shares: low r < E1, mid E1 <= r < E2,
high r >= E2 (default E1 = 1/3, E2 = 2/3). Writes ``DIR/frequency.png``,
``DIR/frequency.csv`` (band shares) and ``DIR/frequency_profile.csv``.
"""
import argparse
import sys


def main(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Per-block frequency analysis (nose_mm)')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint matching the config')
    parser.add_argument('--num-samples', '-n', type=int, default=256, help='images (256)')
    parser.add_argument('--batch-size', type=int, default=32, help='batch size (32)')
    parser.add_argument('--seed', type=int, default=0, help='subset seed (0)')
    parser.add_argument('--edges', type=float, nargs=2, default=(1 / 3, 2 / 3),
                        metavar=('E1', 'E2'), help='band edges (default 1/3 2/3)')
    parser.add_argument('--num-bins', type=int, default=10, help='radial profile bins (10)')
    parser.add_argument('--device', default=None, help='default: cuda if available')
    parser.add_argument('--out', default='frequency', help='output folder')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    args = parser.parse_args(argv)

    import torch

    import nose_mm  # noqa: F401
    from nose_mm.analysis import check_band_edges, frequency_analysis, plot_frequency
    from nose_mm.apis import LaunchError, check_data_roots, load_config
    from nose_mm.selection import build_adapter, collect_batches, prepare_calibration

    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        edges = check_band_edges(args.edges)
        cfg = load_config(args.config, args.cfg_options)
        check_data_roots(cfg, ['train_dataloader'])
        model, loader = prepare_calibration(cfg, args.checkpoint, args.num_samples,
                                            args.batch_size, args.seed, device)
        results = frequency_analysis(build_adapter(model), collect_batches(model, loader),
                                     edges=edges, num_bins=args.num_bins)
        paths = plot_frequency(results, args.out, edges=edges)
    except (LaunchError, ValueError, FileNotFoundError) as exc:
        print(f'nose_mm: error: {exc}', file=sys.stderr)
        return 2
    for r in results:
        print(f'block {r["block"]:2d}: low {r["low"]:.3f}  mid {r["mid"]:.3f}  '
              f'high {r["high"]:.3f}')
    print(f'wrote {paths["png"]}, {paths["csv"]} and {paths["profile_csv"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
