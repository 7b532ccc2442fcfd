"""Rendering the tables as Markdown, CSV, HTML and a plot (columns: ``benchmarks/README.md``)."""
import csv
import datetime
import html
import io
import re
from typing import Any, List, Optional, Sequence, Tuple

from prettytable import PrettyTable, TableStyle

from nose_mm.utils.fileio import atomic_write

from ..info import TASKS
from ..records import MAIN_METRIC
from ..seeds import SPREAD_FACTOR
from .tables import Table

__all__ = ['render', 'write_leaderboard', 'plot_leaderboard']

_METRIC_COLUMNS = {
    'classification': (('top1', 'Top-1'), ('top5', 'Top-5')),
    'segmentation': (('mIoU', 'mIoU'), ('mIoU_ms_flip', 'mIoU(ms+flip)'), ('mAcc', 'mAcc')),
}
_TAIL = ('Params (M)', 'GFLOPs', 'img/s', 'Speed vs baseline', 'Mem (MiB)',
         'Working load @ budget', 'Throughput setting')
#: Column saying whether a row's Δ exceeds the run-to-run spread.
SPREAD_COLUMN = 'Δ vs spread'


def columns(task: str, fmt: str = 'md') -> Tuple[str, ...]:
    """The columns of a task's table in ``fmt`` (html and csv add seeds; csv splits std, IQR)."""
    metrics = _METRIC_COLUMNS[task]
    main = metrics[0][1]
    out = ['#', 'Model', 'Run / method', 'Removed layers']
    for _, title in metrics:
        out += [title, f'{title} std'] if fmt == 'csv' else [title]
    out += ['n', f'Δ {main}', SPREAD_COLUMN, *_TAIL]
    if fmt == 'csv':
        out.insert(out.index('Speed vs baseline') + 1, 'Speed q1')
        out.insert(out.index('Speed q1') + 1, 'Speed q3')
    if fmt in ('csv', 'html'):
        out += ['Timed in run', 'Seeds', f'{main} per seed']
    return tuple(out + ['Source'])


_NOTES = (
    'GFLOPs are multiply-accumulates per image (the model zoos\' "GFLOPs"), attention '
    'products included. img/s: inference, median of repeats, at the stated throughput '
    'setting (compare img/s only between rows measured alike). Mem: peak memory of one '
    'step at that setting (CUDA max allocated on GPUs; tracked tensor bytes on CPU, '
    'benchmarks/README.md); working load: the largest batch whose step fits the stated '
    'budget, by the same method. Δ: main '
    'metric minus the baseline row\'s (runs: the latest run of the same arch with no '
    'removed or diluted layers; reported rows: the baseline their source names). '
    'Seeds: runs of one config that differ only in randomness.seed are one row, '
    'metrics as mean ± sample std over its n seeds. '
    f'{SPREAD_COLUMN}: "beyond" when |Δ| > {SPREAD_FACTOR:g} s_p, s_p the pooled sample std '
    'of the row\'s and its baseline\'s seeds (s_p² = Σ(n_i - 1) s_i² / Σ(n_i - 1)), '
    '"within" otherwise, "spread unknown" when either has a single run (n = 1). '
    'Speed vs baseline: the median over timing rounds of the per-round img/s ratio to '
    'the row\'s baseline, the row and its baseline timed interleaved in one run '
    '(tools/benchmark.py --compare ...), with its interquartile range. img/s marked † '
    'comes from another timing run than its baseline\'s: not comparable with it. Rows of '
    'different archs may be timed in different runs (the CSV / HTML column "Timed in run" '
    'says which): compare their img/s only within one run. '
    'Source "reported" = published numbers (benchmarks/reference.yml), "measured" = a run.')


def _num(value: Optional[float], digits: int = 2) -> str:
    return '' if value is None else f'{value:.{digits}f}'


def _size(value: Optional[float]) -> str:
    """Two decimals, or three significant digits below 1 (tiny test models)."""
    if value is None:
        return ''
    return f'{value:.2f}' if abs(value) >= 1 or value == 0 else f'{value:.3g}'


