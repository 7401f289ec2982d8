"""The study's reporting stage: all_metrics.csv -> summary, correlations, figures, report.md.

``write_report(csv_path, out_dir)`` reads the per-pair metrics table written by the study
(one row per clean file x degradation x level) with the csv module and writes, atomically:

- ``summary.csv``: per content type x metric x degradation, the mean at each level and the
  change from low to extreme;
- ``correlations.csv``: Pearson and Spearman of each neural score (VGGish, OpenL3) with each
  classic score (PESQ, STOI, ESTOI), overall and per content type;
- PNG figures in ``out_dir/figures/`` (only when matplotlib, the ``plots`` extra, is importable): grouped bars per file,
  neural-vs-classic scatter plots with trend lines, correlation heatmaps;
- ``report.md`` linking all of the above.

Scores from non-pretrained (seeded/custom) embedding weights are labelled as such everywhere
they appear: they are not perceptual measurements.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Sequence

import numpy as np

from .atomic import atomic_open
from .provenance import Provenance
from .errors import UsageError

# Metric names (mirror pqeval.scoring, kept here so the report needs neither soundfile nor ORT).
NEURAL_METRICS: tuple[str, ...] = ("vggish", "openl3")
CLASSIC_METRICS: tuple[str, ...] = ("pesq_wb", "pesq_nb", "stoi", "estoi")
KNOWN_METRICS: tuple[str, ...] = NEURAL_METRICS + CLASSIC_METRICS
METADATA_SUFFIXES: tuple[str, ...] = ("_reason", "_min", "_weights")
REQUIRED_COLUMNS: tuple[str, ...] = ("file", "content", "degradation", "level")

LEVELS: tuple[str, ...] = ("low", "high", "extreme")
DEGRADATION_ORDER: tuple[str, ...] = ("noise", "bitrate", "bitdepth", "clipping", "reverb", "mp3", "vorbis", "opus")
CONTENT_ORDER: tuple[str, ...] = ("speech", "music", "env", "unknown")
OVERALL = "all"

METRIC_LABELS: dict[str, str] = {
    "vggish": "VGGish cosine",
    "openl3": "OpenL3 cosine",
    "pesq_wb": "PESQ-WB",
    "pesq_nb": "PESQ-NB",
    "stoi": "STOI",
    "estoi": "ESTOI",
}
METRIC_UNITS: dict[str, str] = {
    "vggish": "cosine similarity (−1…1)",
    "openl3": "cosine similarity (−1…1)",
    "pesq_wb": "MOS-LQO (1…4.64)",
    "pesq_nb": "MOS-LQO (1…4.55)",
    "stoi": "intelligibility (0…1)",
    "estoi": "intelligibility (0…1)",
}
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
DPI = 120
FIGURES_SUBDIR = "figures"  # PNGs go to out_dir/figures/ (the study's layout); report.md links them relatively
MAX_NAN_ROWS_LISTED = 500
SEEDED_WARNING = "these {names} scores come from {kind} weights and are not perceptual measurements"


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class MetricRow:
    """One row of all_metrics.csv: identity, metric values (NaN when missing) and metadata."""

    file: str
    content: str
    degradation: str
    level: str
    values: dict[str, float]
    reasons: dict[str, str]
    weights: dict[str, str]
    notes: str = ""


@dataclass
class Correlation:
    """Pearson and Spearman of one neural score with one classic score over one content group.

    Coefficients and p-values are NaN when they cannot be computed; ``reason`` then says why
    (it may also carry a scipy caveat for a valid coefficient). ``n`` counts the rows used.
    """

    content: str
    neural: str
    classic: str
    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    reason: str = ""
    weights_note: str = ""


@dataclass
class SummaryRow:
    """Mean of one metric per level for one content type and degradation."""

    content: str
    metric: str
    degradation: str
    means: dict[str, float]
    counts: dict[str, int]

    @property
    def change(self) -> float:
        """mean(extreme) - mean(low): the range from low to extreme (negative when the score falls)."""
        return self.means["extreme"] - self.means["low"]

    @property
    def n(self) -> int:
        return sum(self.counts.values())


@dataclass
class ReportResult:
    """What write_report wrote and found."""

    report: Path
    summary_csv: Path
    correlations_csv: Path
    figures: list[Path] = field(default_factory=list)
    figures_skipped: str | None = None
    figure_notes: list[str] = field(default_factory=list)  # single figures not drawn, and why
    correlations: list[Correlation] = field(default_factory=list)
    provenance_warnings: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        return [self.summary_csv, self.correlations_csv, *self.figures, self.report]


@dataclass
class _Study:
    rows: list[MetricRow]
    metrics: list[str]
    neural: list[str]
    classic: list[str]
    contents: list[str]
    degradations: list[str]
    files: list[str]
    labels: dict[str, str]  # metric -> display label (with the provenance caveat when needed)
    caveats: dict[str, str]  # metric -> provenance caveat ('' for pretrained and classic metrics)
    provenance: dict[str, list[str]]  # neural metric -> distinct weights strings seen


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + sorted(v for v in seen if v not in order)


def _parse_float(text: str) -> tuple[float, str]:
    text = (text or "").strip()
    if not text:
        return math.nan, ""
    try:
        v = float(text)
    except ValueError:
        return math.nan, f"unparsable value {text!r} in the table"
    return (v, "") if math.isfinite(v) else (math.nan, "")


def read_metrics(csv_path: str | os.PathLike) -> tuple[list[MetricRow], list[str]]:
    """Read all_metrics.csv; return the rows and the metric columns present (canonical order)."""
    path = Path(csv_path)
    if not path.is_file():
        raise UsageError(f"{path}: metrics table not found")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise UsageError(f"{path}: not an all_metrics table (missing column(s) {', '.join(missing)})")
            metrics = [m for m in KNOWN_METRICS if m in header]
            rows = []
            for rec in reader:
                values, reasons, weights = {}, {}, {}
                for m in metrics:
                    v, bad = _parse_float(rec.get(m) or "")
                    values[m] = v
                    reasons[m] = "; ".join(r for r in ((rec.get(f"{m}_reason") or "").strip(), bad) if r)
                    weights[m] = (rec.get(f"{m}_weights") or "").strip()
                rows.append(
                    MetricRow(
                        file=(rec.get("file") or "").strip(),
                        content=(rec.get("content") or "").strip() or "unknown",
                        degradation=(rec.get("degradation") or "").strip(),
                        level=(rec.get("level") or "").strip(),
                        values=values,
                        reasons=reasons,
                        weights=weights,
                        notes=(rec.get("notes") or "").strip(),
                    )
                )
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{path}: cannot read the metrics table ({e})") from e
    return rows, metrics


def _provenance(rows: list[MetricRow], metric: str) -> tuple[list[str], str]:
    """Distinct weights strings of rows with a value, and a label caveat ('' when all pretrained)."""
    scored = [r for r in rows if math.isfinite(r.values[metric])]
    if not scored:
        return [], ""
    weights = sorted({r.weights[metric] for r in scored})
    kinds = {_weights_kind(w) for w in weights}
    if kinds == {"pretrained"}:
        return weights, ""
    if "unknown" in kinds:
        return weights, "weights provenance not recorded — not verified as perceptual"
    if "seeded" in kinds:
        return weights, "seeded weights — not perceptual"
    return weights, "custom weights — not validated"


def _weights_kind(w: str) -> str:
    for kind in ("pretrained", "seeded", "custom"):
        if w.startswith(f"{kind}:"):
            return kind
    return "unknown"


def _load(csv_path: str | os.PathLike) -> _Study:
    rows, metrics = read_metrics(csv_path)
    labels, caveats, provenance = {}, {}, {}
    for m in metrics:
        labels[m], caveats[m] = METRIC_LABELS[m], ""
        if m in NEURAL_METRICS:
            provenance[m], caveats[m] = _provenance(rows, m)
            if caveats[m]:
                labels[m] = f"{METRIC_LABELS[m]} ({caveats[m]})"
    return _Study(
        rows=rows,
        metrics=metrics,
        neural=[m for m in metrics if m in NEURAL_METRICS],
        classic=[m for m in metrics if m in CLASSIC_METRICS],
        contents=_ordered((r.content for r in rows), CONTENT_ORDER),
        degradations=_ordered((r.degradation for r in rows), DEGRADATION_ORDER),
        files=list(dict.fromkeys(r.file for r in rows)),
        labels=labels,
        caveats=caveats,
        provenance=provenance,
    )


# ---------------------------------------------------------------------------------------------
# Tables


def summarize(rows: list[MetricRow], metrics: Sequence[str]) -> list[SummaryRow]:
    """Per content type x metric x degradation: mean and count of finite values at each level."""
    contents = _ordered((r.content for r in rows), CONTENT_ORDER)
    degradations = _ordered((r.degradation for r in rows), DEGRADATION_ORDER)
    out = []
    for content in contents:
        for m in metrics:
            for deg in degradations:
                group = [r for r in rows if r.content == content and r.degradation == deg]
                if not group:
                    continue
                means, counts = {}, {}
                for level in LEVELS:
                    vals = np.array([r.values[m] for r in group if r.level == level], dtype=float)
                    vals = vals[np.isfinite(vals)]
                    counts[level] = int(vals.size)
                    means[level] = float(vals.mean()) if vals.size else math.nan
                out.append(SummaryRow(content, m, deg, means, counts))
    return out


def correlate(x: Sequence[float], y: Sequence[float]) -> tuple[int, float, float, float, float, str]:
    """(n, pearson r, p, spearman rho, p, reason) over the pairs where both are finite.

    Fewer than 3 pairs or a constant input give NaN coefficients and a reason; scipy's warnings
    never escape (a caveat for a valid coefficient goes into the reason)."""
    from scipy import stats

    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    nan = math.nan
    if n < 3:
        return n, nan, nan, nan, nan, f"fewer than 3 complete pairs (n={n})"
    constant = [name for name, a in (("neural", xa), ("classic", ya)) if np.ptp(a) == 0]
    if constant:
        return n, nan, nan, nan, nan, f"constant input ({' and '.join(constant)} score identical in all {n} pairs)"
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        pr = stats.pearsonr(xa, ya)
        sr = stats.spearmanr(xa, ya)
    vals = [float(pr.statistic), float(pr.pvalue), float(sr.statistic), float(sr.pvalue)]
    vals = [v if math.isfinite(v) else nan for v in vals]
    notes = list(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
    reason = "; ".join(notes)
    if not math.isfinite(vals[0]) and not reason:
        reason = "scipy returned NaN"
    return n, vals[0], vals[1], vals[2], vals[3], reason


def correlations(study: _Study) -> list[Correlation]:
    """Each neural x classic pair, overall ('all') and per content type."""
    out = []
    for content in [OVERALL, *study.contents]:
        group = study.rows if content == OVERALL else [r for r in study.rows if r.content == content]
        for nm in study.neural:
            note = "; ".join(dict.fromkeys(Provenance.parse(w).note for w in study.provenance[nm] if w and Provenance.parse(w).note))
            note = note or study.caveats[nm]
            for cm in study.classic:
                n, r, rp, rho, sp, reason = correlate([g.values[nm] for g in group], [g.values[cm] for g in group])
                out.append(Correlation(content, nm, cm, n, r, rp, rho, sp, reason, note))
    return out


def _fmt_csv(v: float) -> str:
    return "" if not math.isfinite(v) else format(v, ".10g")


def _summary_table(rows: list[SummaryRow], study: _Study) -> tuple[list[str], list[list[str]]]:
    header = ["content", "metric", "degradation", *(f"mean_{lv}" for lv in LEVELS), "range_low_to_extreme",
              *(f"n_{lv}" for lv in LEVELS), "n", "note"]
    body = []
    for s in rows:
        body.append([s.content, s.metric, s.degradation, *(_fmt_csv(s.means[lv]) for lv in LEVELS), _fmt_csv(s.change),
                     *(str(s.counts[lv]) for lv in LEVELS), str(s.n), study.caveats[s.metric]])
    return header, body


def _correlation_table(rows: list[Correlation]) -> tuple[list[str], list[list[str]]]:
    header = ["content", "neural", "classic", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "reason", "weights_note"]
    body = [[c.content, c.neural, c.classic, str(c.n), _fmt_csv(c.pearson_r), _fmt_csv(c.pearson_p),
             _fmt_csv(c.spearman_rho), _fmt_csv(c.spearman_p), c.reason, c.weights_note] for c in rows]
    return header, body


# ---------------------------------------------------------------------------------------------
# Atomic output


def _atomic_write(path: Path, write: Callable[[IO], None], binary: bool = False) -> Path:
    with atomic_open(path, "wb" if binary else "w") as fh:
        write(fh)
    return path


def _write_csv(path: Path, header: list[str], body: list[list[str]]) -> Path:
    def write(fh):
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(body)

    return _atomic_write(path, write)


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib imported lazily; the Agg canvas is used directly, no pyplot state)


def _new_figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, path: Path) -> Path:
    return _atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI), binary=True)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "unnamed"


def _degradation_color(study: _Study, deg: str) -> str:
    if deg in DEGRADATION_COLORS:
        return DEGRADATION_COLORS[deg]
    extras = [d for d in study.degradations if d not in DEGRADATION_COLORS]
    return EXTRA_COLORS[extras.index(deg) % len(EXTRA_COLORS)]


def _content_style(study: _Study, content: str) -> tuple[str, str]:
    extras = [c for c in study.contents if c not in CONTENT_MARKERS]
    if content in CONTENT_MARKERS:
        return CONTENT_MARKERS[content], CONTENT_LINESTYLES[content]
    i = extras.index(content)
    return EXTRA_MARKERS[i % len(EXTRA_MARKERS)], (0, (3, 1, 1, 1, 1, 1))


def _wrap(label: str, width: int = 34) -> str:
    """Break a long label at the opening parenthesis so axis labels stay inside the figure."""
    if len(label) > width and " (" in label:
        head, tail = label.split(" (", 1)
        return f"{head}\n({tail}"
    return label


def _ylim(metric: str, values: np.ndarray) -> tuple[float, float]:
    lo = float(np.nanmin(values)) if values.size else 0.0
    hi = float(np.nanmax(values)) if values.size else 1.0
    if metric.startswith("pesq"):
        return 0.0, max(4.7, hi * 1.05)
    return min(0.0, lo * 1.1), max(1.05, hi * 1.05)


def _bars_figure(study: _Study, file: str, path: Path) -> str | None:
    """Grouped bars for one clean file; returns a reason when there is nothing to draw."""
    rows = [r for r in study.rows if r.file == file]
    metrics = [m for m in study.metrics if any(math.isfinite(r.values[m]) for r in rows)]
    if not metrics:
        return f"{path.name}: every metric is NaN for file {file!r}"
    degs = [d for d in study.degradations if any(r.degradation == d for r in rows)]
    content = ", ".join(dict.fromkeys(r.content for r in rows))
    width_per = max(4.2, 0.75 * len(degs) + 1.5)
    ncols = max(1, min(3, len(metrics), int(16 // width_per)))  # keep the figure under ~18 in wide
    nrows = math.ceil(len(metrics) / ncols)
    fig = _new_figure((width_per * ncols + 1.6, 3.6 * nrows + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    bar_w = 0.8 / len(LEVELS)
    x = np.arange(len(degs))
    handles = []
    for i, m in enumerate(metrics):
        ax = axes[i // ncols][i % ncols]
        allv = []
        for j, level in enumerate(LEVELS):
            vals = []
            for d in degs:
                v = [r.values[m] for r in rows if r.degradation == d and r.level == level and math.isfinite(r.values[m])]
                vals.append(float(np.mean(v)) if v else math.nan)
            vals = np.array(vals)
            allv.extend(vals[np.isfinite(vals)])
            pos = x + (j - (len(LEVELS) - 1) / 2) * bar_w
            bars = ax.bar(pos, np.nan_to_num(vals, nan=0.0), bar_w, color=LEVEL_COLORS[level],
                          edgecolor="black", linewidth=0.5, label=level)
            if i == 0:
                handles.append(bars)
            for p, v in zip(pos, vals):
                if not math.isfinite(v):
                    ax.text(p, 0.0, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="0.35")
        ax.set_ylim(*_ylim(m, np.array(allv)))
        ax.set_xticks(x)
        ax.set_xticklabels(degs, rotation=30 if len(degs) > 4 else 0, ha="right" if len(degs) > 4 else "center")
        ax.set_title(_wrap(study.labels[m], 40), fontsize=10)
        ax.set_ylabel(METRIC_UNITS[m], fontsize=9)
        ax.set_xlabel("degradation", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    for k in range(len(metrics), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.suptitle(f"{file} ({content}): metrics by degradation and level", fontsize=12)
    fig.legend(handles, [h.get_label() for h in handles], title="level", loc="outside right upper")
    _save_figure(fig, path)
    return None


def _scatter_figure(study: _Study, neural: str, classic: str, corr: dict, path: Path) -> str | None:
    from matplotlib.lines import Line2D

    pts = [r for r in study.rows if math.isfinite(r.values[neural]) and math.isfinite(r.values[classic])]
    if not pts:
        return f"{path.name}: no row has both {neural} and {classic}"
    fig = _new_figure((8.6, 5.4))
    ax = fig.add_subplot()
    degs = [d for d in study.degradations if any(r.degradation == d for r in pts)]
    contents = [c for c in study.contents if any(r.content == c for r in pts)]
    for d in degs:
        for c in contents:
            sel = [r for r in pts if r.degradation == d and r.content == c]
            if sel:
                marker, _ = _content_style(study, c)
                ax.scatter([r.values[classic] for r in sel], [r.values[neural] for r in sel], s=42, marker=marker,
                           color=_degradation_color(study, d), edgecolor="black", linewidth=0.4, alpha=0.85)
    fit_handles = []
    for c in contents:
        xs = np.array([r.values[classic] for r in pts if r.content == c])
        ys = np.array([r.values[neural] for r in pts if r.content == c])
        marker, ls = _content_style(study, c)
        co = corr.get((c, neural, classic))
        r_txt = f"r = {co.pearson_r:.2f}" if co is not None and math.isfinite(co.pearson_r) else "r = n/a"
        label = f"{c}: {r_txt} (n={xs.size})"
        if xs.size >= 2 and np.ptp(xs) > 0:
            slope, icpt = np.polyfit(xs, ys, 1)
            gx = np.linspace(xs.min(), xs.max(), 50)
            ax.plot(gx, slope * gx + icpt, color="0.15", linestyle=ls, linewidth=1.6)
            fit_handles.append(Line2D([], [], color="0.15", linestyle=ls, marker=marker, markerfacecolor="white",
                                      markeredgecolor="black", label=f"{label}, LS fit"))
        else:
            fit_handles.append(Line2D([], [], linestyle="none", marker=marker, markerfacecolor="white",
                                      markeredgecolor="black", label=f"{label}, no fit"))
    deg_handles = [Line2D([], [], linestyle="none", marker="o", markersize=8, color=_degradation_color(study, d),
                          markeredgecolor="black", label=d) for d in degs]
    leg1 = ax.legend(handles=deg_handles, title="degradation (colour)", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                     fontsize=8, title_fontsize=9)
    ax.add_artist(leg1)
    ax.legend(handles=fit_handles, title="content (marker), trend line", loc="lower left", bbox_to_anchor=(1.02, 0.0),
              fontsize=8, title_fontsize=9)
    ax.set_xlabel(_wrap(f"{METRIC_LABELS[classic]} — {METRIC_UNITS[classic]}", 60))
    ax.set_ylabel(_wrap(f"{study.labels[neural]}", 34))
    overall = corr.get((OVERALL, neural, classic))
    o_txt = (f"overall Pearson r = {overall.pearson_r:.2f}, Spearman ρ = {overall.spearman_rho:.2f}, n = {overall.n}"
             if overall is not None and math.isfinite(overall.pearson_r) else f"overall r = n/a (n = {len(pts)})")
    ax.set_title(f"{study.labels[neural]} vs {METRIC_LABELS[classic]}\n{o_txt}", fontsize=11)
    ax.grid(alpha=0.3)
    _save_figure(fig, path)
    return None


def _heatmap_figure(study: _Study, content: str, corr: dict, path: Path) -> str | None:
    cells = np.full((len(study.neural), len(study.classic)), np.nan)
    ns = np.zeros_like(cells, dtype=int)
    reasons = [["" for _ in study.classic] for _ in study.neural]
    for i, nm in enumerate(study.neural):
        for j, cm in enumerate(study.classic):
            co = corr[(content, nm, cm)]
            cells[i, j] = co.pearson_r
            ns[i, j] = co.n
            reasons[i][j] = co.reason
    if not np.isfinite(cells).any():
        return f"{path.name}: no Pearson r could be computed for content {content!r}"
    fig = _new_figure((1.9 * len(study.classic) + 3.6, 1.3 * len(study.neural) + 2.0))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(cells), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_facecolor("0.85")
    for i in range(cells.shape[0]):
        for j in range(cells.shape[1]):
            v = cells[i, j]
            why = "constant input" if "constant" in reasons[i][j] else "too few points" if "fewer" in reasons[i][j] else ""
            txt = f"r = {v:.2f}\nn = {ns[i, j]}" if math.isfinite(v) else f"n/a {why}\nn = {ns[i, j]}".replace(" \n", "\n")
            ax.text(j, i, txt, ha="center", va="center", fontsize=10,
                    color="white" if math.isfinite(v) and abs(v) > 0.6 else "black")
    ax.set_xticks(range(len(study.classic)))
    ax.set_xticklabels([METRIC_LABELS[c] for c in study.classic])
    ax.set_yticks(range(len(study.neural)))
    ax.set_yticklabels([_wrap(study.labels[n], 20) for n in study.neural], fontsize=9)
    ax.set_xlabel("classic metric")
    ax.set_ylabel("neural score")
    title = "all content" if content == OVERALL else f"content: {content}"
    ax.set_title(f"Pearson r, neural vs classic — {title}", fontsize=11)
    fig.colorbar(im, ax=ax, label="Pearson r")
    _save_figure(fig, path)
    return None


def draw_figures(study: _Study, corr: list[Correlation], out_dir: Path) -> tuple[list[Path], list[str]]:
    """All figures into out_dir; returns (paths written, notes on figures skipped for lack of data)."""
    import matplotlib  # noqa: F401  (raises ImportError when the 'plots' extra is missing)

    out_dir.mkdir(parents=True, exist_ok=True)

    lookup = {(c.content, c.neural, c.classic): c for c in corr}
    written: list[Path] = []
    notes: list[str] = []
    used: set[str] = set()

    def unique(name: str) -> Path:
        stem, k = name, 2
        while name in used:
            name = f"{stem[:-4]}_{k}.png"
            k += 1
        used.add(name)
        return out_dir / name

    jobs = [(unique(f"bars_{_safe_name(f)}.png"), lambda p, f=f: _bars_figure(study, f, p)) for f in study.files]
    jobs += [(unique(f"scatter_{nm}_vs_{cm}.png"), lambda p, nm=nm, cm=cm: _scatter_figure(study, nm, cm, lookup, p))
             for nm in study.neural for cm in study.classic]
    if study.neural and study.classic:
        jobs += [(unique(f"heatmap_{_safe_name(c)}.png"), lambda p, c=c: _heatmap_figure(study, c, lookup, p))
                 for c in [OVERALL, *study.contents]]
    elif study.rows:
        notes.append("scatter plots and heatmaps: the table has no "
                     + ("neural" if not study.neural else "classic") + " metric column")
    for path, draw in jobs:
        skipped = draw(path)
        if skipped:
            notes.append(skipped)
        else:
            written.append(path)
    return written, notes


# ---------------------------------------------------------------------------------------------
# Markdown


def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip() or " "


def _md_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def _f(v: float, spec: str = ".3f") -> str:
    return format(v, spec) if math.isfinite(v) else "–"


def _strength(r: float) -> str:
    a = abs(r)
    word = "strong" if a >= 0.7 else "moderate" if a >= 0.4 else "weak"
    return f"{word} {'positive' if r > 0 else 'negative'}"


def _provenance_warning(study: _Study) -> list[str]:
    """One sentence per problem, empty when every embedding score comes from pretrained weights."""
    flagged = [m for m in study.neural if study.caveats[m]]
    if not flagged:
        return []
    kinds = sorted({_weights_kind(w) for m in flagged for w in study.provenance[m]} - {"pretrained"})
    kind = "/".join(k if k != "unknown" else "unrecorded" for k in kinds)
    names = "/".join(METRIC_LABELS[m].split()[0] for m in flagged)
    lines = [SEEDED_WARNING.format(names=names, kind=kind)]
    for m in flagged:
        for w in study.provenance[m]:
            if _weights_kind(w) != "pretrained":
                note = Provenance.parse(w).note if w else "weights provenance not recorded in the table"
                lines.append(f"`{m}` (`{w or 'no provenance'}`): {note}")
    return lines


def _link(target: Path, out_dir: Path) -> str:
    try:
        return Path(os.path.relpath(target, out_dir)).as_posix()
    except ValueError:  # another drive on Windows
        return target.as_posix()


def _report_markdown(study: _Study, csv_path: Path, out_dir: Path, summary: list[SummaryRow],
                     corr: list[Correlation], figures: list[Path], figures_skipped: str | None,
                     figure_notes: list[str], provenance: list[str]) -> str:
    md: list[str] = ["# pqeval study report", ""]
    if provenance:
        md += [f"> ⚠️ **WARNING: {provenance[0]}.** Read every VGGish/OpenL3 number below as a pipeline "
               "check, not as a VGGish/OpenL3 result.", ">"]
        md += [f"> - {line}" for line in provenance[1:]]
        md.append("")
    n_rows = len(study.rows)
    md += [
        "## Inputs",
        "",
        f"- metrics table: [{csv_path.name}]({_link(csv_path, out_dir)}) — {n_rows} row(s), "
        f"{len(study.files)} clean file(s), content types: {', '.join(study.contents) or 'none'}",
        f"- degradations: {', '.join(study.degradations) or 'none'}; levels: {', '.join(LEVELS)}",
        f"- metrics: {', '.join(study.labels[m] for m in study.metrics) or 'none'}",
    ]
    for m in study.neural:
        if study.provenance[m]:
            md.append(f"- `{m}` weights: " + ", ".join(f"`{w or '(not recorded)'}`" for w in study.provenance[m]))
    other_levels = sorted({r.level for r in study.rows} - set(LEVELS))
    if other_levels:
        md.append(f"- rows with other levels ({', '.join(other_levels)}) count in the correlations but not in the summary")
    md += ["- tables: [summary.csv](summary.csv), [correlations.csv](correlations.csv)", ""]

    # Headline correlations in prose.
    md += ["## Headline correlations", ""]
    overall = [c for c in corr if c.content == OVERALL]
    if not overall:
        md += ["No neural × classic pair to correlate (the table lacks a neural or a classic metric column).", ""]
    for c in overall:
        subject = study.labels[c.neural]
        if math.isfinite(c.pearson_r):
            line = (f"- **{subject}** vs **{METRIC_LABELS[c.classic]}**, all content: Pearson r = {c.pearson_r:.2f} "
                    f"({_strength(c.pearson_r)}, p = {_f(c.pearson_p, '.2g')}, n = {c.n}); Spearman ρ = "
                    f"{_f(c.spearman_rho, '.2f')}.")
        else:
            line = f"- **{subject}** vs **{METRIC_LABELS[c.classic]}**, all content: not computed — {c.reason}."
        per = [k for k in corr if k.content != OVERALL and k.neural == c.neural and k.classic == c.classic]
        if per:
            line += " By content: " + "; ".join(
                f"{k.content} r = {k.pearson_r:.2f} (n = {k.n})" if math.isfinite(k.pearson_r)
                else f"{k.content} n/a ({k.reason})" for k in per) + "."
        md.append(line)
    md.append("")

    # Figures.
    md += ["## Figures", ""]
    if figures_skipped:
        md += [f"**Figures were skipped:** {figures_skipped}. Every table below was still written.", ""]
    else:
        groups = [("Per-file bars (metric × degradation × level)", "bars_"),
                  ("Neural vs classic scatter plots", "scatter_"), ("Correlation heatmaps (Pearson r)", "heatmap_")]
        for title, prefix in groups:
            figs = [p for p in figures if p.name.startswith(prefix)]
            if figs:
                md += [f"### {title}", ""]
                md += [f"![{p.stem}]({_link(p, out_dir)})\n" for p in figs]
        if not figures:
            md += ["No figure had data to draw.", ""]
        if figure_notes:
            md += ["Figures not drawn (no data):", ""] + [f"- {n}" for n in figure_notes] + [""]

    # Summary.
    md += ["## Summary: mean per level, low → extreme", "",
           "Range = mean(extreme) − mean(low) (negative: the score falls as the degradation worsens); "
           "n = finite values at low/high/extreme.", ""]
    if summary:
        body = [[s.content, study.labels[s.metric], s.degradation, *(_f(s.means[lv]) for lv in LEVELS),
                 _f(s.change, "+.3f"), "/".join(str(s.counts[lv]) for lv in LEVELS)] for s in summary]
        md += [_md_table(["content", "metric", "degradation", *LEVELS, "range (low → extreme)", "n"], body), ""]
    else:
        md += ["(no rows)", ""]

    # Correlations.
    md += ["## Correlations: neural vs classic", "",
           "Rows with NaN in either score are dropped; n is the number of pairs that remained.", ""]
    if corr:
        body = [[c.content, study.labels[c.neural], METRIC_LABELS[c.classic], str(c.n), _f(c.pearson_r),
                 _f(c.pearson_p, ".2g"), _f(c.spearman_rho), _f(c.spearman_p, ".2g"), c.reason] for c in corr]
        md += [_md_table(["content", "neural", "classic", "n", "Pearson r", "p", "Spearman ρ", "p", "reason"], body), ""]
    else:
        md += ["(none)", ""]

    # NaN rows.
    nan_rows = [(r, m) for r in study.rows for m in study.metrics if not math.isfinite(r.values[m])]
    md += ["## Rows with NaN metrics", ""]
    if nan_rows:
        md.append(f"{len(nan_rows)} missing value(s) in {len({id(r) for r, _ in nan_rows})} row(s).")
        md.append("")
        body = [[r.file, r.content, r.degradation, r.level, m, r.reasons[m] or "(no reason recorded)"]
                for r, m in nan_rows[:MAX_NAN_ROWS_LISTED]]
        md += [_md_table(["file", "content", "degradation", "level", "metric", "reason"], body), ""]
        if len(nan_rows) > MAX_NAN_ROWS_LISTED:
            md += [f"… and {len(nan_rows) - MAX_NAN_ROWS_LISTED} more; see {csv_path.name}.", ""]
    else:
        md += ["None: every metric has a value in every row.", ""]

    noted = [r for r in study.rows if r.notes]
    if noted:
        md += ["## Scoring notes", ""]
        md += [_md_table(["file", "degradation", "level", "notes"], [[r.file, r.degradation, r.level, r.notes] for r in noted]), ""]
    return "\n".join(md).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# Entry point


def write_report(csv_path: str | os.PathLike, out_dir: str | os.PathLike, *, figures: bool = True) -> ReportResult:
    """Write summary.csv, correlations.csv, figures (if matplotlib is available) and report.md.

    Raises UsageError when the table is missing or malformed, or out_dir cannot be written.
    Tables are written before any figure, so they exist even if drawing fails."""
    csv_path = Path(csv_path)
    out = Path(out_dir)
    study = _load(csv_path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{out}: cannot create the report folder ({e})") from e

    summary = summarize(study.rows, study.metrics)
    corr = correlations(study)
    try:
        summary_csv = _write_csv(out / "summary.csv", *_summary_table(summary, study))
        corr_csv = _write_csv(out / "correlations.csv", *_correlation_table(corr))
    except OSError as e:
        raise UsageError(f"{out}: cannot write the report tables ({e})") from e

    fig_paths: list[Path] = []
    notes: list[str] = []
    skipped: str | None = None
    if not figures:
        skipped = "figures were not requested (--no-figures / figures=False)"
    else:
        try:
            import matplotlib  # noqa: F401
        except ImportError as e:
            skipped = (f"matplotlib is not installed ({e}); install the 'plots' extra "
                       "(pip install 'pqeval[plots]') to draw them")
        else:
            try:
                fig_paths, notes = draw_figures(study, corr, out / FIGURES_SUBDIR)
            except OSError as e:
                raise UsageError(f"{out / FIGURES_SUBDIR}: cannot write the figures ({e})") from e

    provenance = _provenance_warning(study)
    text = _report_markdown(study, csv_path, out, summary, corr, fig_paths, skipped, notes, provenance)
    report = _atomic_write(out / "report.md", lambda fh: fh.write(text))
    return ReportResult(report=report, summary_csv=summary_csv, correlations_csv=corr_csv, figures=fig_paths,
                        figures_skipped=skipped, figure_notes=notes, correlations=corr,
                        provenance_warnings=provenance)


__all__ = [
    "CLASSIC_METRICS", "Correlation", "KNOWN_METRICS", "LEVELS", "MetricRow", "NEURAL_METRICS",
    "ReportResult", "SummaryRow", "correlate", "read_metrics", "summarize", "write_report",
]
