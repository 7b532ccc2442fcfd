"""Runs of one config over several seeds: which runs are replicates, and their spread.

A run is a replicate of another when everything that ran is the same except
``randomness.seed``. The identity of a run (:func:`replicate_key`) is read from
its ``results.json``:

    config_sha256_noseed   sha256 of the config without the run-specific keys
                           (randomness.seed, work_dir, load_from, resume, launcher,
                           experiment_name)
    task, mode, dataset, tta, model info (arch, head, token merging...),
    removed_layers, diluted_layers, params, flops

Runs with equal identities and distinct seeds form one group (mean, sample
std, n and the per-seed values of every metric). A run stays on its own,
with a warning when it sits in a ``seed<k>`` folder (``tools/multi_seed.py``),
when its identity differs from its sibling seed runs' (another config, other
removed layers...), when it records no seed or a malformed one, or when its
seed repeats one already in its group (outside seed folders a repeated seed,
e.g. a second test of one checkpoint, is just another row).

Spread rule (:func:`beyond_spread`): a difference of means counts as beyond
the run-to-run spread when ``|mean - base mean| > 2 * s_p``, with ``s_p`` the
pooled sample std of the two groups; it is unknown when either group has
fewer than 2 seeds. Plain Python; no framework imports.
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

__all__ = [
    'RUN_SPECIFIC_KEYS', 'SPREAD_FACTOR', 'SEED_FOLDER', 'config_sha256_noseed', 'config_seed',
    'replicate_key', 'seed_family', 'SeedGroup', 'group_seed_runs', 'mean_std', 'pooled_std',
    'beyond_spread'
]

#: Config keys that differ between the seed runs of one experiment and are not
#: part of its identity (dotted paths).
RUN_SPECIFIC_KEYS = ('randomness.seed', 'work_dir', 'load_from', 'resume', 'launcher',
                     'experiment_name')
#: A difference beyond ``SPREAD_FACTOR`` pooled stds is beyond the spread.
SPREAD_FACTOR = 2.0
#: Folder name of a seed run (``tools/multi_seed.py`` writes ``<work_dir>/seed<k>``).
SEED_FOLDER = re.compile(r'^seed(\d+)$')
#: results.json fields that, with ``config_sha256_noseed``, identify what ran.
_IDENTITY_FIELDS = ('task', 'mode', 'dataset', 'tta', 'model', 'removed_layers',
                    'diluted_layers', 'params', 'flops')


def _to_plain(cfg: Any) -> Any:
    if hasattr(cfg, 'to_dict'):
        return cfg.to_dict()
    return copy.deepcopy(dict(cfg)) if isinstance(cfg, dict) else cfg


def config_sha256_noseed(cfg: Any) -> Optional[str]:
    """sha256 of a config without :data:`RUN_SPECIFIC_KEYS`.

    The config (an mmengine ``Config`` or a dict) is turned into JSON with
    sorted keys (values JSON cannot hold are written as ``str``); the seed
    runs of one config give the same hash.

    Returns:
        str | None: The hex digest, None for an object that is no mapping.
    """
    data = _to_plain(cfg)
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


def replicate_key(results: Dict[str, Any]) -> Optional[str]:
    """The identity of a run (see the module docstring), None without a seedless hash."""
    noseed = results.get('config_sha256_noseed')
    if not isinstance(noseed, str) or not noseed:
        return None
    data = {k: results.get(k) for k in _IDENTITY_FIELDS}
    data['config_sha256_noseed'] = noseed
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def seed_family(label: str) -> Tuple[str, Optional[int]]:
    """``('x/dilute_nose', 2)`` for ``'x/dilute_nose/seed2'``; ``(label, None)`` otherwise."""
    parent, leaf = osp.split(label.rstrip('/'))
    match = SEED_FOLDER.match(leaf)
    if not match:
        return label, None
    return (parent or leaf), int(match.group(1))


@dataclass
class SeedGroup:
    """Runs that are seed replicates of one another (one run: a group of 1).

    Attributes:
        label (str): The runs' common label (their family folder when they sit
            in ``seed<k>`` folders, else the labels joined by ``' + '``).
        runs (list[dict]): ``results.json`` contents, by seed.
        labels (list[str]): The runs' own labels, in the same order.
        seeds (list[int | None]): Their seeds.
    """

    label: str
    runs: List[Dict[str, Any]] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)
    seeds: List[Optional[int]] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of runs."""
        return len(self.runs)

    def values(self, metric: str) -> List[float]:
        """The metric of every run that has it, in seed order."""
        out = []
        for run in self.runs:
            value = (run.get('metrics') or {}).get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.append(float(value))
        return out


