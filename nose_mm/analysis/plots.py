"""PNG figures (matplotlib's Agg canvas, no global backend) and CSV tables, atomically."""
import csv
import math
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from nose_mm.utils.fileio import atomic_write

__all__ = ['save_figure', 'plot_te_heatmap', 'plot_block_entropy', 'plot_frequency',
           'block_report']


def block_report(rows: Sequence[dict], columns: Sequence[Tuple[str, str]], fmt: str,
                 paths: Sequence[str]) -> str:
    """One line per block (``block  3: <label> <value> ...``) and the files written.

    Args:
        rows (list[dict]): Per-block results with a ``block`` key.
        columns (list[tuple[str, str]]): ``(label, key)`` pairs to show.
        fmt (str): Format spec of the values, e.g. ``'10.3f'``.
        paths (list[str]): The files written.
    """
    lines = ['block {:2d}: '.format(r['block'])
             + '  '.join(f'{label} {r[key]:{fmt}}' for label, key in columns) for r in rows]
    return '\n'.join(lines + ['wrote ' + ', '.join(paths)])


def write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write a CSV file atomically (None and NaN are written as empty cells)."""

    def cell(v):
        return '' if v is None or (isinstance(v, float) and math.isnan(v)) else v

    def _write(tmp: str) -> None:
        with open(tmp, 'w', newline='', encoding='utf-8') as f:
            csv.writer(f).writerows([list(header)] + [[cell(v) for v in row] for row in rows])

    atomic_write(path, _write)


def save_figure(fig, path: str, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=dpi,
                                               bbox_inches='tight'))


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, ncols)


def plot_te_heatmap(record: Dict[str, Any], out_dir: str,
                    name: str = 'te_heatmap') -> Dict[str, str]:
    """The per-step TE heatmap of a NOSE selection (paper Fig. 4) and its CSV.

    Args:
        record (dict): A selection record with ``te_table``.
        out_dir (str): Output folder (created).
        name (str): File stem. Defaults to ``'te_heatmap'``.

    Returns:
        dict: ``{'png': path, 'csv': path}``.
    """
    table = record.get('te_table')
    if not table:
        raise ValueError(f'the selection record (method {record.get("method")!r}) has no TE '
                         f'table; only method "nose" produces one')
    rows = [[step, layer, *row] for step, (layer, row) in
            enumerate(zip(record['selection'], table))]
    candidates = record['candidates']
    paths = dict(png=osp.join(out_dir, name + '.png'), csv=osp.join(out_dir, name + '.csv'))
    write_csv(paths['csv'], ['step', 'selected'] + [f'layer_{c}' for c in candidates], rows)

    table = np.array(table, dtype=np.float64)  # None -> NaN
    fig, ax = _figure(0.6 * len(candidates) + 2.5, 0.5 * len(rows) + 2)
    image = ax.imshow(np.ma.masked_invalid(table), cmap='viridis', aspect='auto')
    ax.set_xticks(range(len(candidates)), [str(c) for c in candidates])
    ax.set_yticks(range(len(rows)), [f'{s + 1}: {layer}' for s, layer, *_ in rows])
    ax.set_xlabel('candidate attention layer')
    ax.set_ylabel('step: selected layer')
    from matplotlib.patches import Rectangle
    for step, layer in enumerate(record['selection']):
        ax.add_patch(Rectangle((candidates.index(layer) - 0.5, step - 0.5), 1, 1, fill=False,
                               edgecolor='red', linewidth=2))
    for (r, c), value in np.ndenumerate(table):
        if not np.isnan(value):
            ax.text(c, r, f'{value:.2g}', ha='center', va='center', fontsize=7, color='w')
    crit = record.get('criterion') or 'abs'
    how = [f'{crit} criterion', f'{record.get("skip_mode") or "identity"} skip']
    if record.get('split'):
        how.append(f'{record.get("num_samples")} {record["split"]} images')
    ax.set_title(f'transfer entropy per step ({", ".join(how)})')
    fig.colorbar(image, ax=ax, label='TE = H(full) - H(skip)')
    save_figure(fig, paths['png'])
    return paths


def plot_block_entropy(rows: List[Dict[str, float]], out_dir: str,
                       name: str = 'block_entropy') -> Dict[str, str]:
    """Per-block attention vs MLP branch entropy (paper Fig. 1) and its CSV.

    Args:
        rows (list[dict]): From :func:`nose_mm.analysis.block_entropies`.
        out_dir (str): Output folder.
        name (str): File stem. Defaults to ``'block_entropy'``.

    Returns:
        dict: ``{'png': path, 'csv': path}``.
    """
    paths = dict(png=osp.join(out_dir, name + '.png'), csv=osp.join(out_dir, name + '.csv'))
    keys = ['block', 'attn_entropy', 'mlp_entropy', 'attn_cosine']
    write_csv(paths['csv'], keys, [[r[k] for k in keys] for r in rows])
    fig, ax = _figure(7, 4)
    blocks = [r['block'] for r in rows]
    ax.plot(blocks, [r['attn_entropy'] for r in rows], 'o-', label='attention branch')
    ax.plot(blocks, [r['mlp_entropy'] for r in rows], 's-', label='MLP branch')
    ax.set_xticks(blocks)
    ax.set_xlabel('block')
    ax.set_ylabel('entropy  sum_d log std_d')
    ax.legend()
    ax.set_title('output entropy per block')
    save_figure(fig, paths['png'])
    return paths


def plot_frequency(results: List[Dict[str, Any]], out_dir: str,
                   edges: Optional[Sequence[float]] = None,
                   name: str = 'frequency') -> Dict[str, str]:
    """Per-block radial magnitude profiles and band shares (paper Fig. 5), plus CSVs.

    Args:
        results (list[dict]): From :func:`nose_mm.analysis.frequency_analysis`.
        out_dir (str): Output folder.
        edges (Sequence[float], optional): Band edges to draw and note. Defaults to None.
        name (str): File stem. Defaults to ``'frequency'``.

    Returns:
        dict: ``{'png': path, 'csv': path, 'profile_csv': path}``.
    """
    paths = dict(png=osp.join(out_dir, name + '.png'), csv=osp.join(out_dir, name + '.csv'),
                 profile_csv=osp.join(out_dir, name + '_profile.csv'))
    edge_note = '' if edges is None else f' (edges {edges[0]:.4g}, {edges[1]:.4g})'
    write_csv(paths['csv'], ['block', 'low', 'mid', 'high'],
              [[r['block'], r['low'], r['mid'], r['high']] for r in results])
    centres = results[0]['profile_centres']
    write_csv(paths['profile_csv'], ['block'] + [f'r_{c:.3f}' for c in centres],
              [[r['block'], *r['profile']] for r in results])

    fig, (ax1, ax2) = _figure(12, 4, ncols=2)
    for r in results:
        ax1.plot(centres, r['profile'], label=f'block {r["block"]}')
    if edges is not None:
        for e in edges:
            ax1.axvline(e, color='grey', linestyle='--', linewidth=0.8)
    ax1.set_yscale('log')
    ax1.set_xlabel('normalised radial frequency')
    ax1.set_ylabel('mean |F|')
    ax1.legend(fontsize=6, ncol=2)
    blocks = np.array([r['block'] for r in results])
    bottom = np.zeros(len(results))
    for band in ('low', 'mid', 'high'):
        share = np.array([r[band] for r in results])
        ax2.bar(blocks, share, bottom=bottom, label=band)
        bottom += share
    ax2.set_xticks(blocks)
    ax2.set_xlabel('block')
    ax2.set_ylabel('share of |F|')
    ax2.set_title('band shares' + edge_note)
    ax2.legend()
    save_figure(fig, paths['png'])
    return paths
