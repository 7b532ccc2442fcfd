"""The settings of a layer selection, declared and validated once, and their CLI arguments."""
import dataclasses
from typing import Any, Dict, Optional, Tuple

from .adapters import FEATURES, SKIP_MODES
from .evaluators import EVALUATORS
from .greedy import CRITERIA, check_choice
from .segmentor import SEGMENTOR_FEATURES

__all__ = ['METHODS', 'SPLITS', 'CALIBRATION_IMAGES', 'SelectionSettings', 'add_selection_args',
           'add_setting_arg', 'settings_from_args']

#: Selection methods: NOSE and its baselines.
METHODS = ('nose', 'random', 'first', 'attn_entropy', 'cosine')
#: Methods that read calibration images.
DATA_METHODS = ('nose', 'attn_entropy', 'cosine')
#: Calibration splits: the training images with the test pipeline, or the val set
#: (see :mod:`nose_mm.selection.loading`).
SPLITS = ('train', 'val')
#: Calibration images kept in memory once preprocessed, or read again for every pass
#: (the naive evaluator's full passes over a large set, e.g. the ``reference`` preset).
CALIBRATION_IMAGES = ('keep', 'stream')


def _field(default: Any, help: str, flags: Tuple[str, ...] = (),
           choices: Optional[Tuple[str, ...]] = None, minimum: int = 1,
           must: str = 'a positive int'):
    """A setting: a choice among ``choices``, or an int >= ``minimum`` (``must`` in errors)."""
    return dataclasses.field(default=default, metadata=dict(
        help=help, flags=flags, choices=choices, minimum=minimum, must=must))


