"""What the demo's figures depend on, recorded in its summary (README, "The demo").

The seeded runs repeat bit for bit on one CPU model at one thread count; another CPU
model, or another number of torch threads, sums in another order, and the figures
drift apart (the NOSE selection included). The summary
records both. A NOSE step whose chosen layer beats the runner-up by less than
:data:`NEAR_TIE_NATS` is reported as a near tie rather than as the answer.
"""
import os
from typing import Any, Dict, List, Sequence

from nose_mm.benchmark.env import env_info

__all__ = ['NEAR_TIE_NATS', 'machine_record', 'selection_margins', 'near_ties', 'report_lines']

#: On the demo's baseline one layer's transfer entropy varies by 0.014-0.028 nats from
#: one calibration sample of 1,024 images to the next (README, "Selection stability");
#: a margin below 0.05 (about twice that) can flip with the sample, the CPU or the
#: thread count.
NEAR_TIE_NATS = 0.05


def machine_record(workers: int, threads: int) -> Dict[str, Any]:
    """The CPU model, its cores, and the demo's workers and torch threads per worker."""
    return dict(cpu_model=env_info().get('cpu_model'), cpu_count=os.cpu_count(),
                workers=workers, threads_per_worker=threads)


def selection_margins(record: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per greedy step of a NOSE record: the chosen layer, the runner-up and the margin.

    The margin is the runner-up's score minus the chosen one's (``|TE|`` for the ``abs``
    criterion, TE for ``signed``), in nats; empty for records without a TE table.
    """
    table, candidates = record.get('te_table'), record.get('candidates') or []
    if not table:
        return []
    signed = record.get('criterion') == 'signed'
    out = []
    for step, (row, chosen) in enumerate(zip(table, record['selection'])):
        scores = sorted((te if signed else abs(te), layer)
                        for layer, te in zip(candidates, row) if te is not None)
        best = next(s for s, layer in scores if layer == chosen)
        rest = [(s, layer) for s, layer in scores if layer != chosen]
        if rest:
            out.append(dict(step=step + 1, chosen=chosen, runner_up=rest[0][1],
                            margin=rest[0][0] - best))
    return out


def near_ties(record: Dict[str, Any], nats: float = NEAR_TIE_NATS) -> List[Dict[str, Any]]:
    """The steps of :func:`selection_margins` closer than ``nats``."""
    return [m for m in selection_margins(record) if m['margin'] < nats]


def report_lines(machine: Dict[str, Any], ties: Dict[str, Sequence[dict]],
                 selections: Dict[str, list]) -> List[str]:
    """The summary's lines on where its figures repeat and which selections are near ties."""
    lines = [f"ran on {machine['cpu_model'] or 'an unknown CPU'} ({machine['cpu_count']} "
             f"cores), {machine['workers']} workers x {machine['threads_per_worker']} torch "
             f"thread(s): the seeded figures repeat on this CPU model at this thread count, "
             f"not on other CPUs or thread counts"]
    for key, steps in ties.items():
        for tie in steps:
            lines.append(
                f"selection {key} {selections.get(key)} is a near tie at step {tie['step']}: "
                f"layer {tie['chosen']} beat layer {tie['runner_up']} by {tie['margin']:.3f} "
                f"nats (< {NEAR_TIE_NATS}), within the calibration sample's noise: another "
                f"sample, CPU or thread count may select the other (README, selection "
                f"stability)")
    return lines