def _cells(table: Table, fmt: str = 'md') -> List[List[str]]:
    out, rank, main_key = [], 0, MAIN_METRIC[table.task]
    for row in table.rows:
        if row.main is not None:
            rank += 1
        removed = '' if row.removed_layers is None else (
            str(row.removed_layers) if row.removed_layers else 'none')
        if row.removed_sets:  # one set drawn per seed: the row averages over them
            removed = f'{len(row.removed_sets)} sets: ' + ', '.join(map(str, row.removed_sets))
        delta = 'baseline' if row.is_baseline else '' if row.delta is None else f'{row.delta:+.2f}'
        spread = '' if row.reported or row.is_baseline or row.delta is None else \
            'spread unknown' if row.beyond_spread is None else \
            'beyond' if row.beyond_spread else 'within'
        ips = row.img_per_s
        cells = [str(rank) if row.main is not None else '', row.model, row.label, removed]
        for key, _ in _METRIC_COLUMNS[table.task]:
            mean, std = row.metrics.get(key), row.metrics_std.get(key)
            if fmt == 'csv':
                cells += [_num(mean), _num(std)]
            else:
                cells.append(_num(mean) + ('' if std is None or mean is None
                                           else f' ± {std:.2f}'))
        ratio = row.speed_ratio or {}
        if fmt == 'csv':
            speed = [_num(ratio.get(k), 3) for k in ('median', 'q1', 'q3')]
        else:
            speed = ['' if not ratio else f'{ratio["median"]:.3f} (IQR {ratio["q1"]:.3f}-'
                     f'{ratio["q3"]:.3f})']
        cells += ['' if row.reported else str(row.n), delta, spread,
                  _size(row.params_m), _size(row.gflops),
                  '' if ips is None else _num(ips, 1 if ips >= 10 else 2)
                  + (' †' if row.speed_mark else ''), *speed,
                  _num(row.mem_mib, 0 if (row.mem_mib or 0) >= 10 else 1),
                  '' if row.working_load is None else f'{row.working_load} @ {row.budget_gb:g} GiB'
                  + (' (capped)' if row.working_load_capped else ''), row.setting]
        if fmt in ('csv', 'html'):
            cells.append(row.timed_together or '')
            seeds = '; '.join('?' if s is None else str(s) for s in row.seeds) \
                if len(row.seeds) > 1 else ''
            cells += [seeds, '; '.join(f'{v:.2f}' for v in row.per_seed.get(main_key, []))]
        out.append(cells + [row.source])
    return out


def _md_escape(text: str) -> str:
    """A cell or title (from files anyone can write) as Markdown text: no HTML, links, images."""
    text = html.escape(str(text), quote=False).replace('](', ']\\(')
    return text.replace('|', '\\|').replace('\r', ' ').replace('\n', ' ')


_NUMBER = re.compile(r'[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?')


def _csv_cell(value: Any) -> Any:
    """A leading ``'`` on cells starting ``=+-@``, tab or CR but numbers (no formula, OWASP)."""
    text = str(value)
    if text[:1] in ('=', '+', '-', '@', '\t', '\r') and not _NUMBER.fullmatch(text):
        return "'" + text
    return value


def _generated() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    return f'Generated by tools/leaderboard.py on {now}.'


#: Heading of the inputs a partial leaderboard (``--allow-partial``) left out.
SKIPPED_TITLE = 'Skipped inputs (this leaderboard is partial)'


def format_markdown(tables: Sequence[Table], skipped: Sequence[str] = ()) -> str:
    """GitHub-flavoured Markdown: one section and table per (task, dataset)."""
    lines = ['# Leaderboard', '', _generated(), '', _NOTES, '']
    if not tables:
        lines += ['No results.', '']
    for table in tables:
        grid = PrettyTable(columns(table.task), align='l')
        grid.set_style(TableStyle.MARKDOWN)
        grid.add_rows([[_md_escape(c) for c in cells] for cells in _cells(table)])
        lines += [f'## {_md_escape(table.title)}', '', grid.get_string(), '']
    if skipped:
        lines += [f'## {SKIPPED_TITLE}', '', *(f'- {_md_escape(p)}' for p in skipped), '']
    return '\n'.join(lines)


def format_csv(tables: Sequence[Table], skipped: Sequence[str] = ()) -> str:
    """One CSV: ``Task``, ``Dataset`` and the union of the tasks' columns."""
    header: List[str] = ['Task', 'Dataset']
    for task in TASKS:
        header += [c for c in columns(task, 'csv') if c not in header]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(header)
    for table in tables:
        names = columns(table.task, 'csv')
        for cells in _cells(table, 'csv'):
            values = dict(zip(names, cells), Task=table.task, Dataset=table.dataset)
            writer.writerow([_csv_cell(values.get(c, '')) for c in header])
    for problem in skipped:  # one row each: Task "skipped", the reason as its Source
        writer.writerow([_csv_cell(dict(Task='skipped', Source=problem).get(c, ''))
                         for c in header])
    return buf.getvalue()


_HTML_STYLE = ('body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;'
               'margin-bottom:2em}th,td{border:1px solid #ccc;padding:3px 8px;'
               'text-align:right}td:nth-child(2),td:nth-child(3),td:nth-child(4),'
               'td:nth-last-child(-n+2){text-align:left}tr.reported{color:#555;'
               'font-style:italic}p.notes{max-width:70em;color:#444}')


