"""The report's figures: per-file bars, bars pooled over files per content type, neural-vs-classic
scatter plots with trend lines, and correlation heatmaps.

matplotlib (the ``plots`` extra) is imported only here and only when drawing; figures are drawn
on the Agg canvas directly (no pyplot state). Each figure is saved in every requested format
(PNG at :data:`DPI`, PDF and SVG as vectors), each file written atomically. Error bars and the
bracketed ranges are 95 % bootstrap confidence intervals (:mod:`pqeval.study.stats`). Bar
y-axes are fitted to the data and its intervals (never beyond the metric's range in
:data:`pqeval.registry.METRIC_RANGES` by more than a small pad), so near-identical cosine
similarities (e.g. 0.986–1.000) stay readable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_open
from ..registry import METRIC_LABELS, METRIC_RANGES, METRIC_UNITS
from .kinds import LEVELS
from .stats import BarStat, Correlation, Interval, group_stats, pooled_by_content
from .table import OVERALL, StudyTable

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
DPI = 150
FIGURES_SUBDIR = "figures"  # out_dir/figures/ (the study's layout); report.md links them relatively
# Light -> dark: the worse the level, the darker the bar.
LEVEL_COLORS: dict[str, str] = {"low": "#fdcc8a", "high": "#fc8d59", "extreme": "#b30000"}
DEGRADATION_COLORS: dict[str, str] = {
    "noise": "#1f77b4",
    "bitrate": "#ff7f0e",
    "bitdepth": "#2ca02c",
    "clipping": "#d62728",
    "reverb": "#9467bd",
    "mp3": "#8c564b",
    "vorbis": "#e377c2",
    "opus": "#17becf",
}
EXTRA_COLORS: tuple[str, ...] = ("#7f7f7f", "#bcbd22", "#393b79", "#637939", "#843c39")
CONTENT_MARKERS: dict[str, str] = {"speech": "o", "music": "s", "env": "^", "unknown": "X"}
EXTRA_MARKERS: tuple[str, ...] = ("D", "v", "P", "*", "h")
CONTENT_LINESTYLES: dict[str, str] = {"speech": "-", "music": "--", "env": ":", "unknown": "-."}
#: Margin around the data on a fitted axis, as a fraction of the data span; and the smallest
#: margin / the pad beyond the metric's range, as fractions of that range's width.
Y_MARGIN, Y_MIN_MARGIN, Y_RANGE_PAD = 0.12, 0.002, 0.005

#: (metric, degradation, level) -> statistic of one bar
Cells = dict[str, dict[tuple[str, ...], BarStat]]


# --- drawing helpers ------------------------------------------------------------------------


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A Figure on its own Agg canvas (no pyplot), constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


#: Metadata that would differ between runs (dates), removed so outputs are reproducible.
_NO_DATES: dict[str, dict[str, Any]] = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}


def save_figure(fig: Figure, stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Save ``fig`` as ``stem.<fmt>`` for each format, atomically; returns the paths."""
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=DPI, metadata=_NO_DATES.get(fmt, {}))
        paths.append(path)
    return paths


