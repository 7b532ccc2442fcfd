from .block_entropy import block_entropies
from .frequency import (band_shares, block_spectra, check_band_edges, frequency_analysis,
                        magnitude_spectrum, radial_distance, radial_profile)
from .plots import block_report, plot_block_entropy, plot_frequency, plot_te_heatmap, save_figure
from .random_skip import check_budgets, plot_random_skip, random_skip_analysis, sample_skip_sets
from .selection_stability import (measure_selection_stability, smallest_stable_n,
                                  stability_markdown, stability_rows)

__all__ = [
    'block_entropies', 'band_shares', 'block_spectra', 'check_band_edges', 'frequency_analysis',
    'magnitude_spectrum', 'radial_distance', 'radial_profile', 'plot_block_entropy',
    'plot_frequency', 'plot_te_heatmap', 'block_report', 'save_figure', 'check_budgets',
    'plot_random_skip', 'random_skip_analysis', 'sample_skip_sets', 'measure_selection_stability',
    'stability_rows', 'smallest_stable_n', 'stability_markdown'
]