def format_html(tables: Sequence[Table], skipped: Sequence[str] = ()) -> str:
    """A standalone HTML page; reported rows have the class ``reported``."""
    esc = html.escape
    parts = ['<!DOCTYPE html>', '<html><head><meta charset="utf-8">',
             '<title>nose_mm leaderboard</title>', f'<style>{_HTML_STYLE}</style>',
             '</head><body>', '<h1>Leaderboard</h1>', f'<p>{esc(_generated())}</p>',
             f'<p class="notes">{esc(_NOTES)}</p>']
    if not tables:
        parts.append('<p>No results.</p>')
    for table in tables:
        parts += [f'<h2>{esc(table.title)}</h2>', '<table>', '<thead><tr>']
        parts += [f'<th>{esc(c)}</th>' for c in columns(table.task, 'html')]
        parts += ['</tr></thead>', '<tbody>']
        for row, cells in zip(table.rows, _cells(table, 'html')):
            cls = 'reported' if row.reported else 'measured'
            parts.append(f'<tr class="{cls}">' + ''.join(f'<td>{esc(c)}</td>' for c in cells)
                         + '</tr>')
        parts += ['</tbody>', '</table>']
    if skipped:
        parts += [f'<h2>{esc(SKIPPED_TITLE)}</h2>', '<ul class="skipped">',
                  *(f'<li>{esc(p)}</li>' for p in skipped), '</ul>']
    parts.append('</body></html>')
    return '\n'.join(parts) + '\n'


_FORMATTERS = {'md': format_markdown, 'csv': format_csv, 'html': format_html}


def render(tables: Sequence[Table], fmt: str, skipped: Sequence[str] = ()) -> str:
    """The leaderboard as text.

    Args:
        tables (sequence of Table): From :func:`~.tables.build_tables`.
        fmt (str): ``'md'``, ``'csv'`` or ``'html'``.
        skipped (sequence of str): Inputs left out (a partial leaderboard), listed in it.
            Defaults to ().

    Returns:
        str: The text.

    Raises:
        ValueError: An unknown format.
    """
    if fmt not in _FORMATTERS:
        raise ValueError(f'format must be one of {", ".join(_FORMATTERS)}, got {fmt!r}')
    return _FORMATTERS[fmt](tables, skipped)


def write_leaderboard(tables: Sequence[Table], out: str, fmt: str,
                      skipped: Sequence[str] = ()) -> None:
    """Write :func:`render` ``(tables, fmt, skipped)`` to the file ``out`` atomically."""
    text = render(tables, fmt, skipped)

    def _write(tmp: str) -> None:
        with open(tmp, 'w', encoding='utf-8', newline='') as f:
            f.write(text)

    atomic_write(out, _write)


def plot_leaderboard(tables: Sequence[Table], out: str) -> int:
    """PNG of the main metric (seed std as error bar) against img/s, one panel per table.

    Args:
        tables (sequence of Table): From :func:`~.tables.build_tables`.
        out (str): The PNG file.

    Returns:
        int: Points plotted (rows with a metric and img/s; 0: a figure saying how).
    """
    from matplotlib.figure import Figure

    from nose_mm.analysis.plots import save_figure
    panels = [(t, [r for r in t.rows if r.main is not None and r.img_per_s is not None])
              for t in tables]
    panels = [(t, rows) for t, rows in panels if rows]
    fig = Figure(figsize=(6.5 * max(1, len(panels)), 4.8))
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.axis('off')
        ax.text(0.5, 0.5, 'No run has both a metric and a throughput.\nMeasure one with\n'
                'tools/benchmark.py CONFIG --out WORK_DIR/benchmark.json',
                ha='center', va='center')
        save_figure(fig, out)
        return 0
    for i, (table, rows) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        settings = sorted({r.setting for r in rows})
        mixed = len(settings) > 1
        for row in rows:
            marker = 's' if row.is_baseline else 'o'
            ax.errorbar([row.img_per_s], [row.main], yerr=None if row.main_std is None
                        else [row.main_std], fmt=marker, markersize=6, capsize=3)
            text = row.label + (f' [{row.setting}]' if mixed else '')
            ax.annotate(text, (row.img_per_s, row.main), textcoords='offset points',
                        xytext=(4, 4), fontsize=8)
        ax.set_xlabel('img/s' + ('' if mixed else f' ({settings[0]})'))
        metric = dict(_METRIC_COLUMNS[table.task])[MAIN_METRIC[table.task]]
        ax.set_ylabel(f'{metric} (%)')
        ax.set_title(table.title)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out)
    return sum(len(rows) for _, rows in panels)
