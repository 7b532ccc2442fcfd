"""Runs of one config over several seeds: seed folders, replicates and their spread.

A run is a replicate of another when everything that ran is the same except
``randomness.seed`` (:func:`replicate_key`: the config without its run-specific
keys, mode, dataset, test-time augmentation, model, params, FLOPs). Runs with
equal identities and distinct seeds form one group; a run in a ``seed<k>``
folder that differs from its siblings, records no seed or repeats a seed stays
on its own, with a warning. :func:`beyond_spread`: ``|mean - base mean| > 2 s_p``,
``s_p`` the pooled sample std (unknown below 2 seeds on either side). Rules:
``benchmarks/README.md``, "Seeds and spread". Seed folders are named and parsed by
:func:`seed_folder` and :func:`parse_seed_folder` only.
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
    'RUN_SPECIFIC_KEYS', 'SPREAD_FACTOR', 'config_sha256_noseed', 'config_seed', 'seed_folder',
    'parse_seed_folder', 'replicate_key', 'SeedGroup', 'group_seed_runs', 'mean_std',
    'pooled_std', 'beyond_spread'
]

#: Config keys that differ between the seed runs of one experiment and are not
#: part of its identity (dotted paths).
RUN_SPECIFIC_KEYS = ('randomness.seed', 'work_dir', 'load_from', 'resume', 'launcher',
                     'experiment_name')
#: A difference beyond ``SPREAD_FACTOR`` pooled stds is beyond the spread.
SPREAD_FACTOR = 2.0
_SEED_FOLDER = re.compile(r'^seed(\d+)$')
#: results.json fields that, with the model, identify what ran.
_IDENTITY_FIELDS = ('config_sha256_noseed', 'mode', 'dataset', 'tta', 'params', 'flops')


def config_sha256_noseed(cfg: Any) -> Optional[str]:
    """sha256 of a config without :data:`RUN_SPECIFIC_KEYS`.

    The config (an mmengine ``Config`` or a dict) is turned into JSON with
    sorted keys (values JSON cannot hold are written as ``str``); the seed
    runs of one config give the same hash.

    Returns:
        str | None: The hex digest, None for an object that is no mapping.
    """
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else \
        copy.deepcopy(cfg) if isinstance(cfg, dict) else None
    if not isinstance(data, dict):
        return None
    for dotted in RUN_SPECIFIC_KEYS:
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
    """The identity of a run (see the module docstring): equal for its seed replicates."""
    data = {k: getattr(results, k) for k in _IDENTITY_FIELDS}
    data['model'] = results.model.to_json()
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


@dataclass
class SeedGroup:
    """Runs that are seed replicates of one another (one run: a group of 1).

    Attributes:
        label (str): The runs' common label (their family folder when they sit
            in ``seed<k>`` folders, else the labels joined by ``' + '``).
        runs (list): The runs (each with a ``label`` and its ``results``, a
            :class:`~nose_mm.benchmark.records.ResultsRecord`), by seed.
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


def _describe(r: ResultsRecord) -> Dict[str, Any]:
    return {'config (seed removed)': r.config_sha256_noseed[:12], 'mode': r.mode,
            'dataset': r.dataset, 'arch': r.model.arch_name,
            'removed_layers': r.model.removed_layers, 'diluted_layers': r.model.diluted_layers,
            'token_merge': r.model.token_merge, 'params': r.params, 'flops': r.flops}


def _difference(a: ResultsRecord, b: ResultsRecord) -> str:
    da, db = _describe(a), _describe(b)
    return ', '.join(f'{name} {da[name]!r} vs {db[name]!r}' for name in da
                     if da[name] != db[name]) or 'model info'


def group_seed_runs(runs: Sequence[Any]) -> Tuple[List[SeedGroup], List[str]]:
    """Group runs that differ only in their seed.

    Args:
        runs (sequence): Runs with a ``label`` (their folder) and ``results``
            (a :class:`~nose_mm.benchmark.records.ResultsRecord`), e.g.
            :class:`nose_mm.benchmark.leaderboard.collect.Run`.

    Returns:
        tuple: ``(groups, warnings)``: groups in the order of their first run
        (runs in seed order), each run in exactly one group; a warning for
        every run kept apart from the seed runs it sits with (see the module
        docstring).
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
    """Whether ``|mean - base_mean| > factor * pooled std`` (None: spread unknown).

    Args:
        mean (float): The row's mean.
        std (float, optional): Its sample std (None for one run).
        n (int): Its number of seeds.
        base_mean (float): The baseline's mean.
        base_std (float, optional): Its sample std.
        base_n (int): Its number of seeds.
        factor (float): Multiple of the pooled std. Defaults to
            :data:`SPREAD_FACTOR`.

    Returns:
        bool | None: None when either side has fewer than 2 seeds.
    """
    pooled = pooled_std([(std, n), (base_std, base_n)])
    if pooled is None:
        return None
    return abs(mean - base_mean) > factor * pooled
