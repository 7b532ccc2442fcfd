"""NOSE attention-layer selection (docs/method.md §1-§3): the method and its model side."""
from .adapters import FEATURES, SKIP_MODES, FamilyAdapter, build_adapter
from .baselines import (select_attn_entropy, select_by_score, select_cosine, select_first,
                        select_random)
from .entropy import STD_EPS, FeatureSetStats, FeatureStats, gaussian_entropy, transfer_entropy
from .evaluators import (EVALUATORS, CachedEvaluator, NaiveEvaluator, layer_statistics,
                         selection_cost)
from .greedy import CRITERIA, SelectionResult, check_budget, greedy_select
from .io import file_sha256, load_selection, load_selection_record, save_selection
from .loading import (build_calibration_dataset, build_calibration_loader,
                      calibration_dataset_cfg, calibration_indices, collect_batches,
                      prepare_calibration)
from .presets import PRESETS, preset_record, preset_settings
from .runner import run_selection, select_from_config
from .segmentor import SEGMENTOR_FEATURES, SegmentorAdapter, build_segmentor_adapter
from .settings import (METHODS, SPLITS, SelectionSettings, add_selection_args, add_setting_arg,
                       settings_from_args)

__all__ = [
    'STD_EPS', 'FeatureStats', 'gaussian_entropy', 'transfer_entropy', 'CRITERIA',
    'SelectionResult', 'check_budget', 'greedy_select', 'select_random', 'select_first',
    'select_by_score', 'select_attn_entropy', 'select_cosine', 'FEATURES', 'SKIP_MODES',
    'FamilyAdapter', 'build_adapter', 'EVALUATORS', 'CachedEvaluator',
    'NaiveEvaluator', 'layer_statistics', 'selection_cost', 'save_selection',
    'load_selection', 'load_selection_record', 'file_sha256', 'calibration_dataset_cfg',
    'build_calibration_dataset', 'calibration_indices', 'build_calibration_loader',
    'collect_batches', 'prepare_calibration', 'METHODS', 'run_selection', 'select_from_config',
    'SelectionSettings', 'SPLITS', 'add_selection_args', 'add_setting_arg', 'settings_from_args',
    'PRESETS', 'preset_settings', 'preset_record',
    'FeatureSetStats', 'SEGMENTOR_FEATURES', 'SegmentorAdapter', 'build_segmentor_adapter'
]
