"""Joining shard outputs into one results table (``pqeval merge OUT PART...``).

Shards (``pqeval batch --shard I/N``, :func:`pqeval.pairs.shard`) each score a disjoint part of
one pair list, e.g. as the tasks of a job array; merging them:

* refuses a pair found in two parts (each pair belongs to exactly one shard: two parts holding it
  means they were cut from different lists or with different N);
* refuses parts scored with different settings: every *stamp* column (:func:`stamp_columns`:
  ``engine``, ``precision``, ``settings``, ``pqeval_version``, ``<metric>_model``,
  ``<metric>_model_sha256``) must hold one value across all rows of all parts (an empty cell, e.g.
  an older file, is not a conflict);
* with the pair list (the same ``PAIRS.csv`` or ``CLEAN_DIR DEGRADED_DIR`` the shards were given),
  orders the rows as the list and lists the pairs no part has (a shard that did not finish).

Within one part, a pair with several rows (an append-only file whose run was stopped and
resumed) is represented by its last row. A part's last line without its newline (a write cut
short by a kill) is left out and reported. Pairs are compared as written in the ``clean`` and
``degraded`` columns, so shards must be given the pair list in the same way (the same paths).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write_text
from .errors import UsageError
from .pairs import Pair
from .results import PAIR_COLUMNS, to_csv

Key = tuple[str, str]

STAMP_EXACT: tuple[str, ...] = ("engine", "precision", "settings", "pqeval_version")
STAMP_SUFFIXES: tuple[str, ...] = ("_model", "_model_sha256")
SHOWN = 5  # examples named in a refusal
#: What makes a CSV a pqeval results table (a pairs CSV has the first two, not the third).
TABLE_COLUMNS: tuple[str, ...] = (*PAIR_COLUMNS, "settings")


def stamp_columns(header: list[str]) -> list[str]:
    """The columns of ``header`` that say how a row was scored (one value per run)."""
    return [c for c in header if c in STAMP_EXACT or c.endswith(STAMP_SUFFIXES)]


@dataclass
class Part:
    """One shard's output: its header, its rows (the last one per pair), what was left out."""

    path: Path
    header: list[str]
    rows: dict[Key, dict]
    torn: bool = False


