"""The reporting stage: a results table -> summary.csv, correlations.csv, figures, report.md.

``write_report(csv_path, out_dir)`` reads an all_metrics.csv from ``pqeval study`` or a plain
``pqeval batch`` CSV (:func:`pqeval.results.read_results`) and writes, atomically:

- ``summary.csv``: per content type x metric x degradation, the mean at each level with its
  95 % bootstrap CI (``ci95_low_<level>``, ``ci95_high_<level>``) and the change low -> extreme;
- ``correlations.csv``: Pearson and Spearman of each neural score with each classic score,
  overall and per content type, with 95 % bootstrap CIs of both coefficients;
- figures in ``out_dir/figures/`` as PNG, PDF and SVG (only when matplotlib, the ``plots``
  extra, is importable), see :mod:`pqeval.study.figures`;
- ``report.md`` linking all of the above.

Tables are written before any figure. Scores from non-pretrained embedding weights are labelled
wherever they appear; speech measures (PESQ, STOI/ESTOI) on music rows carry a warning.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_open
from ..errors import UsageError
from ..registry import parse_list
from .figures import FIGURES_SUBDIR, FORMATS, draw_figures
from .kinds import LEVELS
from .markdown import ReportInputs, provenance_warnings, report_markdown
from .stats import Correlation, Interval, SummaryRow, correlations, summarize
from .table import StudyTable, load_table

__all__ = ["FORMATS", "ReportResult", "parse_formats", "write_report"]


@dataclass
class ReportResult:
    """What write_report wrote and found.

    ``figures``: every figure file (each figure in each format); ``figures_skipped``: why none
    were drawn; ``figure_notes``: single figures not drawn, and why; ``provenance_warnings`` /
    ``content_warnings``: the warnings at the top of report.md (non-pretrained weights; speech
    measures on music).
    """

    report: Path
    summary_csv: Path
    correlations_csv: Path
    figures: list[Path] = field(default_factory=list)
    figures_skipped: str | None = None
    figure_notes: list[str] = field(default_factory=list)
    correlations: list[Correlation] = field(default_factory=list)
    provenance_warnings: list[str] = field(default_factory=list)
    content_warnings: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        return [self.summary_csv, self.correlations_csv, *self.figures, self.report]


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """``"png,pdf"`` or ``("png", "pdf")`` -> a checked tuple of figure formats (UsageError if bad)."""
    items = parse_list(formats) if isinstance(formats, str) else formats
    names = tuple(dict.fromkeys(f.strip().lower() for f in items if f.strip()))
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise UsageError(f"figure format(s) {', '.join(bad) or '(none)'}: choose from {', '.join(FORMATS)}")
    return names


# --- tables ---------------------------------------------------------------------------------


def _num(v: float) -> str:
    return format(v, ".10g") if math.isfinite(v) else ""


def summary_table(rows: list[SummaryRow], table: StudyTable) -> tuple[list[str], list[list[str]]]:
    """summary.csv: header and body."""
    header = [
        "content",
        "metric",
        "degradation",
        *(f"mean_{lv}" for lv in LEVELS),
        *(f"ci95_{end}_{lv}" for lv in LEVELS for end in ("low", "high")),
        "range_low_to_extreme",
        *(f"n_{lv}" for lv in LEVELS),
        "n",
        "note",
    ]
    body = [
        [
            s.content,
            s.metric,
            s.degradation,
            *(_num(s.means[lv]) for lv in LEVELS),
            *(_num(v) for lv in LEVELS for v in (s.cis[lv].low, s.cis[lv].high)),
            _num(s.change),
            *(str(s.counts[lv]) for lv in LEVELS),
            str(s.n),
            table.notes_for(s.content, s.metric),
        ]
        for s in rows
    ]
    return header, body


def _ci_reason(c: Correlation) -> str:
    reasons = (
        f"{name}: {ci.reason}"
        for name, ci in (("pearson", c.pearson_ci), ("spearman", c.spearman_ci))
        if ci.reason and ci.reason != c.reason
    )
    return "; ".join(reasons)


def _ci_cells(ci: Interval) -> list[str]:
    return [_num(ci.low), _num(ci.high)]


def correlation_table(rows: list[Correlation]) -> tuple[list[str], list[list[str]]]:
    """correlations.csv: header and body."""
    header = [
        "content",
        "neural",
        "classic",
        "n",
        "pearson_r",
        "pearson_ci95_low",
        "pearson_ci95_high",
        "pearson_p",
        "spearman_rho",
        "spearman_ci95_low",
        "spearman_ci95_high",
        "spearman_p",
        "reason",
        "ci_reason",
        "weights_note",
        "content_note",
    ]
    body = [
        [
            c.content,
            c.neural,
            c.classic,
            str(c.n),
            _num(c.pearson_r),
            *_ci_cells(c.pearson_ci),
            _num(c.pearson_p),
            _num(c.spearman_rho),
            *_ci_cells(c.spearman_ci),
            _num(c.spearman_p),
            c.reason,
            _ci_reason(c),
            c.weights_note,
            c.content_note,
        ]
        for c in rows
    ]
    return header, body


def write_csv(path: Path, header: list[str], body: list[list[str]]) -> Path:
    """Write one CSV table atomically."""
    with atomic_open(path, "w") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(body)
    return path


# --- entry point ----------------------------------------------------------------------------


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file; --out needs a directory for the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{out}: cannot create the report folder ({e.strerror or e})") from None


def _figures(
    table: StudyTable, corr: list[Correlation], out: Path, wanted: bool, formats: tuple[str, ...]
) -> tuple[list[Path], list[str], str | None]:
    """(figure paths, notes, reason all were skipped)."""
    if not wanted:
        return [], [], "figures were not requested (--no-figures / figures=False)"
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        return (
            [],
            [],
            (
                f"matplotlib is not installed ({e}); install the 'plots' extra "
                "(pip install 'pqeval[plots]') to draw them"
            ),
        )
    try:
        paths, notes = draw_figures(table, corr, out / FIGURES_SUBDIR, formats)
    except OSError as e:
        raise UsageError(f"{out / FIGURES_SUBDIR}: cannot write the figures ({e})") from e
    return paths, notes, None


def write_report(
    csv_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    figures: bool = True,
    formats: str | Sequence[str] = FORMATS,
) -> ReportResult:
    """Write summary.csv, correlations.csv, figures (if matplotlib is available) and report.md.

    ``csv_path``: all_metrics.csv of ``pqeval study`` or a ``pqeval batch`` CSV; ``out_dir``: a
    directory (created if missing); ``formats``: figure formats, from ``png``, ``pdf``, ``svg``.
    Raises UsageError (one line) when the table is missing or malformed, ``out_dir`` is a file
    or cannot be written, or a format is unknown.
    """
    fmts = parse_formats(formats)
    out = Path(out_dir)
    table = load_table(csv_path)
    _prepare_out(out)
    summary = summarize(table.rows, table.metrics)
    corr = correlations(table)
    try:
        summary_csv = write_csv(out / "summary.csv", *summary_table(summary, table))
        corr_csv = write_csv(out / "correlations.csv", *correlation_table(corr))
    except OSError as e:
        raise UsageError(f"{out}: cannot write the report tables ({e})") from e

    fig_paths, notes, skipped = _figures(table, corr, out, figures, fmts)
    inputs = ReportInputs(table, out, summary, corr, fig_paths, skipped, notes, provenance_warnings(table))
    report = out / "report.md"
    with atomic_open(report, "w") as fh:
        fh.write(report_markdown(inputs))
    return ReportResult(
        report=report,
        summary_csv=summary_csv,
        correlations_csv=corr_csv,
        figures=fig_paths,
        figures_skipped=skipped,
        figure_notes=notes,
        correlations=corr,
        provenance_warnings=inputs.provenance,
        content_warnings=list(table.content_warnings),
    )
