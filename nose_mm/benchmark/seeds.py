"""Seed folders (named and parsed here only), seed replicates and their spread.

Rules: ``benchmarks/README.md``, "Seeds and spread".
"""
import copy
import hashlib
import json
import math
import os.path as osp
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .records import ResultsRecord

__all__ = [
    'SPREAD_FACTOR', 'SEED_VARIES_KEY', 'seed_varies', 'config_sha256_noseed', 'config_seed',
    'seed_folder', 'parse_seed_folder', 'SeedGroup', 'group_seed_runs', 'mean_std',
    'pooled_std', 'beyond_spread'
]

#: Config keys (dotted) that differ between the seed runs of one experiment.
RUN_SPECIFIC_KEYS = ('randomness.seed', 'work_dir', 'load_from', 'resume', 'launcher',
                     'experiment_name')
#: A difference beyond ``SPREAD_FACTOR`` pooled stds is beyond the spread.
SPREAD_FACTOR = 2.0
_SEED_FOLDER = re.compile(r'^seed(\d+)$')
#: results.json fields that, with the model, identify what ran.
_IDENTITY_FIELDS = ('config_sha256_noseed', 'mode', 'dataset', 'tta', 'params', 'flops')
#: The config key listing (dotted) keys that its seed runs set differently by design,
#: e.g. ``['model.backbone.removed_layers']`` for a random selection drawn per seed: the
#: runs are replicates over the seed *and* what it draws (benchmarks/README.md).
SEED_VARIES_KEY = 'seed_varies'
#: Model fields (``model.backbone.<field>``) a ``seed_varies`` key may vary.
_VARIABLE_MODEL_FIELDS = ('removed_layers', 'diluted_layers')


def seed_varies(cfg: Any) -> List[str]:
    """The config's ``seed_varies`` keys (``[]`` when it has none).

    Only the layer sets a selection draws may vary (``model.backbone.`` + one of
    :data:`_VARIABLE_MODEL_FIELDS`): any other key would leave ``config_sha256_noseed``
    while the rest of the identity cannot tell its values apart, so runs that differ in
    it (another learning rate...) would be averaged as seeds of one model.

    Raises:
        ValueError: Not a list of dotted config keys, or a key that may not vary.
    """
    value = cfg.get(SEED_VARIES_KEY) if hasattr(cfg, 'get') else None
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(k, str) and k
                                                       for k in value):
        raise ValueError(f'{SEED_VARIES_KEY} must be a list of dotted config keys such as '
                         f'["model.backbone.removed_layers"], got {value!r}')
    allowed = [f'model.backbone.{f}' for f in _VARIABLE_MODEL_FIELDS]
    bad = [k for k in value if k not in allowed]
    if bad:
        raise ValueError(f'{SEED_VARIES_KEY}: {bad[0]!r} may not vary between the seeds of '
                         f'one row (runs differing in it would be averaged as replicates); '
                         f'allowed: {", ".join(allowed)}')
    return list(value)


def config_sha256_noseed(cfg: Any) -> Optional[str]:
    """sha256 of a config's sorted JSON without :data:`RUN_SPECIFIC_KEYS` (equal for its seeds).

    Args:
        cfg (Config | dict): The config.

    Returns:
        str | None: The hex digest, None for an object that is no mapping.
    """
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else \
        copy.deepcopy(cfg) if isinstance(cfg, dict) else None
    if not isinstance(data, dict):
        return None
    for dotted in (*RUN_SPECIFIC_KEYS, *seed_varies(data)):
        *parents, leaf = dotted.split('.')
        node = data
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def config_seed(cfg: Any) -> Optional[int]:
    """``randomness.seed`` of a config when it is an int, else None (unseeded)."""
    randomness = cfg.get('randomness') if hasattr(cfg, 'get') else None
    seed = randomness.get('seed') if hasattr(randomness, 'get') else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def seed_folder(seed: int) -> str:
    """The folder of a seed run: ``'seed3'`` (``tools/multi_seed.py``: ``<work_dir>/seed3``)."""
    return f'seed{seed}'


def parse_seed_folder(path: str) -> Tuple[str, Optional[int]]:
    """``('x/dilute', 2)`` for ``'x/dilute/seed2'``; ``(path, None)`` outside seed folders."""
    parent, leaf = osp.split(path.rstrip('/'))
    match = _SEED_FOLDER.match(leaf)
    return ((parent or leaf), int(match.group(1))) if match else (path, None)