@dataclasses.dataclass(frozen=True)
class SelectionSettings:
    """Which layers to select and how (validated on construction).

    Args:
        num_layers (int, optional): Budget ``K`` (positive). Defaults to None.
        num_samples (int): Calibration images ``N`` (>= 2). Defaults to 1024.
        method (str): One of :data:`METHODS`. Defaults to ``'nose'``.
        criterion (str): NOSE criterion, ``'abs'`` or ``'signed'``. Defaults to ``'abs'``.
        batch_size (int): Calibration batch size. Defaults to 32.
        seed (int): Seed of the calibration subset and the random baseline. Defaults to 0.
        features (str): ``'head_input'`` or ``'logits'`` (classifiers), ``'seg_logits'`` or
            ``'dense'`` (segmentors, :mod:`nose_mm.selection.segmentor`). Defaults to
            ``'head_input'``.
        evaluator (str): ``'cached'`` or ``'naive'`` (NOSE only). Defaults to ``'cached'``.
        skip_mode (str): NOSE: ``'identity'`` or ``'compensated'``. Defaults to ``'identity'``.
        split (str): ``'train'`` (test pipeline) or ``'val'`` images. Defaults to ``'train'``.
        calibration_images (str): ``'keep'`` the preprocessed images in memory or
            ``'stream'`` them from the loader on every pass (needs ``evaluator='naive'``
            for NOSE). Defaults to ``'keep'``.

    Raises:
        ValueError: Naming the bad value and the allowed ones.
    """

    num_layers: Optional[int] = _field(None, 'number of attention layers to select (K)',
                                       ('-k', ))
    num_samples: int = _field(1024, 'calibration images N (default: 1024)', ('-n', ), minimum=2,
                              must='an int >= 2 (entropy needs a spread)')
    method: str = _field('nose', 'selection method (default: nose)', choices=METHODS)
    criterion: str = _field('abs', 'NOSE: smallest |TE| (abs) or smallest TE (signed) '
                            '(default: abs)', choices=CRITERIA)
    batch_size: int = _field(32, 'calibration batch size (default: 32)')
    seed: int = _field(0, 'seed of the calibration subset and the random baseline',
                       minimum=0, must='an int >= 0')
    features: str = _field('head_input', 'entropy of what the head reads (default) or of '
                           'the logits; a segmentation model: of the decode head\'s per-pixel '
                           'output (seg_logits) or of the backbone\'s out_indices features '
                           '(dense)', choices=FEATURES + SEGMENTOR_FEATURES)
    evaluator: str = _field('cached', 'TE evaluation with the prefix cache (default) or full '
                            'passes', choices=EVALUATORS)
    skip_mode: str = _field('identity', 'a skipped attention leaves x (identity, default) or '
                            '2x (compensated, the reference\'s shrink model)',
                            choices=SKIP_MODES)
    split: str = _field('train', 'calibration images: the training set with the test pipeline '
                        '(train) or the val set (val) (default: %(default)s)', choices=SPLITS)
    calibration_images: str = _field('keep', 'keep the preprocessed calibration images in '
                                     'memory (default) or stream them from the loader on '
                                     'every pass (NOSE: with --evaluator naive)',
                                     choices=CALIBRATION_IMAGES)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if meta['choices'] is not None:
                check_choice(f.name, value, meta['choices'])
            elif not ((value is None and f.default is None) or _is_int(value, meta['minimum'])):
                raise ValueError(f'{f.name} must be {meta["must"]}, got {value!r}')
        if (self.calibration_images == 'stream' and self.method == 'nose'
                and self.evaluator == 'cached'):
            raise ValueError("calibration_images='stream' needs evaluator='naive': the cached "
                             "evaluator keeps every block's input of every image in memory")

    @classmethod
    def build(cls, settings: Optional['SelectionSettings'] = None,
              **options: Any) -> 'SelectionSettings':
        """``settings`` (or the defaults) with ``options`` replaced, validated.

        Raises:
            ValueError: An option that is not a setting (naming the allowed ones).
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f'unknown selection setting(s) {", ".join(unknown)}; allowed: '
                             f'{", ".join(names)}')
        return dataclasses.replace(settings or cls(), **options)

    def to_dict(self) -> Dict[str, Any]:
        """The settings as a plain dict."""
        return dataclasses.asdict(self)

    def budget(self) -> int:
        """``num_layers``, which must be set.

        Raises:
            ValueError: If ``num_layers`` is None.
        """
        if self.num_layers is None:
            raise ValueError('the selection needs num_layers (the budget K)')
        return self.num_layers

    @property
    def needs_data(self) -> bool:
        """Whether the method reads calibration images."""
        return self.method in DATA_METHODS


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def add_setting_arg(parser, name: str, required: bool = False, **overrides: Any) -> None:
    """Add the ``--option`` of one :class:`SelectionSettings` field to an argparse parser.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        name (str): The field, e.g. ``'split'``.
        required (bool): The user must give it (no default). Defaults to False.
        **overrides: ``add_argument`` keywords replacing the field's.
    """
    f = {f.name: f for f in dataclasses.fields(SelectionSettings)}[name]
    meta = f.metadata
    kwargs: Dict[str, Any] = dict(dest=f.name, help=meta['help'])
    if meta['choices'] is None:
        kwargs.update(type=int)
    else:
        kwargs.update(choices=meta['choices'])
    kwargs.update(dict(required=True) if required else dict(default=f.default), **overrides)
    parser.add_argument('--' + f.name.replace('_', '-'), *meta['flags'], **kwargs)


def add_selection_args(parser, required: Tuple[str, ...] = ('num_layers', )) -> None:
    """Add one ``--option`` per :class:`SelectionSettings` field to an argparse parser.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        required (tuple[str]): Settings the user must give. Defaults to ``('num_layers', )``.
    """
    for f in dataclasses.fields(SelectionSettings):
        add_setting_arg(parser, f.name, required=f.name in required)


def settings_from_args(args) -> SelectionSettings:
    """The :class:`SelectionSettings` of parsed :func:`add_selection_args` arguments."""
    return SelectionSettings(**{f.name: getattr(args, f.name)
                                for f in dataclasses.fields(SelectionSettings)})
