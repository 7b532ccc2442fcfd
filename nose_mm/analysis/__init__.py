from .benchmark import median, paired_ratio, time_interleaved
from .block_entropy import block_entropies
from .flops import count_flops, count_params, flop_analyzer, sdpa_flop_jit
from .frequency import (BANDS, DEFAULT_BAND_EDGES, band_shares, block_spectra, check_band_edges,
                        frequency_analysis, magnitude_spectrum, radial_distance, radial_profile)
from .random_skip import (check_budgets, evaluate_skip, plot_random_skip, random_skip_analysis,
                          sample_skip_sets)
from .plots import (plot_block_entropy, plot_frequency, plot_te_heatmap, save_figure, te_table_rows,
                    write_csv)

__all__ = [
    'count_flops', 'count_params', 'flop_analyzer', 'sdpa_flop_jit', 'median', 'paired_ratio',
    'time_interleaved', 'block_entropies', 'BANDS', 'DEFAULT_BAND_EDGES', 'band_shares',
    'block_spectra', 'check_band_edges', 'frequency_analysis', 'magnitude_spectrum',
    'radial_distance', 'radial_profile', 'plot_block_entropy', 'plot_frequency',
    'plot_te_heatmap', 'save_figure', 'te_table_rows', 'write_csv', 'check_budgets',
    'evaluate_skip', 'plot_random_skip', 'random_skip_analysis', 'sample_skip_sets'
]
