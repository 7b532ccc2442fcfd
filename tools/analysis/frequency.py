"""Frequency content of each block's patch features (paper Fig. 5).

    python tools/analysis/frequency.py CONFIG CHECKPOINT [--num-samples N]
        [--batch-size B] [--seed S] [--edges E1 E2] [--num-bins K] [--device DEV]
        [--out DIR] [--trust-checkpoint] [--cfg-options k=v ...]

Per block: patch tokens -> B x C x H x W, 2-D FFT over H x W, fftshift, |F|
averaged over images and channels against the normalised radial distance
(0 = DC, 1 = farthest corner). Band shares: low r < E1, mid E1 <= r < E2,
high r >= E2 (default E1 = 1/3, E2 = 2/3). Writes ``DIR/frequency.png``,
``DIR/frequency.csv`` (band shares) and ``DIR/frequency_profile.csv``.
"""
import sys

from nose_mm.utils.cli import INPUT_ERRORS, ToolParser, cli_main


@cli_main(*INPUT_ERRORS)
def main(argv=None):
    from nose_mm.selection.loading import add_calibration_args, load_calibration
    parser = ToolParser(description='Per-block frequency analysis (nose_mm)')
    add_calibration_args(parser)
    parser.add_argument('--edges', type=float, nargs=2, default=(1 / 3, 2 / 3),
                        metavar=('E1', 'E2'), help='band edges (default 1/3 2/3)')
    parser.add_argument('--num-bins', type=int, default=10, help='radial profile bins (10)')
    parser.add_output('--out', folder=True, default='frequency', help='output folder')
    args = parser.parse_args(argv)

    from nose_mm.analysis import (block_report, check_band_edges, frequency_analysis,
                                  plot_frequency)
    from nose_mm.selection import build_adapter

    edges = check_band_edges(args.edges)
    model, batches = load_calibration(args)
    results = frequency_analysis(build_adapter(model), batches, edges=edges,
                                 num_bins=args.num_bins)
    paths = plot_frequency(results, args.out, edges=edges)
    print(block_report(results, [(band, band) for band in ('low', 'mid', 'high')], '.3f',
                       [paths['png'], paths['csv'], paths['profile_csv']]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
