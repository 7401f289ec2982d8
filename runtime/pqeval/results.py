"""The results table: one row per scored pair, written by ``pqeval batch`` / ``study`` and read
back by the report (:mod:`pqeval.study.report`) and by a resumed batch.

Columns, in order: extra columns given by the caller (the study's ``file``, ``content``,
``degradation``, ``level``), ``clean``, ``degraded``, then per metric ``m`` its value (empty
when NaN) and ``m_reason``; embedding metrics add ``m_min`` and ``m_weights`` (provenance, so a
seeded model's numbers can never pass for OpenL3/VGGish); then ``notes``, ``error`` (why a whole
pair failed), ``clean_sha256``, ``degraded_sha256`` and ``settings`` (``ScoreOptions.key()``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import TYPE_CHECKING, Iterable

from .registry import EMBEDDING_METRICS

if TYPE_CHECKING:
    from .batch import Pair
    from .scoring import PairScore

PAIR_COLUMNS: tuple[str, ...] = ("clean", "degraded")
STUDY_COLUMNS: tuple[str, ...] = ("file", "content", "degradation", "level")
TAIL_COLUMNS: tuple[str, ...] = ("notes", "error", "clean_sha256", "degraded_sha256", "settings")
#: Per-metric columns beside the value: suffix -> the metrics that have it.
METRIC_SUFFIXES: dict[str, tuple[str, ...]] = {"_reason": (), "_min": EMBEDDING_METRICS, "_weights": EMBEDDING_METRICS}


def metric_columns(m: str) -> list[str]:
    """The value column of metric ``m`` and its companions (``m_reason``, ``m_min``, ``m_weights``)."""
    return [m] + [m + suffix for suffix, only in METRIC_SUFFIXES.items() if not only or m in only]


def columns(metrics: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """CSV header for these metrics (see the module docstring)."""
    cols = [*extra, *PAIR_COLUMNS]
    for m in metrics:
        cols += metric_columns(m)
    return cols + list(TAIL_COLUMNS)


def _num(v: float | None) -> str:
    return "" if v is None or math.isnan(v) else repr(float(v))


def pair_row(pair: Pair, result: PairScore | None, metrics: Iterable[str], error: str = "") -> dict:
    """One CSV row: a scored pair, or a failed one (all metrics empty, ``error`` set)."""
    row = {**pair.extra, "clean": str(pair.clean), "degraded": str(pair.degraded)}
    for m in metrics:
        r = result.metrics.get(m) if result else None
        row[m] = _num(r.value) if r else ""
        row[f"{m}_reason"] = (r.reason or "") if r else error
        if m in EMBEDDING_METRICS:
            row[f"{m}_min"] = _num(r.details.get("min")) if r else ""
            row[f"{m}_weights"] = r.details.get("weights", "") if r else ""
    row["notes"] = "; ".join(result.notes) if result else ""
    row["error"] = error
    return row


def to_csv(rows: list[dict], cols: list[str]) -> str:
    """The rows as CSV text with header ``cols`` (keys not in ``cols`` are left out)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Rows of an earlier output (empty if it does not exist or cannot be parsed)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def rows_json(rows: list[dict], metrics: Iterable[str]) -> str:
    """The rows as JSON, numbers as numbers and NaN as null."""
    metrics = list(metrics)
    out = []
    for r in rows:
        d = dict(r)
        for m in metrics:
            for k in (m, f"{m}_min"):
                if k in d:
                    d[k] = float(d[k]) if d[k] not in ("", None) else None
        out.append(d)
    return json.dumps(out, indent=2)
