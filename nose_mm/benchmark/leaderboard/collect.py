"""Collecting runs: ``results.json`` files and their ``benchmark.json`` timing, as records.

Nothing is written; bad files are named in ``problems``: a :class:`Skipped` problem left an
input out (unreadable, stale or unfinished), any other is a warning about a row. Rules:
``benchmarks/README.md``.
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..info import BENCHMARK_FILE, RESULTS_FILE
from ..records import BenchmarkRecord, MeasuredModel, RecordError, Reference, ResultsRecord
from ..seeds import parse_seed_folder

__all__ = ['Skipped', 'OtherModel', 'read_timing', 'collect_runs', 'load_reference']

REFERENCE_FORMAT = 'nose_mm.reference'
#: A ``benchmark.json`` and its measured model that is a run's model.
Timing = Tuple[BenchmarkRecord, MeasuredModel]


class Skipped(str):
    """A problem that leaves an input out of the leaderboard (the text names the file)."""


class OtherModel(str):
    """A ``benchmark.json`` beside a run that times other models than the run's (a warning;
    expected for the draws of a ``seed_varies`` row but the one timed)."""


def stale_checkpoint(results: ResultsRecord) -> Optional[str]:
    """Why the record's checkpoint says it is stale (None: its local checkpoint exists)."""
    ckpt = results.checkpoint
    if not ckpt or '://' in ckpt or osp.exists(ckpt):
        return None
    return (f'its checkpoint {ckpt} no longer exists (removed, or overwritten by a later run '
            f'in the same work dir): the record no longer describes a model that exists')


@dataclass
class Run:
    """One rankable run: its label (run folder), ``results.json`` path, record and timing."""

    label: str
    path: str
    results: ResultsRecord
    timing: Optional[Timing] = None


def _find_results(paths: Sequence[str], depth: int) -> Tuple[List[Tuple[str, str]], List[str]]:
    """``([(root, results.json path)], problems)``, each file once."""
    found: Dict[str, str] = {}
    problems = []
    for root in paths:
        if osp.isfile(root):
            found.setdefault(osp.abspath(root), root)
            continue
        if not osp.isdir(root):
            problems.append(Skipped(f'{root}: no such file or folder'))
            continue
        hits, level, before = [], [root], len(problems)
        for _ in range(depth + 1):
            nxt = []
            for folder in level:
                if osp.isfile(osp.join(folder, RESULTS_FILE)):
                    hits.append(osp.join(folder, RESULTS_FILE))
                elif osp.isfile(osp.join(folder, RESULTS_FILE + '.previous')):
                    problems.append(Skipped(  # ResultsHook moved the earlier record aside
                        f'{folder}: a run started there and did not finish (still running, '
                        f'or killed): no {RESULTS_FILE}, the earlier run\'s record is '
                        f'{RESULTS_FILE}.previous'))
                try:
                    nxt += [osp.join(folder, d) for d in sorted(os.listdir(folder))
                            if osp.isdir(osp.join(folder, d))]
                except OSError as exc:  # its runs would be missing from the table
                    problems.append(Skipped(f'{folder}: cannot be listed '
                                            f'({exc.strerror or exc})'))
                    continue
            level = nxt
        if not hits and len(problems) == before:  # nothing found, nothing said about it
            problems.append(Skipped(f'{root}: no {RESULTS_FILE} in it or up to {depth} levels '
                                    f'below'))
        for hit in hits:
            found.setdefault(osp.abspath(hit), root)
    return [(root, path) for path, root in found.items()], problems


def _run_label(root: str, path: str) -> str:
    """The run folder relative to ``root``; a seed folder with its family (``x/seed1``)."""
    folder, root = osp.dirname(osp.abspath(path)), osp.abspath(root)
    label = osp.basename(folder) if osp.isfile(root) or folder == root else \
        osp.relpath(folder, root)
    if osp.dirname(label) or parse_seed_folder(label)[1] is None:
        return label
    return osp.join(osp.basename(osp.dirname(folder)), label)