def replicate_key(results: ResultsRecord) -> str:
    """The identity of a run (config without seed, mode, dataset, tta, model, params, FLOPs)."""
    data = {k: getattr(results, k) for k in _IDENTITY_FIELDS}
    data['model'] = results.model.to_json()
    for dotted in results.seed_varies or ():  # drawn per seed: not part of the identity
        parent, _, leaf = dotted.rpartition('.')
        if parent == 'model.backbone' and leaf in _VARIABLE_MODEL_FIELDS:
            data['model'].pop(leaf, None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


@dataclass
class SeedGroup:
    """Runs that are seed replicates of one another (one run: a group of 1).

    Attributes:
        label (str): The family folder of ``seed<k>`` runs, else the labels joined by ' + '.
        runs (list): The runs (with a ``label`` and ``results``), by seed.
    """

    label: str
    runs: List[Any] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of runs."""
        return len(self.runs)

    @property
    def labels(self) -> List[str]:
        """The runs' own labels, by seed."""
        return [run.label for run in self.runs]

    @property
    def seeds(self) -> List[Optional[int]]:
        """The runs' seeds."""
        return [run.results.seed for run in self.runs]

    def values(self, metric: str) -> List[float]:
        """The metric of every run that has it, in seed order."""
        return [run.results.metrics[metric] for run in self.runs
                if metric in run.results.metrics]


def _difference(a: ResultsRecord, b: ResultsRecord) -> str:
    da, db = ({'config (seed removed)': r.config_sha256_noseed[:12], 'mode': r.mode,
               'dataset': r.dataset, 'arch': r.model.arch_name,
               'removed_layers': r.model.removed_layers,
               'diluted_layers': r.model.diluted_layers, 'token_merge': r.model.token_merge,
               'params': r.params, 'flops': r.flops} for r in (a, b))
    return ', '.join(f'{name} {da[name]!r} vs {db[name]!r}' for name in da
                     if da[name] != db[name]) or 'model info'


def group_seed_runs(runs: Sequence[Any]) -> Tuple[List[SeedGroup], List[str]]:
    """Group runs that differ only in their seed.

    Args:
        runs (sequence): Runs with a ``label`` (their folder) and ``results`` (a
            ``ResultsRecord``), e.g. :class:`~.leaderboard.collect.Run`.

    Returns:
        tuple: ``(groups, warnings)``: groups in the order of their first run, each
        run in one group; a warning per run kept apart from its seed siblings.
    """
    groups: List[SeedGroup] = []
    by_key: Dict[str, SeedGroup] = {}
    warnings: List[str] = []
    for run in runs:
        seed, key = run.results.seed, replicate_key(run.results)
        in_folder = parse_seed_folder(run.label)[1] is not None
        group = by_key.get(key) if seed is not None else None
        if group is not None and seed in group.seeds:
            if in_folder:  # re-runs elsewhere (a second test of one checkpoint) are just rows
                twin = group.labels[group.seeds.index(seed)]
                warnings.append(f'{run.label}: seed {seed} repeats the seed of {twin} (same '
                                f'config and model): kept as a separate row, not averaged')
            group = None
        elif seed is None and in_folder:
            warnings.append(f'{run.label}: records no seed (randomness.seed unset): kept as a '
                            f'separate row')
        if group is None:
            group = SeedGroup(label=run.label)
            groups.append(group)
            if seed is not None:
                by_key.setdefault(key, group)
        group.runs.append(run)
    for group in groups:
        group.runs.sort(key=lambda r: (r.results.seed is None, r.results.seed or 0))
        families = {parse_seed_folder(lb)[0] for lb in group.labels}
        in_folders = all(parse_seed_folder(lb)[1] is not None for lb in group.labels)
        group.label = families.pop() if in_folders and len(families) == 1 else \
            ' + '.join(group.labels)
    # seed folders of one family that did not end up in one group
    by_family: Dict[str, List[SeedGroup]] = {}
    for group in groups:
        for lb in group.labels:
            family, folder_seed = parse_seed_folder(lb)
            members = by_family.setdefault(family, [])
            if folder_seed is not None and group not in members:
                members.append(group)
    for members in by_family.values():
        if len(members) < 2:
            continue
        main = max(members, key=lambda g: g.n)  # the first of the largest
        for group in members:
            if group is main:
                continue
            first = group.runs[0].results
            group.label = ' + '.join(group.labels)  # the family's name is its main group's
            if first.seed is not None and replicate_key(first) != replicate_key(
                    main.runs[0].results):  # else: no seed or a repeated seed, warned above
                warnings.append(
                    f'{", ".join(group.labels)}: differs from the seed run(s) '
                    f'{", ".join(main.labels)} in {_difference(first, main.runs[0].results)}: '
                    f'kept as a separate row')
    return groups, warnings


def mean_std(values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    """``(mean, sample std)``; std is None for fewer than 2 values, both None for none."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def pooled_std(groups: Sequence[Tuple[float, int]]) -> Optional[float]:
    """Pooled sample std of groups given as ``(std, n)``; None if a group has n < 2."""
    if not groups or any(n < 2 or std is None for std, n in groups):
        return None
    dof = sum(n - 1 for _, n in groups)
    return math.sqrt(sum((n - 1) * std**2 for std, n in groups) / dof)


def beyond_spread(mean: float, std: Optional[float], n: int, base_mean: float,
                  base_std: Optional[float], base_n: int,
                  factor: float = SPREAD_FACTOR) -> Optional[bool]:
    """Whether ``|mean - base_mean| > factor * pooled std``.

    Args:
        mean, base_mean (float): The row's and the baseline's means.
        std, base_std (float, optional): Their sample stds (None for one run).
        n, base_n (int): Their numbers of seeds.
        factor (float): Multiple of the pooled std. Defaults to :data:`SPREAD_FACTOR`.

    Returns:
        bool | None: None (spread unknown) when either side has fewer than 2 seeds.
    """
    pooled = pooled_std([(std, n), (base_std, base_n)])
    if pooled is None:
        return None
    return abs(mean - base_mean) > factor * pooled
