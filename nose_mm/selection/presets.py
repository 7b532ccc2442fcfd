"""Named bundles of selection settings: the paper's definition and the reference code's probe.

``default`` is docs/method.md's definition (the :class:`SelectionSettings` defaults): a
skipped attention leaves ``x``, N training images with the test pipeline.

``reference`` measures as the reference code (sihaoevery/lambda_vit) did. Its only TE
probe is in ``models_shrink.py``: a layer of ``done_layer`` is a ``Block_shrink`` that
computes ``2 * x`` and then its MLP (``skip_mode='compensated'``); the probe reads
``forward_features``' output, the final-normed class token the head takes
(``features='head_input'``), in float64, as ``sum(log(std))`` once 130 batches were
collected. ``script/test.sh`` runs it single-process with ``--eval --batch-size 256`` on
the ImageNet val set, and ``main_lambda.py``'s val loader takes ``int(1.5 * 256) = 384``
images per batch: ``130 * 384 = 49,920`` images (the print repeats at batch 131, all
50,000). Hence ``split='val'``, ``num_samples=49920``, ``batch_size=384``. Keeping every
block input of 49,920 images is out of reach (DeiT-S: about 180 GB), so the preset uses
full passes (``evaluator='naive'``) over images read again on every pass
(``calibration_images='stream'``); the result is the cached evaluator's. Two details stay
as nose_mm computes them: the reference's ``np.std`` has ``ddof=0`` (here 1: a constant
per dimension for a fixed N, so every TE is the same), and it ran under fp16 autocast
(here the model's dtype; its final LayerNorm, which gives the features, runs in float32
under autocast either way). The val subset is drawn with ``seed`` (the reference took the
first 49,920 in loader order): 80 of the 50,000 images differ.
"""
from typing import Any, Dict, Optional

from .greedy import check_choice
from .settings import SelectionSettings

__all__ = ['PRESETS', 'REFERENCE_NUM_SAMPLES', 'preset_settings', 'preset_record']

#: 130 evaluation batches of ``int(1.5 * 256)`` images (``main_lambda.py``, ``--batch-size 256``).
REFERENCE_NUM_SAMPLES = 130 * int(1.5 * 256)

#: Preset name -> the settings it fixes (every other setting keeps its default).
PRESETS: Dict[str, Dict[str, Any]] = {
    'default': {},
    'reference': dict(skip_mode='compensated', split='val', num_samples=REFERENCE_NUM_SAMPLES,
                      batch_size=int(1.5 * 256), features='head_input', evaluator='naive',
                      calibration_images='stream'),
}


def _check(name: str) -> Dict[str, Any]:
    check_choice('preset', name, tuple(PRESETS))
    return PRESETS[name]


def preset_settings(name: str = 'default', **options: Any) -> SelectionSettings:
    """The settings of preset ``name``, with ``options`` replacing some of them.

    Args:
        name (str): One of :data:`PRESETS`. Defaults to ``'default'``.
        **options: :class:`SelectionSettings` fields (``num_layers=3``...).

    Returns:
        SelectionSettings: Validated.

    Raises:
        ValueError: An unknown preset or setting, or a bad value.
    """
    return SelectionSettings.build(SelectionSettings.build(**_check(name)), **options)


def preset_record(name: Optional[str], settings: SelectionSettings) -> Dict[str, Any]:
    """``preset`` and ``preset_overrides``: the settings any preset fixes that ``settings``
    sets otherwise than preset ``name`` (``{}``: measured exactly as the preset says).

    Args:
        name (str, optional): The preset the settings were built from (None: ``'default'``).
        settings (SelectionSettings): The settings used.

    Returns:
        dict: For the selection record.
    """
    name = 'default' if name is None else name
    fixed = SelectionSettings.build(**_check(name)).to_dict()
    used = settings.to_dict()
    keys = sorted({k for preset in PRESETS.values() for k in preset})
    return dict(preset=name, preset_overrides={k: used[k] for k in keys if used[k] != fixed[k]})
