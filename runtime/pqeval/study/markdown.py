"""report.md: one function per section, joined by :func:`report_markdown`.

Numbers are in each metric's unit (:data:`pqeval.registry.METRIC_UNITS`); brackets are 95 %
bootstrap confidence intervals (:mod:`pqeval.study.stats`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..provenance import Provenance
from ..registry import METRIC_LABELS
from .kinds import LEVELS
from .stats import BOOTSTRAP_RESAMPLES, MIN_CI_N, Correlation, Interval, SummaryRow
from .table import OVERALL, StudyTable

MAX_NAN_ROWS_LISTED = 500
SEEDED_WARNING = "these {names} scores come from {kind} weights and are not perceptual measurements"


@dataclass
class ReportInputs:
    """Everything report.md shows."""

    table: StudyTable
    out_dir: Path
    summary: list[SummaryRow]
    corr: list[Correlation]
    figures: list[Path] = field(default_factory=list)
    figures_skipped: str | None = None
    figure_notes: list[str] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)


def md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip() or " "


def md_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in body] + [""]


def fnum(v: float, spec: str = ".3f") -> str:
    return format(v, spec) if math.isfinite(v) else "–"


def fci(ci: Interval, spec: str = ".3f") -> str:
    """``[low, high]`` or '–'."""
    return f"[{ci.low:{spec}}, {ci.high:{spec}}]" if ci.finite else "–"


def _strength(r: float) -> str:
    a = abs(r)
    word = "strong" if a >= 0.7 else "moderate" if a >= 0.4 else "weak"
    return f"{word} {'positive' if r > 0 else 'negative'}"


def link(target: Path, out_dir: Path) -> str:
    """``target`` relative to ``out_dir`` in POSIX form (absolute when on another drive)."""
    try:
        return Path(os.path.relpath(target, out_dir)).as_posix()
    except ValueError:  # another drive on Windows
        return target.as_posix()


def provenance_warnings(table: StudyTable) -> list[str]:
    """One sentence per problem, empty when every embedding score comes from pretrained weights."""
    flagged = [m for m in table.neural if table.caveats[m]]
    if not flagged:
        return []
    kinds = sorted({Provenance.parse(w).kind for m in flagged for w in table.provenance[m]} - {"pretrained"})
    kind = "/".join(k if k != "unknown" else "unrecorded" for k in kinds)
    names = "/".join(METRIC_LABELS[m].split()[0] for m in flagged)
    lines = [SEEDED_WARNING.format(names=names, kind=kind)]
    for m in flagged:
        for w in table.provenance[m]:
            p = Provenance.parse(w)
            if not p.perceptual:
                note = p.note if w else "weights provenance not recorded in the table"
                lines.append(f"`{m}` (`{w or 'no provenance'}`): {note}")
    return lines


# --- sections -------------------------------------------------------------------------------


def warnings_section(r: ReportInputs) -> list[str]:
    md: list[str] = []
    if r.provenance:
        md += [
            f"> ⚠️ **WARNING: {r.provenance[0]}.** Read every VGGish/OpenL3 number below as a pipeline "
            "check, not as a VGGish/OpenL3 result.",
            ">",
        ]
        md += [f"> - {line}" for line in r.provenance[1:]] + [""]
    if r.table.content_warnings:
        md += [
            "> ⚠️ **WARNING: speech measures on music.** PESQ and STOI/ESTOI are defined and validated for "
            "speech only; their values on music rows are not quality measurements.",
            ">",
        ]
        md += [f"> - {line}." for line in r.table.content_warnings] + [""]
    return md


def inputs_section(r: ReportInputs) -> list[str]:
    t = r.table
    md = [
        "## Inputs",
        "",
        f"- results table: [{t.path.name}]({link(t.path, r.out_dir)}) — {len(t.rows)} row(s), "
        f"{len(t.files)} clean file(s), content types: {', '.join(t.contents) or 'none'}",
        f"- degradations: {', '.join(t.degradations) or 'none'}; levels: {', '.join(LEVELS)}",
        f"- metrics: {', '.join(t.labels[m] for m in t.metrics) or 'none'}",
    ]
    md += [
        f"- `{m}` weights: " + ", ".join(f"`{w or '(not recorded)'}`" for w in t.provenance[m])
        for m in t.neural
        if t.provenance[m]
    ]
    other_levels = sorted({row.level for row in t.rows} - set(LEVELS))
    if other_levels:
        shown = ", ".join(lv or "(none)" for lv in other_levels)
        md.append(f"- rows with other levels ({shown}) count in the correlations but not in the summary")
    md += [
        "- tables: [summary.csv](summary.csv), [correlations.csv](correlations.csv)",
        f"- confidence intervals: 95 % percentile bootstrap ({BOOTSTRAP_RESAMPLES} resamples, seed 0); "
        f"none where fewer than {MIN_CI_N} values",
        "",
    ]
    return md


def _headline(c: Correlation, per: list[Correlation], t: StudyTable) -> str:
    subject, classic = t.labels[c.neural], METRIC_LABELS[c.classic]
    if math.isfinite(c.pearson_r):
        line = (
            f"- **{subject}** vs **{classic}**, all content: Pearson r = {c.pearson_r:.2f} "
            f"{fci(c.pearson_ci, '.2f')} ({_strength(c.pearson_r)}, p = {fnum(c.pearson_p, '.2g')}, n = {c.n}); "
            f"Spearman ρ = {fnum(c.spearman_rho, '.2f')} {fci(c.spearman_ci, '.2f')}."
        )
    else:
        line = f"- **{subject}** vs **{classic}**, all content: not computed — {c.reason}."
    if per:
        line += (
            " By content: "
            + "; ".join(
                f"{k.content} r = {k.pearson_r:.2f} (n = {k.n})"
                if math.isfinite(k.pearson_r)
                else f"{k.content} n/a ({k.reason})"
                for k in per
            )
            + "."
        )
    return line


def headline_section(r: ReportInputs) -> list[str]:
    md = ["## Headline correlations", ""]
    overall = [c for c in r.corr if c.content == OVERALL]
    if not overall:
        md.append("No neural × classic pair to correlate (the table lacks a neural or a classic metric column).")
    for c in overall:
        per = [k for k in r.corr if k.content != OVERALL and (k.neural, k.classic) == (c.neural, c.classic)]
        md.append(_headline(c, per, r.table))
    return md + [""]


FIGURE_GROUPS: tuple[tuple[str, str], ...] = (
    ("Per-file bars (metric × degradation × level)", "bars_"),
    ("Bars pooled over files per content type (mean over files, 95 % CI)", "pooled_"),
    ("Neural vs classic scatter plots", "scatter_"),
    ("Correlation heatmaps (Pearson r, 95 % CI)", "heatmap_"),
)


def _figure_links(figs: list[Path], out_dir: Path) -> list[str]:
    """Per figure: its PNG (else SVG) as an image, then a link to every format written."""
    md = []
    for stem in dict.fromkeys(p.with_suffix("") for p in figs):
        files = [p for p in figs if p.with_suffix("") == stem]
        shown = [p for p in files if p.suffix == ".png"] or [p for p in files if p.suffix == ".svg"]
        if shown:
            md.append(f"![{stem.name}]({link(shown[0], out_dir)})")
        md += [" · ".join(f"[{p.suffix[1:].upper()}]({link(p, out_dir)})" for p in files), ""]
    return md


def figures_section(r: ReportInputs) -> list[str]:
    md = ["## Figures", ""]
    if r.figures_skipped:
        return md + [f"**Figures were skipped:** {r.figures_skipped}. Every table below was still written.", ""]
    md += [
        "Error bars: 95 % bootstrap CI of the mean (drawn where a bar has at least "
        f"{MIN_CI_N} values). Y axes are fitted to the data, so they need not start at 0.",
        "",
    ]
    for title, prefix in FIGURE_GROUPS:
        figs = [p for p in r.figures if p.name.startswith(prefix)]
        if figs:
            md += [f"### {title}", "", *_figure_links(figs, r.out_dir)]
    if not r.figures:
        md += ["No figure had data to draw.", ""]
    if r.figure_notes:
        md += ["Figures not drawn (no data):", ""] + [f"- {n}" for n in r.figure_notes] + [""]
    return md


def summary_section(r: ReportInputs) -> list[str]:
    md = [
        "## Summary: mean per level, low → extreme",
        "",
        "Range = mean(extreme) − mean(low) (negative: the score falls as the degradation worsens); "
        "n = finite values at low/high/extreme; [ ] = 95 % bootstrap CI of the mean.",
        "",
    ]
    if not r.summary:
        return md + ["(no rows)", ""]
    t = r.table
    body = [
        [
            s.content,
            t.labels[s.metric],
            s.degradation,
            *(f"{fnum(s.means[lv])} {fci(s.cis[lv])}".replace(" –", "") for lv in LEVELS),
            fnum(s.change, "+.3f"),
            "/".join(str(s.counts[lv]) for lv in LEVELS),
            t.content_caveat(s.content, s.metric),
        ]
        for s in r.summary
    ]
    return md + md_table(["content", "metric", "degradation", *LEVELS, "range (low → extreme)", "n", "note"], body)


def correlations_section(r: ReportInputs) -> list[str]:
    md = [
        "## Correlations: neural vs classic",
        "",
        "Rows with NaN in either score are dropped; n is the number of pairs that remained; [ ] = 95 % bootstrap CI.",
        "",
    ]
    if not r.corr:
        return md + ["(none)", ""]
    body = [
        [
            c.content,
            r.table.labels[c.neural],
            METRIC_LABELS[c.classic],
            str(c.n),
            fnum(c.pearson_r),
            fci(c.pearson_ci),
            fnum(c.pearson_p, ".2g"),
            fnum(c.spearman_rho),
            fci(c.spearman_ci),
            fnum(c.spearman_p, ".2g"),
            "; ".join(x for x in (c.reason, c.content_note) if x),
        ]
        for c in r.corr
    ]
    return md + md_table(
        [
            "content",
            "neural",
            "classic",
            "n",
            "Pearson r",
            "95 % CI",
            "p",
            "Spearman ρ",
            "95 % CI",
            "p",
            "reason / note",
        ],
        body,
    )


def nan_rows_section(r: ReportInputs) -> list[str]:
    t = r.table
    nan_rows = [(row, m) for row in t.rows for m in t.metrics if not math.isfinite(row.values[m])]
    md = ["## Rows with NaN metrics", ""]
    if not nan_rows:
        return md + ["None: every metric has a value in every row.", ""]
    md += [f"{len(nan_rows)} missing value(s) in {len({id(row) for row, _ in nan_rows})} row(s).", ""]
    body = [
        [row.file, row.content, row.degradation, row.level, m, row.reasons[m] or "(no reason recorded)"]
        for row, m in nan_rows[:MAX_NAN_ROWS_LISTED]
    ]
    md += md_table(["file", "content", "degradation", "level", "metric", "reason"], body)
    if len(nan_rows) > MAX_NAN_ROWS_LISTED:
        md += [f"… and {len(nan_rows) - MAX_NAN_ROWS_LISTED} more; see {t.path.name}.", ""]
    return md


def notes_section(r: ReportInputs) -> list[str]:
    noted = [row for row in r.table.rows if row.notes]
    if not noted:
        return []
    return ["## Scoring notes", ""] + md_table(
        ["file", "degradation", "level", "notes"], [[x.file, x.degradation, x.level, x.notes] for x in noted]
    )


SECTIONS = (
    warnings_section,
    inputs_section,
    headline_section,
    figures_section,
    summary_section,
    correlations_section,
    nan_rows_section,
    notes_section,
)


def report_markdown(r: ReportInputs) -> str:
    """The whole report.md text."""
    md = ["# pqeval study report", ""]
    for section in SECTIONS:
        md += section(r)
    return "\n".join(md).rstrip() + "\n"
