"""The results table: one row per scored pair, written by ``pqeval batch`` / ``study`` and read
back by the report (:mod:`pqeval.study.report`) and by a resumed batch.

Columns, in order: extra columns given by the caller (the study's ``file``, ``content``,
``degradation``, ``level``), ``clean``, ``degraded``, then per metric ``m`` its value (empty
when NaN) and ``m_reason``; embedding metrics add ``m_min``, ``m_weights`` (provenance, so a
seeded model's numbers can never pass for OpenL3/VGGish), ``m_model`` (the model key) and
``m_model_sha256`` (the model file's sha256, from its sidecar); then ``delay_s`` (the delay of the
degraded behind the clean in seconds, when reliably found), ``delay_confidence`` (the normalised
cross-correlation behind it, 0..1), ``notes``, ``error`` (why a whole pair failed),
``clean_sha256``, ``degraded_sha256``, ``engine`` and ``precision`` (what ran the embedding
models, :mod:`pqeval.inference`), ``settings`` (``ScoreOptions.key()``, which holds them too) and
``pqeval_version``. The run stamp (:func:`run_stamp`: engine, precision, settings, version, models
and their sha256) is what a resumed row must match to be reused.

The table is written by :class:`pqeval.output.ResultsFile` (appended row by row, compacted at the
end); :func:`parse_table` reads it back, dropping a row torn by a kill in the middle of an append.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from .content import content_of
from .errors import UsageError
from .registry import ALL_METRICS, EMBEDDING_METRICS

if TYPE_CHECKING:
    from .pairs import Pair
    from .scoring import PairScore, ScoreOptions

PAIR_COLUMNS: tuple[str, ...] = ("clean", "degraded")
STUDY_COLUMNS: tuple[str, ...] = ("file", "content", "degradation", "level")
TAIL_COLUMNS: tuple[str, ...] = (
    "delay_s",
    "delay_confidence",
    "notes",
    "error",
    "clean_sha256",
    "degraded_sha256",
    "engine",
    "precision",
    "settings",
    "pqeval_version",
)
#: Per-metric columns beside the value: suffix -> the metrics that have it.
METRIC_SUFFIXES: dict[str, tuple[str, ...]] = {
    "_reason": (),
    "_min": EMBEDDING_METRICS,
    "_weights": EMBEDDING_METRICS,
    "_model": EMBEDDING_METRICS,
    "_model_sha256": EMBEDDING_METRICS,
}
#: The columns without which a CSV is not a results table that ``pqeval batch`` may resume or replace.
RESULTS_FILE_COLUMNS: tuple[str, ...] = ("clean", "degraded", "settings")


def metric_columns(m: str) -> list[str]:
    """The value column of metric ``m`` and its companions (``m_reason``, ``m_min``, ``m_weights``)."""
    return [m] + [m + suffix for suffix, only in METRIC_SUFFIXES.items() if not only or m in only]


def columns(metrics: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """CSV header for these metrics (see the module docstring)."""
    cols = [*extra, *PAIR_COLUMNS]
    for m in metrics:
        cols += metric_columns(m)
    return cols + list(TAIL_COLUMNS)


def model_sha256(key: str) -> str:
    """The sha256 of model ``key`` as its sidecar records it, read from disk now (not from this
    process's open models, which may predate a re-export). ModelError if it is not installed."""
    from .session import OnnxModel, find_model

    return str(OnnxModel(find_model(key), threads=1).sidecar.get("sha256", ""))


def run_stamp(options: ScoreOptions) -> dict[str, str]:
    """The columns every row of a run carries and a resumed row must match: the settings, the
    pqeval version, and for each embedding metric asked for its model's key and sha256."""
    from . import __version__

    stamp = {
        "engine": options.engine,
        "precision": options.precision,
        "settings": options.key(),
        "pqeval_version": __version__,
    }
    for m in options.metrics:
        if m in EMBEDDING_METRICS:
            key = options.model_key(m)
            stamp[f"{m}_model"] = key
            stamp[f"{m}_model_sha256"] = model_sha256(key)
    return stamp


def _num(v: float | None) -> str:
    return "" if v is None or math.isnan(v) else repr(float(v))


def pair_row(pair: Pair, result: PairScore | None, metrics: Iterable[str], error: str = "") -> dict:
    """One CSV row: a scored pair, or a failed one (all metrics empty, ``error`` set)."""
    clean, degraded = pair.key
    row = {**pair.extra, "clean": clean, "degraded": degraded}
    for m in metrics:
        r = result.metrics.get(m) if result else None
        row[m] = _num(r.value) if r else ""
        row[f"{m}_reason"] = (r.reason or "") if r else error
        if m in EMBEDDING_METRICS:
            row[f"{m}_min"] = _num(r.details.get("min")) if r else ""
            row[f"{m}_weights"] = r.details.get("weights", "") if r else ""
    delay = result.delay if result else None
    row["delay_s"] = repr(delay.seconds) if delay and delay.reliable else ""
    row["delay_confidence"] = repr(round(delay.confidence, 6)) if delay else ""
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


@dataclass
class ParsedTable:
    """A results CSV as :func:`parse_table` read it.

    ``header``: its columns; ``rows``: the complete rows in file order (a pair appended twice
    appears twice; the last is the newest); ``size``: bytes up to the end of the last complete
    row (where the next append goes); ``torn``: bytes after it (a row cut short by a kill in the
    middle of an append), never parsed as a row; ``bad_line``: 0, or the line number of a complete
    row that is not well-formed CSV or has another number of fields than the header (the file
    was edited by hand, or is not a results table).
    """

    header: list[str]
    rows: list[dict]
    size: int
    torn: int = 0
    bad_line: int = 0


def _lines(data: bytes) -> list[bytes]:
    """``data`` cut after each ``\n`` (the last piece may lack one: a torn append)."""
    pieces = data.split(b"\n")
    return [p + b"\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def parse_table(data: bytes) -> ParsedTable:
    """Parse the bytes of a results CSV (UTF-8, optionally with a byte-order mark).

    A record is complete when its text ends with a newline outside quotes and has as many
    fields as the header; an incomplete last record (no final newline, an open quote, a UTF-8
    sequence cut in two) is a torn append: left out of ``rows`` and counted in ``torn``.
    """
    lines = _lines(data)
    used = 0
    texts: list[str] = []

    def feed() -> Iterable[str]:
        nonlocal used
        for i, raw in enumerate(lines):
            used = i + 1
            text = raw.decode("utf-8")  # bytes of a multibyte character never include b"\n"
            texts.append(text)
            yield text

    reader = csv.reader(feed(), strict=True)
    header: list[str] = []
    rows: list[dict] = []
    size = offset = 0
    bad_line = 0
    while True:
        start = used
        try:
            rec = next(reader)
        except StopIteration:
            break
        except (csv.Error, UnicodeDecodeError):
            if used >= len(lines):  # the last record, cut short
                break
            bad_line = start + 1
            break
        offset = sum(len(raw) for raw in lines[start:used]) + offset
        if not lines[used - 1].endswith(b"\n"):  # no final newline: torn, whatever it parsed as
            break
        size = offset
        if not header:
            header = [h.lstrip("\ufeff") if i == 0 else h for i, h in enumerate(rec)]
            continue
        if not rec:
            continue
        if len(rec) != len(header):
            bad_line = used
            break
        rows.append(dict(zip(header, rec, strict=False)))
    return ParsedTable(header, rows, size, len(data) - size, bad_line)


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The complete rows of an earlier output, in file order (empty if it does not exist or
    cannot be read); a torn last row is left out."""
    try:
        with open(path, "rb") as f:
            return parse_table(f.read()).rows
    except OSError:
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


# --- reading a results table back (the report's side) ----------------------------------------

#: ``pqeval degrade``'s output names: ``<stem>__<kind>_<level>`` (kind and level without ``_``).
DEGRADED_NAME = re.compile(r"^(?P<stem>.+)__(?P<kind>[A-Za-z0-9-]+)_(?P<level>[A-Za-z0-9-]+)$")
UNKNOWN_DEGRADATION = "unknown"


@dataclass
class ResultRow:
    """One row of a results table, typed.

    ``values``: metric -> float (NaN when empty or unparsable); ``reasons``: metric -> why it is
    NaN (the ``m_reason`` column, plus a parse problem); ``weights``: embedding metric -> its
    ``m_weights`` provenance string ('' for classic metrics or when not recorded). ``file``,
    ``content``, ``degradation``, ``level`` come from the study columns when the table has them,
    else they are derived from ``clean`` / ``degraded`` (see :func:`read_results`).
    """

    file: str
    content: str
    degradation: str
    level: str
    clean: str = ""
    degraded: str = ""
    values: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    error: str = ""


def _parse_value(text: str) -> tuple[float, str]:
    """(value, problem): '' -> NaN with no problem; non-numbers -> NaN and a problem."""
    text = (text or "").strip()
    if not text:
        return math.nan, ""
    try:
        v = float(text)
    except ValueError:
        return math.nan, f"unparsable value {text!r} in the table"
    return (v, "") if math.isfinite(v) else (math.nan, "")


def _stem(path_text: str) -> str:
    """File stem of a path written on any platform (``/a/b.wav``, ``C:\\a\\b.wav``)."""
    return PurePath(path_text.replace("\\", "/")).stem if path_text else ""


def derive_identity(clean: str, degraded: str) -> tuple[str, str, str, str]:
    """(file, content, degradation, level) of a batch row without study columns.

    file: the clean file's stem (else the ``<stem>`` part of the degraded name); content:
    :func:`pqeval.content.content_of` of it; degradation / level from a degraded name
    ``<stem>__<kind>_<level>.<ext>``, else ``"unknown"`` / ``""``.
    """
    m = DEGRADED_NAME.match(_stem(degraded))
    file = _stem(clean) or (m["stem"] if m else _stem(degraded))
    kind, level = (m["kind"], m["level"]) if m else (UNKNOWN_DEGRADATION, "")
    return file, content_of(file), kind, level


def _result_row(rec: dict, metrics: list[str]) -> ResultRow:
    def get(key: str) -> str:
        return (rec.get(key) or "").strip()

    file, content, degradation, level = derive_identity(get("clean"), get("degraded"))
    file = get("file") or file
    row = ResultRow(
        file=file,
        content=get("content") or (content_of(file) if get("file") else content),
        degradation=get("degradation") or degradation,
        level=get("level") or level,
        clean=get("clean"),
        degraded=get("degraded"),
        notes=get("notes"),
        error=get("error"),
    )
    for m in metrics:
        row.values[m], bad = _parse_value(get(m))
        row.reasons[m] = "; ".join(r for r in (get(f"{m}_reason"), bad) if r)
        row.weights[m] = get(f"{m}_weights")
    return row


def read_results(path: str | os.PathLike) -> tuple[list[ResultRow], list[str]]:
    """Read a results table: (rows, metric columns present in :data:`ALL_METRICS` order).

    Accepts ``pqeval study``'s all_metrics.csv (with :data:`STUDY_COLUMNS`) and a plain
    ``pqeval batch`` CSV (:data:`PAIR_COLUMNS` and metric columns; identity derived by
    :func:`derive_identity`). Raises :class:`UsageError` (one line, naming the file) when the
    file is missing or unreadable, has neither set of identity columns, or no metric column.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: results table not found")
    try:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            if not (set(STUDY_COLUMNS) <= set(header) or set(PAIR_COLUMNS) <= set(header)):
                missing = [c for c in (*STUDY_COLUMNS, *PAIR_COLUMNS) if c not in header]
                raise UsageError(
                    f"{p}: not a results table (missing column(s) {', '.join(missing)}; "
                    f"needs {', '.join(PAIR_COLUMNS)} or {', '.join(STUDY_COLUMNS)})"
                )
            metrics = [m for m in ALL_METRICS if m in header]
            if not metrics:
                raise UsageError(f"{p}: not a results table (no metric column; one of {', '.join(ALL_METRICS)})")
            rows = [_result_row(rec, metrics) for rec in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"{p}: cannot read the results table ({why})") from None
    return rows, metrics
