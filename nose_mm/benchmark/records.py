"""Typed records (schema v2) of ``results.json``, ``benchmark.json``, the reference YAML.

``to_json`` writes a record, ``from_json`` is the one validation; fields: ``benchmarks/README.md``.
"""
import copy
import dataclasses
import json
import math
import statistics
from typing import (Any, Callable, ClassVar, Dict, List, Optional, Tuple, Union, get_args,
                    get_origin, get_type_hints)

from nose_mm.utils.fileio import atomic_write_json

from .info import PARTS, TASKS
from .timing import CLOCKS, spread

__all__ = [
    'SCHEMA_VERSION', 'MAIN_METRIC', 'RecordError', 'ModelInfo', 'GitInfo', 'Evaluation',
    'ResultsRecord', 'Measurement', 'LargestBatch', 'TrackedMemory', 'MeasuredModel',
    'BenchmarkSettings', 'BenchmarkRecord', 'Reference', 'normalize_metrics', 'ratios', 'RUNTIMES'
]

#: Version of the schema below (``version`` of every file); 1 was the untyped layout.
SCHEMA_VERSION = 2
#: Precisions of a measurement (``fp16`` / ``bf16``: autocast).
PRECISIONS = ('fp32', 'fp16', 'bf16')
#: Runtimes a model is timed in (``nose_mm.deploy.runtimes``); ratios never mix two.
RUNTIMES = ('torch', 'torch.compile', 'onnxruntime', 'openvino')
#: Normalised metric names per task (percentages, as the evaluators report them).
METRIC_KEYS = {
    'classification': ('top1', 'top5'),
    'segmentation': ('mIoU', 'mIoU_ms_flip', 'mAcc', 'aAcc'),
}
#: The metric tables are sorted by.
MAIN_METRIC = {'classification': 'top1', 'segmentation': 'mIoU'}
_NAMES = {int: ('an integer', 'integers'), float: ('a number', 'numbers'),
          str: ('a string', 'strings'), bool: ('true or false', 'booleans')}


class RecordError(ValueError):
    """A file (or object) that does not follow the schema.

    Args:
        reason (str): What is wrong (the key, its value, what is allowed).
        path (str, optional): The file, put before the reason. Defaults to None.
    """

    def __init__(self, reason: str, path: Optional[str] = None) -> None:
        super().__init__(f'{path}: {reason}' if path else reason)
        self.reason = reason


def _valid(allowed: str, valid: Callable[[Any], bool]) -> Any:
    """A field whose value must also pass ``valid`` (``allowed`` says what passes)."""
    return dataclasses.field(metadata={'allowed': allowed, 'valid': valid})


def _one_of(*allowed: Any) -> Any:
    """A field whose value must be one of ``allowed``."""
    return _valid('one of ' + ', '.join(map(str, allowed)), lambda value: value in allowed)


def _allowed(hint: Any, plural: bool = False) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union:
        return _allowed(next(a for a in args if a is not type(None)), plural) + ' or null'
    if origin is list:
        return ('lists' if plural else 'a list') + f' of {_allowed(args[0], True)}'
    if origin is dict or dataclasses.is_dataclass(hint):
        return 'objects' if plural else 'an object'
    return _NAMES[hint][plural] if hint in _NAMES else 'anything'


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + '...'