def _describe(results: Dict[str, Any]) -> Dict[str, Any]:
    model = results.get('model') or {}
    noseed = results.get('config_sha256_noseed')
    return {'config (seed removed)': noseed[:12] if isinstance(noseed, str) else noseed,
            'mode': results.get('mode'), 'dataset': results.get('dataset'),
            'arch': model.get('arch_name'), 'removed_layers': results.get('removed_layers'),
            'diluted_layers': results.get('diluted_layers'),
            'token_merge': model.get('token_merge'), 'params': results.get('params'),
            'flops': results.get('flops')}


def _difference(a: Dict[str, Any], b: Dict[str, Any]) -> str:
    da, db = _describe(a), _describe(b)
    return ', '.join(f'{name} {da[name]!r} vs {db[name]!r}' for name in da
                     if da[name] != db[name]) or 'model info'


def _seed_of(data: Dict[str, Any]) -> Optional[int]:
    seed = data.get('seed')
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def group_seed_runs(runs: Sequence[Tuple[str, Dict[str, Any]]]
                    ) -> Tuple[List[SeedGroup], List[str]]:
    """Group runs that differ only in their seed.

    Args:
        runs (sequence): ``(label, results.json content)`` pairs (valid
            results, e.g. from :func:`~nose_mm.benchmark.results.load_run`).

    Returns:
        tuple: ``(groups, warnings)``: groups in the order of their first run
        (runs in seed order), each run in exactly one group; a warning for
        every run kept apart from the seed runs it sits with (see the module
        docstring).
    """
    groups: List[SeedGroup] = []
    by_key: Dict[str, SeedGroup] = {}
    warnings: List[str] = []
    for label, data in runs:
        seed, key = _seed_of(data), replicate_key(data)
        group = by_key.get(key) if key is not None and seed is not None else None
        if seed is None and data.get('seed') is not None:
            warnings.append(f'{label}: "seed" is {data.get("seed")!r}, expected an integer: '
                            f'kept as a separate row')
        elif group is not None and seed in group.seeds:
            if seed_family(label)[1] is not None:  # re-runs elsewhere are just rows
                twin = group.labels[group.seeds.index(seed)]
                warnings.append(f'{label}: seed {seed} repeats the seed of {twin} (same '
                                f'config and model): kept as a separate row, not averaged')
            group = None
        elif seed_family(label)[1] is not None and (seed is None or key is None):
            what = 'no seed (randomness.seed unset)' if seed is None else \
                'no config_sha256_noseed (written by an older nose_mm)'
            warnings.append(f'{label}: records {what}: kept as a separate row')
        if group is None:
            group = SeedGroup(label=label)
            groups.append(group)
            if key is not None and seed is not None:
                by_key.setdefault(key, group)
        group.runs.append(data)
        group.labels.append(label)
        group.seeds.append(seed)
    for group in groups:
        order = sorted(range(group.n), key=lambda i: (group.seeds[i] is None,
                                                      group.seeds[i] or 0))
        group.runs = [group.runs[i] for i in order]
        group.labels = [group.labels[i] for i in order]
        group.seeds = [group.seeds[i] for i in order]
        families = {seed_family(lb)[0] for lb in group.labels}
        in_folders = all(seed_family(lb)[1] is not None for lb in group.labels)
        group.label = families.pop() if in_folders and len(families) == 1 else \
            ' + '.join(group.labels)
    # seed folders of one family that did not end up in one group
    by_family: Dict[str, List[SeedGroup]] = {}
    for group in groups:
        for lb in group.labels:
            family, folder_seed = seed_family(lb)
            members = by_family.setdefault(family, [])
            if folder_seed is not None and group not in members:
                members.append(group)
    for family, members in by_family.items():
        if len(members) < 2:
            continue
        main = max(members, key=lambda g: g.n)  # the first of the largest
        for group in members:
            if group is not main:  # the family's name belongs to its main group
                group.label = ' + '.join(group.labels)
            if group is main or _seed_of(group.runs[0]) is None or \
                    replicate_key(group.runs[0]) is None:
                continue  # no seed / no identity: warned above
            if replicate_key(group.runs[0]) == replicate_key(main.runs[0]):
                continue  # a repeated seed: warned above
            warnings.append(
                f'{", ".join(group.labels)}: differs from the seed run(s) '
                f'{", ".join(main.labels)} in {_difference(group.runs[0], main.runs[0])}: '
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