@dataclass
class MergeResult:
    """``rows``: the merged table (in pair-list order when given); ``columns``: its header;
    ``missing``: listed pairs no part has; ``unlisted``: rows whose pair is not in the list
    (kept, at the end); ``counts``: rows taken from each part; ``notes``: things to tell."""

    rows: list[dict]
    columns: list[str]
    missing: list[Key] = field(default_factory=list)
    unlisted: list[Key] = field(default_factory=list)
    counts: dict[Path, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _show(keys: list[Key]) -> str:
    shown = "; ".join(f"{c} -> {d}" for c, d in keys[:SHOWN])
    return shown + (f" (and {len(keys) - SHOWN} more)" if len(keys) > SHOWN else "")


def read_part(path: str | os.PathLike) -> Part:
    """A shard output; UsageError naming the file when it is not a pqeval results table."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such results file")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{p}: cannot read it as a results table ({e})") from None
    torn = bool(text) and not text.endswith("\n")
    if torn:
        text = text[: text.rfind("\n") + 1]
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as e:
        raise UsageError(f"{p}: not a well-formed CSV ({e})") from None
    if not records or not set(TABLE_COLUMNS) <= set(records[0]):
        raise UsageError(f"{p}: not a pqeval results table (needs the columns {', '.join(TABLE_COLUMNS)})")
    header = records[0]
    rows: dict[Key, dict] = {}
    for n, rec in enumerate(records[1:], 2):
        if not rec:
            continue
        if len(rec) != len(header):
            raise UsageError(f"{p}: line {n} has {len(rec)} fields, the header {len(header)}: not a results table")
        row = dict(zip(header, rec, strict=True))
        key = (row["clean"], row["degraded"])
        rows.pop(key, None)  # the last row of a pair is its newest
        rows[key] = row
    return Part(p, header, rows, torn)


def merge_parts(parts: list[Part], pairs: list[Pair] | None = None) -> MergeResult:
    """Check and join ``parts`` (see the module docstring); UsageError on overlap or
    inconsistent settings."""
    owner: dict[Key, Path] = {}
    overlap: list[Key] = []
    where: dict[Key, tuple[Path, Path]] = {}
    for part in parts:
        for key in part.rows:
            if key in owner:
                overlap.append(key)
                where.setdefault(key, (owner[key], part.path))
            else:
                owner[key] = part.path
    if overlap:
        a, b = where[overlap[0]]
        raise UsageError(
            f"{len(overlap)} pair(s) are in more than one part, e.g. in {a} and {b}: {_show(overlap)}; "
            "each pair must come from exactly one shard (the same pair list and the same N for every shard)"
        )

    columns: list[str] = []
    for part in parts:
        columns += [c for c in part.header if c not in columns]
    for col in stamp_columns(columns):
        seen: dict[str, Path] = {}
        for part in parts:
            for row in part.rows.values():
                value = row.get(col, "")
                if value and value not in seen:
                    seen[value] = part.path
        if len(seen) > 1:
            (v1, p1), (v2, p2) = list(seen.items())[:2]
            same = p1 == p2
            raise UsageError(
                f"the parts were not scored alike: column {col} is {v1!r} in {p1} but {v2!r} in "
                f"{'the same file' if same else p2}; rerun the odd part with the others' settings and models"
            )

    notes = [
        f"{part.path}: its last line was cut short (a stopped run?) and is left out; rerun that shard to complete it"
        for part in parts
        if part.torn
    ]
    by_key = {key: row for part in parts for key, row in part.rows.items()}
    counts = {part.path: len(part.rows) for part in parts}
    if pairs is None:
        return MergeResult(list(by_key.values()), columns, counts=counts, notes=notes)
    listed = [p.key for p in pairs]
    rows = [by_key[k] for k in listed if k in by_key]  # a pair listed twice: twice, as batch writes it
    missing = list(dict.fromkeys(k for k in listed if k not in by_key))
    in_list = set(listed)
    unlisted = [k for k in by_key if k not in in_list]
    rows += [by_key[k] for k in unlisted]
    if unlisted:
        notes.append(f"{len(unlisted)} row(s) are for pairs not in the pair list (kept at the end): {_show(unlisted)}")
    return MergeResult(rows, columns, missing, unlisted, counts, notes)


def _check_out(out: Path, parts: list[Path]) -> None:
    for p in parts:
        if out.exists() and p.exists() and os.path.samefile(out, p) or out.absolute() == p.absolute():
            raise UsageError(f"{out}: is also one of the parts; write the merged table to another file")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise UsageError(f"{out}: not a regular file; give a file path for the merged table")
    if out.exists():
        try:
            with open(out, newline="", encoding="utf-8-sig") as f:
                header = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            header = []
        if not set(TABLE_COLUMNS) <= set(header):
            raise UsageError(f"{out}: exists and is not a pqeval results table; not replacing it")


def merge_results(
    out: str | os.PathLike, parts: list[str | os.PathLike], pairs: list[Pair] | None = None
) -> MergeResult:
    """Merge the shard outputs ``parts`` into ``out`` (written atomically; an existing results
    table there is replaced, any other file is refused). ``pairs``: the pair list the shards
    were cut from, to order the rows and find the missing pairs."""
    if not parts:
        raise UsageError("give at least one part to merge")
    paths = [Path(p) for p in parts]
    seen: set[Path] = set()
    for p in paths:
        real = p.resolve()
        if real in seen:
            raise UsageError(f"{p}: given twice")
        seen.add(real)
    out = Path(out)
    _check_out(out, paths)
    result = merge_parts([read_part(p) for p in paths], pairs)
    atomic_write_text(out, to_csv(result.rows, result.columns))
    return result