def safe_name(text: str) -> str:
    """``text`` usable as a file name stem."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "unnamed"


def _degradation_color(table: StudyTable, deg: str) -> str:
    if deg in DEGRADATION_COLORS:
        return DEGRADATION_COLORS[deg]
    extras = [d for d in table.degradations if d not in DEGRADATION_COLORS]
    return EXTRA_COLORS[extras.index(deg) % len(EXTRA_COLORS)]


def _content_style(table: StudyTable, content: str) -> tuple[str, Any]:
    if content in CONTENT_MARKERS:
        return CONTENT_MARKERS[content], CONTENT_LINESTYLES[content]
    extras = [c for c in table.contents if c not in CONTENT_MARKERS]
    return EXTRA_MARKERS[extras.index(content) % len(EXTRA_MARKERS)], (0, (3, 1, 1, 1, 1, 1))


def _wrap(label: str, width: int = 34) -> str:
    """Break a long label at the opening parenthesis so axis labels stay inside the figure."""
    if len(label) > width and " (" in label:
        head, tail = label.split(" (", 1)
        return f"{head}\n({tail}"
    return label


def ci_text(ci: Interval, spec: str = ".2f") -> str:
    """``[low, high]`` of a finite interval, else ''."""
    return f"[{ci.low:{spec}}, {ci.high:{spec}}]" if ci.finite else ""


def fit_ylim(metric: str, values: Iterable[float]) -> tuple[float, float]:
    """Y limits fitted to the finite ``values`` (means and CI ends, metric unit) with a margin,
    kept within the metric's range plus a small pad; the whole range when nothing is finite."""
    lo_r, hi_r = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    width = hi_r - lo_r if math.isfinite(hi_r - lo_r) else 1.0
    v = np.array([x for x in values if math.isfinite(x)], dtype=float)
    if not v.size:
        return (lo_r, hi_r) if math.isfinite(width) else (0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    margin = max(Y_MARGIN * (hi - lo), Y_MIN_MARGIN * width)
    pad = Y_RANGE_PAD * width
    return max(lo - margin, lo_r - pad), min(hi + margin, hi_r + pad)


# --- bar charts -----------------------------------------------------------------------------


def _bar_panel(ax: Axes, table: StudyTable, metric: str, degs: list[str], cells: dict[tuple[str, ...], BarStat]):
    """One metric's bars: degradations on x, one bar per level, 95 % CI error bars."""
    stats = {(d, lv): cells.get((d, lv), BarStat(math.nan, 0, Interval())) for d in degs for lv in LEVELS}
    ends = [x for s in stats.values() for x in (s.mean, s.ci.low, s.ci.high)]
    lo, hi = fit_ylim(metric, ends)
    base = lo if lo > 0 else hi if hi < 0 else 0.0
    bar_w, x = 0.8 / len(LEVELS), np.arange(len(degs))
    handles = []
    for j, level in enumerate(LEVELS):
        means = np.array([stats[(d, level)].mean for d in degs])
        pos = x + (j - (len(LEVELS) - 1) / 2) * bar_w
        handles.append(
            ax.bar(
                pos,
                np.nan_to_num(means - base, nan=0.0),
                bar_w,
                bottom=base,
                label=level,
                color=LEVEL_COLORS[level],
                edgecolor="black",
                linewidth=0.5,
            )
        )
        cis = [stats[(d, level)].ci for d in degs]
        ok = np.array([c.finite for c in cis])
        if ok.any():
            err = np.array([[m - c.low, c.high - m] for m, c in zip(means, cis, strict=True) if c.finite]).T
            ax.errorbar(
                pos[ok], means[ok], yerr=np.clip(err, 0, None), fmt="none", ecolor="black", elinewidth=0.8, capsize=2
            )
        for p, m in zip(pos, means, strict=True):
            if not math.isfinite(m):
                ax.text(p, lo, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="0.35")
    ax.set_ylim(lo, hi)
    ax.set_xticks(x)
    ax.set_xticklabels(degs, rotation=30 if len(degs) > 4 else 0, ha="right" if len(degs) > 4 else "center")
    ax.set_title(_wrap(table.labels[metric], 40), fontsize=10)
    ax.set_ylabel(METRIC_UNITS[metric], fontsize=9)
    ax.set_xlabel("degradation", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return handles


def bars_figure(table: StudyTable, title: str, cells: Cells) -> Figure | None:
    """Grouped bars, one panel per metric with data in ``cells``; None when there is none."""
    metrics = [m for m in table.metrics if any(math.isfinite(s.mean) for s in cells.get(m, {}).values())]
    if not metrics:
        return None
    degs = [d for d in table.degradations if any(k[0] == d for m in metrics for k in cells[m])]
    width_per = max(4.2, 0.75 * len(degs) + 1.5)
    ncols = max(1, min(3, len(metrics), int(16 // width_per)))  # keep the figure under ~18 in wide
    nrows = math.ceil(len(metrics) / ncols)
    fig = new_figure((width_per * ncols + 1.6, 3.6 * nrows + 0.8))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    handles: list = []
    for i, m in enumerate(metrics):
        h = _bar_panel(axes[i // ncols][i % ncols], table, m, degs, cells[m])
        handles = handles or h
    for k in range(len(metrics), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.suptitle(title, fontsize=12)
    fig.legend(handles, [h.get_label() for h in handles], title="level", loc="outside right upper")
    return fig


def file_bars(table: StudyTable, file: str) -> Figure | None:
    """Bars of one clean file: mean per degradation x level (CI where a cell has ≥ 3 rows)."""
    rows = [r for r in table.rows if r.file == file]
    cells = {m: group_stats(rows, m, lambda r: (r.degradation, r.level)) for m in table.metrics}
    content = ", ".join(dict.fromkeys(r.content for r in rows))
    return bars_figure(table, f"{file} ({content}): metrics by degradation and level", cells)


def pooled_bars(table: StudyTable, content: str) -> Figure | None:
    """Bars of one content type: mean over its files of each file's mean, 95 % CI across files."""
    cells: Cells = {
        m: {key[1:]: s for key, s in pooled_by_content(table.rows, m).items() if key[0] == content}
        for m in table.metrics
    }
    n = len({r.file for r in table.rows if r.content == content})
    return bars_figure(table, f"content: {content} — mean over {n} file(s), 95 % bootstrap CI", cells)


# --- correlations ---------------------------------------------------------------------------


def _r_text(co: Correlation | None) -> str:
    if co is None or not math.isfinite(co.pearson_r):
        return "r = n/a"
    return f"r = {co.pearson_r:.2f} {ci_text(co.pearson_ci)}".rstrip()


def scatter_figure(table: StudyTable, neural: str, classic: str, corr: dict) -> Figure | None:
    """Neural vs classic score, colour = degradation, marker = content, LS trend line per content."""
    from matplotlib.lines import Line2D

    pts = [r for r in table.rows if math.isfinite(r.values[neural]) and math.isfinite(r.values[classic])]
    if not pts:
        return None
    fig = new_figure((9.0, 5.6))
    ax = fig.add_subplot()
    degs = [d for d in table.degradations if any(r.degradation == d for r in pts)]
    contents = [c for c in table.contents if any(r.content == c for r in pts)]
    for d in degs:
        for c in contents:
            sel = [r for r in pts if r.degradation == d and r.content == c]
            if sel:
                ax.scatter(
                    [r.values[classic] for r in sel],
                    [r.values[neural] for r in sel],
                    s=42,
                    marker=_content_style(table, c)[0],
                    color=_degradation_color(table, d),
                    edgecolor="black",
                    linewidth=0.4,
                    alpha=0.85,
                )
    fit_handles = []
    for c in contents:
        xs = np.array([r.values[classic] for r in pts if r.content == c])
        ys = np.array([r.values[neural] for r in pts if r.content == c])
        marker, ls = _content_style(table, c)
        label = f"{c}: {_r_text(corr.get((c, neural, classic)))} (n={xs.size})"
        fit = xs.size >= 2 and np.ptp(xs) > 0
        if fit:
            slope, icpt = np.polyfit(xs, ys, 1)
            gx = np.linspace(xs.min(), xs.max(), 50)
            ax.plot(gx, slope * gx + icpt, color="0.15", linestyle=ls, linewidth=1.6)
        fit_handles.append(
            Line2D(
                [],
                [],
                color="0.15",
                linestyle=ls if fit else "none",
                marker=marker,
                markerfacecolor="white",
                markeredgecolor="black",
                label=f"{label}, {'LS fit' if fit else 'no fit'}",
            )
        )
    deg_handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=8,
            color=_degradation_color(table, d),
            markeredgecolor="black",
            label=d,
        )
        for d in degs
    ]
    leg1 = ax.legend(
        handles=deg_handles,
        title="degradation (colour)",
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=8,
        title_fontsize=9,
    )
    ax.add_artist(leg1)
    ax.legend(
        handles=fit_handles,
        title="content (marker), trend line; r [95 % CI]",
        loc="lower left",
        bbox_to_anchor=(1.02, 0.0),
        fontsize=8,
        title_fontsize=9,
    )
    ax.set_xlabel(_wrap(f"{METRIC_LABELS[classic]} — {METRIC_UNITS[classic]}", 60))
    ax.set_ylabel(_wrap(table.labels[neural], 34))
    overall = corr.get((OVERALL, neural, classic))
    if overall is not None and math.isfinite(overall.pearson_r):
        o_txt = (
            f"overall Pearson {_r_text(overall)}, Spearman ρ = {overall.spearman_rho:.2f} "
            f"{ci_text(overall.spearman_ci)}, n = {overall.n}"
        )
    else:
        o_txt = f"overall r = n/a (n = {len(pts)})"
    ax.set_title(f"{table.labels[neural]} vs {METRIC_LABELS[classic]}\n{o_txt}", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


def _cell_text(co: Correlation) -> str:
    if math.isfinite(co.pearson_r):
        return "\n".join(t for t in (f"r = {co.pearson_r:.2f}", ci_text(co.pearson_ci), f"n = {co.n}") if t)
    why = "constant input" if "constant" in co.reason else "too few points" if "fewer" in co.reason else ""
    return f"n/a {why}".strip() + f"\nn = {co.n}"


def heatmap_figure(table: StudyTable, content: str, corr: dict) -> Figure | None:
    """Pearson r of each neural x classic pair over one content group; cells show r, CI and n."""
    cos = [[corr[(content, nm, cm)] for cm in table.classic] for nm in table.neural]
    cells = np.array([[co.pearson_r for co in row] for row in cos], dtype=float)
    if not np.isfinite(cells).any():
        return None
    fig = new_figure((2.0 * len(table.classic) + 3.6, 1.4 * len(table.neural) + 2.0))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(cells), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_facecolor("0.85")
    for i, row in enumerate(cos):
        for j, co in enumerate(row):
            v = cells[i, j]
            ax.text(
                j,
                i,
                _cell_text(co),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if math.isfinite(v) and abs(v) > 0.6 else "black",
            )
    ax.set_xticks(range(len(table.classic)))
    ax.set_xticklabels([METRIC_LABELS[c] for c in table.classic])
    ax.set_yticks(range(len(table.neural)))
    ax.set_yticklabels([_wrap(table.labels[n], 20) for n in table.neural], fontsize=9)
    ax.set_xlabel("classic metric")
    ax.set_ylabel("neural score")
    title = "all content" if content == OVERALL else f"content: {content}"
    ax.set_title(f"Pearson r [95 % CI], neural vs classic — {title}", fontsize=11)
    fig.colorbar(im, ax=ax, label="Pearson r")
    return fig


# --- all figures ----------------------------------------------------------------------------


Job = tuple[str, Callable[[], Any], str]


def figure_jobs(table: StudyTable, corr: list[Correlation]) -> tuple[list[Job], list[str]]:
    """(stem, draw, why-if-empty) of every figure the table supports, and notes on those it cannot."""
    lookup = {(c.content, c.neural, c.classic): c for c in corr}
    jobs: list[Job] = []
    for f in table.files:
        jobs.append((f"bars_{safe_name(f)}", partial(file_bars, table, f), f"every metric is NaN for file {f!r}"))
    for c in table.contents:
        jobs.append(
            (f"pooled_{safe_name(c)}", partial(pooled_bars, table, c), f"every metric is NaN for content {c!r}")
        )
    for nm in table.neural:
        for cm in table.classic:
            jobs.append(
                (
                    f"scatter_{nm}_vs_{cm}",
                    partial(scatter_figure, table, nm, cm, lookup),
                    f"no row has both {nm} and {cm}",
                )
            )
    notes = []
    if table.neural and table.classic:
        for c in [OVERALL, *table.contents]:
            jobs.append(
                (
                    f"heatmap_{safe_name(c)}",
                    partial(heatmap_figure, table, c, lookup),
                    f"no Pearson r could be computed for content {c!r}",
                )
            )
    elif table.rows:
        notes.append(
            "scatter plots and heatmaps: the table has no "
            + ("neural" if not table.neural else "classic")
            + " metric column"
        )
    return jobs, notes


def draw_figures(
    table: StudyTable, corr: list[Correlation], out_dir: Path, formats: Sequence[str] = FORMATS
) -> tuple[list[Path], list[str]]:
    """Every figure into ``out_dir`` in each format; returns (paths written, notes on figures
    not drawn for lack of data). Raises ImportError when matplotlib is missing."""
    import matplotlib  # noqa: F401  (raises ImportError when the 'plots' extra is missing)

    jobs, notes = figure_jobs(table, corr)
    written: list[Path] = []
    used: set[str] = set()
    for stem, draw, why in jobs:
        name, k = stem, 2
        while name in used:
            name, k = f"{stem}_{k}", k + 1
        used.add(name)
        fig = draw()
        if fig is None:
            notes.append(f"{name}: {why}")
        else:
            written += save_figure(fig, out_dir / name, formats)
    return written, notes