def read_timing(path: str, results: ResultsRecord,
                runtime: Optional[str] = None) -> Union[Timing, str]:
    """The entry of the ``benchmark.json`` at ``path`` measuring the run's model, or why not.

    ``runtime``: the entry timed in that runtime (default: the file's first runtime).
    """
    try:
        record = BenchmarkRecord.load(path)
    except RecordError as exc:
        return Skipped(f'{path}: not merged: {exc.reason}')
    entry, reason = record.entry_for(results.model, runtime)
    if entry:
        return record, entry
    other_model = any(m.runtime == (runtime or record.models[0].runtime) for m in record.models)
    return (OtherModel if other_model else str)(f'{path}: not merged: {reason}')


def collect_runs(paths: Sequence[str], depth: int = 2,
                 runtime: Optional[str] = None) -> Tuple[List[Run], List[str]]:
    """Every rankable ``results.json`` under ``paths``, with its ``benchmark.json`` timing.

    Args:
        paths (sequence of str): Work dirs, folders of work dirs, or ``results.json`` files.
        depth (int): Folder levels searched below each path. Defaults to 2.
        runtime (str, optional): Timings of this runtime (default: each file's first).

    Returns:
        tuple: ``(runs, problems)``, each problem naming the file and what is wrong.
    """
    files, problems = _find_results(paths, depth)
    runs = []
    for root, path in files:
        try:
            results = ResultsRecord.load(path)
        except RecordError as exc:
            problems.append(Skipped(exc))
            continue
        unranked = results.unranked()
        if unranked:  # a failed run is a finished record of a failure: a warning
            problems.append(f'{path}: {unranked}' if results.status == 'failed'
                            else Skipped(f'{path}: {unranked}'))
            continue
        stale = stale_checkpoint(results)
        if stale:
            problems.append(Skipped(f'{path}: {stale}'))
            continue
        run = Run(_run_label(root, path), path, results)
        folder = osp.dirname(osp.abspath(path))
        family = osp.dirname(folder) if parse_seed_folder(folder)[1] is not None else None
        for where in (folder, family):
            if where and osp.isfile(osp.join(where, BENCHMARK_FILE)):
                timing = read_timing(osp.join(where, BENCHMARK_FILE), results, runtime)
                if isinstance(timing, str):
                    # a per-seed draw: its row takes the timing of the draw that was timed;
                    # a file that cannot be read, or lacks the runtime, is said in any case
                    if not (results.seed_varies and isinstance(timing, OtherModel)):
                        problems.append(timing)
                    continue
                run.timing = timing
                break
        runs.append(run)
    seen = set()  # one of each, keeping its kind
    return runs, [p for p in problems if not (p in seen or seen.add(p))]


def load_reference(path: str) -> Tuple[List[Reference], List[str]]:
    """Published numbers from a reference YAML (see ``benchmarks/reference.yml``).

    Args:
        path (str): The YAML file.

    Returns:
        tuple: ``(references, problems)``; a malformed entry is skipped and named.
    """
    import yaml
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        return [], [Skipped(f'{path}: cannot be read ({exc.strerror or exc})')]
    except yaml.YAMLError as exc:
        return [], [Skipped(f'{path}: is not valid YAML ({exc})')]
    if not isinstance(data, dict) or data.get('format') != REFERENCE_FORMAT or \
            not isinstance(data.get('references'), list):
        return [], [Skipped(f'{path}: expected format: {REFERENCE_FORMAT} and a "references" '
                            f'list')]
    refs: List[Reference] = []
    problems = []
    for i, entry in enumerate(data['references']):
        try:
            ref = Reference.from_json(entry, f'references[{i}]')
        except RecordError as exc:
            problems.append(Skipped(f'{path}: {exc}'))
            continue
        if ref.id in {r.id for r in refs}:
            problems.append(f'{path}: references[{i}]: duplicate id {ref.id!r}')
        elif not ref.metrics:
            problems.append(f'{path}: references[{i}] ({ref.id}): no metric')
        else:
            refs.append(ref)
    return refs, problems
