"""A results table loaded for the report: rows, the metrics present, display order and labels.

Built on :func:`pqeval.results.read_results`. Labels carry the provenance caveat of embedding
scores from non-pretrained weights (:class:`pqeval.provenance.Provenance`); speech measures
on music rows get a content caveat.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..provenance import Provenance
from ..registry import CLASSIC_METRICS, EMBEDDING_METRICS, METRIC_LABELS, SPEECH_METRICS
from ..results import ResultRow, read_results
from .kinds import ALL_KINDS, LEVELS

CONTENT_ORDER: tuple[str, ...] = ("speech", "music", "env", "unknown")
OVERALL = "all"
#: Content types on which the speech measures (registry.SPEECH_METRICS) are not valid.
NON_SPEECH_CONTENT: tuple[str, ...] = ("music",)
SPEECH_MEASURE_CAVEAT = "speech measure on music — not validated for music"
#: Which provenance kind names the label when several are mixed: the least trustworthy wins.
_KIND_PRIORITY: tuple[str, ...] = ("unknown", "seeded", "custom")

__all__ = ["CONTENT_ORDER", "LEVELS", "OVERALL", "StudyTable", "load_table", "ordered"]


def ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """Distinct ``values``: those in ``order`` first (in that order), then the rest sorted."""
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + sorted(v for v in seen if v not in order)


@dataclass
class StudyTable:
    """The table as the report sees it.

    ``neural`` / ``classic``: metrics present of each kind; ``labels``: metric -> display label
    (with the provenance caveat when needed); ``caveats``: metric -> that caveat ('' for
    pretrained and classic metrics); ``provenance``: neural metric -> distinct weights strings of
    rows with a value; ``content_warnings``: one sentence per speech measure scored on music.
    """

    path: Path
    rows: list[ResultRow]
    metrics: list[str]
    neural: list[str]
    classic: list[str]
    contents: list[str]
    degradations: list[str]
    files: list[str]
    labels: dict[str, str]
    caveats: dict[str, str]
    provenance: dict[str, list[str]]
    content_warnings: list[str] = field(default_factory=list)

    def content_caveat(self, content: str, metric: str) -> str:
        """The speech-measure caveat for ``metric`` on ``content`` rows ('' when it applies)."""
        return SPEECH_MEASURE_CAVEAT if content in NON_SPEECH_CONTENT and metric in SPEECH_METRICS else ""

    def notes_for(self, content: str, metric: str) -> str:
        """Provenance and content caveats of one (content, metric) cell, joined by '; '."""
        return "; ".join(n for n in (self.caveats.get(metric, ""), self.content_caveat(content, metric)) if n)


def provenance_caveat(rows: list[ResultRow], metric: str) -> tuple[list[str], str]:
    """Distinct weights strings of rows with a value, and a label caveat ('' when all pretrained)."""
    weights = sorted({r.weights[metric] for r in rows if math.isfinite(r.values[metric])})
    kinds = {Provenance.parse(w).kind for w in weights}
    for kind in _KIND_PRIORITY:
        if kind in kinds:
            return weights, Provenance(kind, "", "").caveat
    return weights, ""


def speech_on_music(rows: list[ResultRow], metrics: list[str]) -> list[str]:
    """One warning per speech measure that has a value on a music row."""
    out = []
    for m in metrics:
        if m not in SPEECH_METRICS:
            continue
        n = sum(1 for r in rows if r.content in NON_SPEECH_CONTENT and math.isfinite(r.values[m]))
        if n:
            out.append(
                f"{METRIC_LABELS[m]} is a speech measure: its {n} value(s) on music rows are outside what it was "
                "designed and validated for — do not read them as music quality"
            )
    return out


def load_table(csv_path: str | os.PathLike) -> StudyTable:
    """Read ``csv_path`` (see :func:`pqeval.results.read_results`; UsageError when unusable)."""
    rows, metrics = read_results(csv_path)
    labels = {m: METRIC_LABELS[m] for m in metrics}
    caveats = dict.fromkeys(metrics, "")
    provenance: dict[str, list[str]] = {}
    for m in metrics:
        if m in EMBEDDING_METRICS:
            provenance[m], caveats[m] = provenance_caveat(rows, m)
            if caveats[m]:
                labels[m] = f"{METRIC_LABELS[m]} ({caveats[m]})"
    return StudyTable(
        path=Path(csv_path),
        rows=rows,
        metrics=metrics,
        neural=[m for m in metrics if m in EMBEDDING_METRICS],
        classic=[m for m in metrics if m in CLASSIC_METRICS],
        contents=ordered((r.content for r in rows), CONTENT_ORDER),
        degradations=ordered((r.degradation for r in rows), ALL_KINDS),
        files=list(dict.fromkeys(r.file for r in rows)),
        labels=labels,
        caveats=caveats,
        provenance=provenance,
        content_warnings=speech_on_music(rows, metrics),
    )