def _convert(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against ``hint`` (records built from their objects), or RecordError."""
    full, origin = hint, get_origin(hint)
    if origin is Union:
        if value is None:
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
        origin = get_origin(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return hint.from_json(value, key)
    if origin is list and isinstance(value, list):
        return [_convert(v, get_args(hint)[0], f'{key}[{i}]') for i, v in enumerate(value)]
    if origin is dict and isinstance(value, dict):
        return {str(k): _convert(v, get_args(hint)[1], f'{key}.{k}') for k, v in value.items()}
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number if hint is float else (number and isinstance(value, int)) if hint is int \
        else hint in _NAMES and isinstance(value, hint)
    if ok:
        return float(value) if hint is float else value
    raise RecordError(f'"{key}" is {_short(value)}, expected {_allowed(full)}')


class Record:
    """A dataclass read from / written to JSON (every key required unless it has a default)."""

    @classmethod
    def from_json(cls, data: Any, where: str = '') -> Any:
        """The record of a JSON object, checked (the schema's one validation).

        Args:
            data (Any): The parsed JSON.
            where (str): Key path of ``data`` in its file. Defaults to ``''`` (top level).

        Returns:
            Record: The record.

        Raises:
            RecordError: A missing or unknown key, a wrong or not allowed value (named).
        """
        if not isinstance(data, dict):
            raise RecordError(f'"{where or "top level"}" is {_short(data)}, expected an object')
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in fields]
        if unknown:
            raise RecordError(f'unknown key "{".".join(filter(None, (where, str(unknown[0]))))}" '
                              f'(allowed: {", ".join(fields)})')
        hints, values = get_type_hints(cls), {}
        for name, f in fields.items():
            key = f'{where}.{name}' if where else name
            if name in data:
                values[name] = _convert(data[name], hints[name], key)
                if 'valid' in f.metadata and not f.metadata['valid'](values[name]):
                    raise RecordError(f'"{key}" is {_short(data[name])}, expected '
                                      f'{f.metadata["allowed"]}')
            elif f.default is dataclasses.MISSING:
                raise RecordError(f'"{key}" is missing ({_allowed(hints[name])})')
        return cls(**values)

    def to_json(self) -> Dict[str, Any]:
        """The JSON object of the record (``from_json(to_json())`` gives it back)."""
        return _json_of(self)


def _json_of(value: Any) -> Any:
    """``dataclasses.asdict``, leaving out the ``omit_none`` fields that are None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json_of(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (f.metadata.get('omit_none') and getattr(value, f.name) is None)}
    if isinstance(value, (list, tuple)):
        return type(value)(_json_of(v) for v in value)
    if isinstance(value, dict):
        return {k: _json_of(v) for k, v in value.items()}
    return copy.deepcopy(value)


class _File(Record):
    """A record that is a whole file, with its ``format`` and schema ``version``."""

    FORMAT: ClassVar[str] = ''
    WRITER: ClassVar[str] = ''

    @classmethod
    def from_json(cls, data: Any, where: str = '') -> Any:
        """As :meth:`Record.from_json`, after checking ``format`` and ``version``."""
        if not isinstance(data, dict):
            raise RecordError(f'"top level" is {_short(data)}, expected an object')
        got = data.get('format')
        if got != cls.FORMAT:
            raise RecordError(f'"format" is {_short(got)}, expected {cls.FORMAT!r} (a file '
                              f'written by {cls.WRITER})')
        if data.get('version') != SCHEMA_VERSION:
            raise RecordError(f'schema version {_short(data.get("version"))}: this nose_mm '
                              f'reads {cls.FORMAT} version {SCHEMA_VERSION} only; write the '
                              f'file again with {cls.WRITER}')
        return super().from_json({k: v for k, v in data.items()
                                  if k not in ('format', 'version')}, where)

    def to_json(self) -> Dict[str, Any]:
        """The file's content, ``format`` and ``version`` first."""
        return {'format': self.FORMAT, 'version': SCHEMA_VERSION, **super().to_json()}

    @classmethod
    def load(cls, path: str) -> Any:
        """Read and check the file at ``path``.

        Raises:
            RecordError: Unreadable, not JSON or not the schema (message starts with ``path``).
        """
        try:
            with open(path, encoding='utf-8') as f:
                return cls.from_json(json.load(f))
        except OSError as exc:
            raise RecordError(f'cannot be read ({exc.strerror or exc})', path) from None
        except RecordError as exc:
            raise RecordError(exc.reason, path) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordError(f'is not valid JSON ({exc})', path) from None

    def save(self, path: str) -> None:
        """Check the record as a reader will, then write it to ``path`` atomically."""
        data = self.to_json()
        type(self).from_json(data)
        atomic_write_json(path, data)


@dataclasses.dataclass
class ModelInfo(Record):
    """What a model is (:func:`nose_mm.benchmark.info.model_info`)."""

    task: str = _one_of(*TASKS)
    type: Optional[str]
    backbone: Optional[str]
    arch: Any  # a preset name or a dict of sizes
    arch_name: str
    display: str
    neck: Optional[str]
    head: Optional[str]
    removed_layers: List[int]
    diluted_layers: List[int]
    dilution_lam: Optional[float]
    token_merge: Optional[Dict[str, Any]]
    #: How the removed / diluted set was chosen (the config's ``selected_on``), or None
    #: (then not written: files of runs that name no selection are as before).
    selected_on: Optional[str] = dataclasses.field(default=None, metadata=dict(omit_none=True))

    def key(self) -> Tuple[Any, ...]:
        """What a run and a measurement must share: task, arch, removed layers, merging."""
        return (self.task, self.arch_name, tuple(sorted(self.removed_layers)),
                json.dumps(self.token_merge, sort_keys=True) if self.token_merge else None)


@dataclasses.dataclass
class GitInfo(Record):
    """The commit of the code that wrote a file (:func:`nose_mm.benchmark.env.git_commit`)."""

    commit: str
    dirty: Optional[bool]
    repo: Optional[str]


@dataclasses.dataclass
class Evaluation(Record):
    """One validation of a training run (the evaluator's numeric keys, unnormalised)."""

    epoch: int
    iter: int
    metrics: Dict[str, float]


@dataclasses.dataclass
class ResultsRecord(_File):
    """``results.json`` (written by ``ResultsHook``): what one run was and what it scored."""

    FORMAT: ClassVar[str] = 'nose_mm.results'
    WRITER: ClassVar[str] = "nose_mm's ResultsHook (tools/train.py, tools/test.py)"

    mode: str = _one_of('train', 'val', 'test')
    status: str = _one_of('ok', 'failed')
    error: Optional[str]
    dataset: Optional[str]
    model: ModelInfo
    metrics: Dict[str, float]
    tta: bool
    epoch: Optional[int]
    iter: Optional[int]
    history: List[Evaluation]
    params: Optional[int]
    backbone_params: Optional[int]
    flops: Optional[int]
    flops_input: List[int]
    config: Optional[str]
    config_sha256: Optional[str]
    config_sha256_noseed: str
    seed: Optional[int]
    checkpoint: Optional[str]
    best_checkpoint: Optional[str]
    work_dir: Optional[str]
    git: Optional[GitInfo]
    date: str
    hardware: Dict[str, Any]
    errors: Dict[str, str]
    #: the config's ``seed_varies`` (:func:`nose_mm.benchmark.seeds.seed_varies`); None: none
    seed_varies: Optional[List[str]] = None
    #: the dtype the evaluation ran under autocast (``test_cfg`` / ``val_cfg`` ``fp16``:
    #: ``'float16'`` on CUDA, ``'bfloat16'`` on CPU); None: float32
    autocast: Optional[str] = dataclasses.field(default=None, metadata={
        'allowed': 'one of float16, bfloat16', 'valid': lambda v: v in (None, 'float16',
                                                                         'bfloat16')})

    def to_json(self) -> Dict[str, Any]:
        """As :meth:`_File.to_json`; ``seed_varies`` and ``autocast`` only when set (the
        files written before they existed read and write back unchanged)."""
        data = super().to_json()
        for key in ('seed_varies', 'autocast'):
            if data.get(key) is None:
                data.pop(key, None)
        return data

    @property
    def task(self) -> str:
        """``'classification'`` or ``'segmentation'`` (the model's)."""
        return self.model.task

    def unranked(self) -> Optional[str]:
        """Why the leaderboard cannot rank the run (None: it can)."""
        if self.status != 'ok':
            return f'"status" is {self.status!r} ({self.error}): a failed run is not ranked'
        if not self.dataset:
            return '"dataset" is null: the config names no dataset'
        if not any(k in self.metrics for k in METRIC_KEYS[self.task]):
            return (f'"metrics" holds none of {", ".join(METRIC_KEYS[self.task])} (partial '
                    f'results: the run ended before any evaluation?)')
        for key in METRIC_KEYS[self.task]:  # percentages, as the evaluators report them
            value = self.metrics.get(key)
            if value is not None and not 0 <= value <= 100:
                return f'"metrics.{key}" is {value!r}, expected a percentage in [0, 100]'
        return None


@dataclasses.dataclass
class Measurement(Record):
    """One model of an interleaved timing: ``seconds`` per round, paired across the models."""

    params: int
    flops: Optional[int]
    seconds: List[float] = _valid('positive numbers, one per timed round',
                                  lambda s: bool(s) and min(s) > 0)
    peak_memory_bytes: Optional[int]

    def rate(self) -> float:
        """Median forwards per second (times the batch size: img/s)."""
        return statistics.median(1.0 / s for s in self.seconds)


@dataclasses.dataclass
class LargestBatch(Record):
    """The largest batch within a memory budget (:func:`.measure.largest_batch`)."""

    batch_size: int
    peak_bytes: Optional[int]
    capped: bool
    tried: Dict[str, Optional[int]]


@dataclasses.dataclass
class TrackedMemory(Record):
    """Tracked tensor bytes of one step on one attention path (:mod:`.memory`)."""

    peak_bytes: int
    base_bytes: int
    attention_ops: Dict[str, int]
    largest_batch: Optional[LargestBatch] = None


@dataclasses.dataclass
class MeasuredModel(Measurement):
    """A model of ``benchmark.json``: what was measured and the :class:`Measurement`."""

    name: str
    config: Optional[str]
    config_sha256: Optional[str]
    checkpoint: Optional[str]
    model: ModelInfo
    largest_batch: Optional[LargestBatch]
    tracked: Optional[Dict[str, TrackedMemory]] = None  # by attention path (memory.ATTENTION)
    # where the forwards ran (files without the key: eager torch)
    runtime: str = dataclasses.field(default='torch', metadata={
        'allowed': 'one of ' + ', '.join(RUNTIMES), 'valid': lambda value: value in RUNTIMES})


@dataclasses.dataclass
class BenchmarkSettings(Record):
    """How every model of a ``benchmark.json`` was measured (``tools/benchmark.py``'s options)."""

    batch_size: int
    img_size: List[int]
    img_size_source: str
    device: str
    precision: str = _one_of(*PRECISIONS)
    warmup: int
    repeats: int
    part: str = _one_of(*PARTS)
    num_threads: int
    clock: str = _one_of(*CLOCKS)
    memory: bool
    memory_train: bool
    memory_budget_gb: Optional[float]
    memory_method: Optional[str]
    memory_optimizer: Optional[str] = None  # optimizer state in tracked training steps
    tracked_method: Optional[str] = None  # how ``models[].tracked`` was measured


@dataclasses.dataclass
class Ratios:
    """One model over the baseline of its timing run (computed, never stored; None: unknown)."""

    params: Optional[float]
    flops: Optional[float]
    paired_ratio: Dict[str, float]  # median, q1, q3 of the per-round img/s ratios
    paired_rounds: List[float]  # every round's img/s ratio (back-to-back forwards), in order
    ratio_of_medians: Optional[float]  # median img/s over the baseline's median img/s
    ideal_speedup: Optional[float]  # baseline FLOPs / these FLOPs
    speedup_vs_ideal: Optional[float]  # paired_ratio median / ideal (1.0: as FLOPs promise)
    peak_memory: Optional[float]
    largest_batch: Optional[float]
    tracked_largest_batch: Optional[Dict[str, float]] = None  # by attention path


def _over(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or not b else a / b


def ratios(model: Measurement, base: Measurement) -> Ratios:
    """``model`` over ``base``, two models timed in one interleaved run (the one ratio code).

    Raises:
        ValueError: The two were timed in different runtimes (``MeasuredModel.runtime``).
    """
    runtimes = [getattr(m, 'runtime', 'torch') for m in (model, base)]
    if runtimes[0] != runtimes[1]:
        raise ValueError(f'a ratio of a model timed in {runtimes[0]} to one timed in '
                         f'{runtimes[1]} mixes runtimes; compare models within one runtime')
    rounds = [b / m for m, b in zip(model.seconds, base.seconds)]  # img/s over the base's
    flops = _over(model.flops, base.flops)
    ideal = 1.0 / flops if flops else None
    paired = spread(rounds)
    batches = [getattr(m, 'largest_batch', None) for m in (model, base)]
    return Ratios(
        params=_over(model.params, base.params), flops=flops, paired_ratio=paired,
        paired_rounds=rounds, ratio_of_medians=_over(model.rate(), base.rate()),
        ideal_speedup=ideal, speedup_vs_ideal=_over(paired['median'], ideal),
        peak_memory=_over(model.peak_memory_bytes, base.peak_memory_bytes),
        largest_batch=_over(*(b.batch_size for b in batches)) if all(batches) else None,
        tracked_largest_batch=_tracked_over(model, base))


def _tracked_over(model: Measurement, base: Measurement) -> Optional[Dict[str, float]]:
    """Tracked working load over the base's, per attention path both measured."""
    mine, theirs = getattr(model, 'tracked', None) or {}, getattr(base, 'tracked', None) or {}
    out = {path: mine[path].largest_batch.batch_size / theirs[path].largest_batch.batch_size
           for path in mine if path in theirs and mine[path].largest_batch
           and theirs[path].largest_batch and theirs[path].largest_batch.batch_size}
    return out or None


@dataclasses.dataclass
class BenchmarkRecord(_File):
    """``benchmark.json``: models timed interleaved in run ``run_id``, the baseline first."""

    FORMAT: ClassVar[str] = 'nose_mm.benchmark'
    WRITER: ClassVar[str] = 'tools/benchmark.py --out'

    run_id: str
    date: str
    hardware: Dict[str, Any]
    git: Optional[GitInfo]
    settings: BenchmarkSettings
    models: List[MeasuredModel] = _valid('at least one measured model', bool)

    def __post_init__(self) -> None:
        for i, model in enumerate(self.models):  # the rounds are paired across the models
            if len(model.seconds) != self.settings.repeats:
                raise RecordError(f'"models[{i}].seconds" holds {len(model.seconds)} rounds, '
                                  f'expected {self.settings.repeats} (settings.repeats)')

    def img_per_s(self, model: Measurement) -> float:
        """Median img/s of one of the models."""
        return self.settings.batch_size * model.rate()

    def baseline(self, model: Optional[MeasuredModel] = None) -> MeasuredModel:
        """The baseline of ``model``'s runtime: the first model timed in it (``models[0]``)."""
        runtime = model.runtime if model is not None else self.models[0].runtime
        return next(m for m in self.models if m.runtime == runtime)

    def ratios(self, model: MeasuredModel) -> Ratios:
        """``model`` over the baseline of its runtime (:meth:`baseline`)."""
        return ratios(model, self.baseline(model))

    def entry_for(self, info: ModelInfo, runtime: Optional[str] = None
                  ) -> Tuple[Optional[MeasuredModel], str]:
        """The measured model that is ``info``'s model (:meth:`ModelInfo.key`), or a reason.

        ``runtime`` picks the runtime (default: the run's first, ``models[0].runtime``).
        """
        runtime = runtime or self.models[0].runtime
        for entry in self.models:
            if entry.model.key() == info.key() and entry.runtime == runtime:
                return entry, ''
        timed_in = list(dict.fromkeys(m.runtime for m in self.models))
        if runtime not in timed_in:
            return None, f'times its models in {", ".join(timed_in)}, not in {runtime}'
        seen = ', '.join(dict.fromkeys(str(m.model.key()) for m in self.models))
        return None, (f'measures {seen}, not the run\'s model {info.key()} (task, arch, '
                      f'removed layers, token merging)')


@dataclasses.dataclass
class Reference(Record):
    """A published number (one entry of ``benchmarks/reference.yml``; optional keys default)."""

    id: str
    task: str = _one_of(*TASKS)
    dataset: str
    model: str
    method: str
    metrics: Dict[str, float]
    source: str
    reported: bool = _one_of(True)
    arch: Optional[str] = None
    removed_layers: Optional[List[int]] = None
    params_m: Optional[float] = None
    gflops: Optional[float] = None
    baseline: Optional[str] = None
    variant: Optional[str] = None


def normalize_metrics(metrics: Dict[str, Any], task: str, tta: bool = False) -> Dict[str, float]:
    """Map evaluator keys (``accuracy/top1``, ``mIoU``...) to the leaderboard's (``top1``...).

    Args:
        metrics (dict): The evaluator's output.
        task (str): ``'classification'`` or ``'segmentation'``.
        tta (bool): Test-time augmentation (``mIoU`` -> ``mIoU_ms_flip``). Defaults to False.

    Returns:
        dict: Normalised name -> float (non-numeric and non-finite values dropped).

    Raises:
        ValueError: An unknown task.
    """
    if task not in TASKS:
        raise ValueError(f'task must be one of {", ".join(TASKS)}, got {task!r}')
    out: Dict[str, float] = {}
    for key, value in metrics.items():
        leaf = str(key).rsplit('/', 1)[-1]
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number) and leaf in METRIC_KEYS[task] and leaf != 'mIoU_ms_flip':
            out['mIoU_ms_flip' if (tta and leaf == 'mIoU') else leaf] = number
    return out
