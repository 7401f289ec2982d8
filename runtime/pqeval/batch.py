"""Scoring many pairs: pairing, a clean-embedding cache, resumable atomic CSV output.

One row per pair, in the results-table schema of :mod:`pqeval.results`.

Resume: rows already in the output whose file hashes and settings match are kept, not
recomputed. The output is rewritten atomically at most every 2 s (not after every pair: that
is O(n^2) bytes on a large batch), after the last pair and on Ctrl-C or an error; rows the file
already had stay in it until superseded, so an interrupted resume never loses earlier results.
"""

from __future__ import annotations

import csv
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write_text
from .audio import Audio, audio_files, file_identity, open_audio
from .errors import PqevalError, UsageError
from .results import columns, pair_row, read_rows, to_csv
from .scoring import ScoreOptions, Scorer


@dataclass
class Pair:
    clean: Path
    degraded: Path
    extra: dict = field(default_factory=dict)


def pairs_from_csv(path: str | os.PathLike) -> list[Pair]:
    """Pairs from a CSV with ``clean`` and ``degraded`` columns (relative paths: from the CSV's folder)."""
    path = Path(path)
    base = path.parent
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"clean", "degraded"} <= set(reader.fieldnames):
                raise UsageError(f"{path}: needs a header with 'clean' and 'degraded' columns")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{path}: cannot read the pairs file ({e})") from None
    extra_cols = [c for c in reader.fieldnames if c not in ("clean", "degraded")]
    return [Pair(base / r["clean"], base / r["degraded"], {c: r.get(c, "") for c in extra_cols}) for r in rows]


def pairs_from_dirs(clean_dir: str | os.PathLike, degraded_dir: str | os.PathLike) -> list[Pair]:
    """Pair each degraded file with the clean file of the same stem, or whose stem it starts with
    followed by ``__`` (``pqeval degrade``'s ``<stem>__<kind>_<level>`` names)."""
    cd, dd = Path(clean_dir), Path(degraded_dir)
    for d in (cd, dd):
        if not d.is_dir():
            raise UsageError(f"{d}: not a directory")
    clean = {p.stem: p for p in audio_files(cd)}
    pairs = []
    for p in audio_files(dd):
        stem = p.stem.split("__", 1)[0]
        if stem in clean:
            pairs.append(Pair(clean[stem], p))
    if not pairs:
        raise UsageError(f"no degraded file in {dd} matches a clean file in {cd} by name")
    return pairs


@dataclass
class BatchResult:
    rows: list[dict]
    scored: int
    reused: int
    failed: int


CLEAN_CACHE_SIZE = 64  # clean-embedding cache entries (an OpenL3 embedding of 10 min is ~2.4 MB)


class LRUCache(OrderedDict):
    """A dict that keeps only its ``size`` most recently used entries (the Scorer's cache)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


FLUSH_SECONDS = 2.0  # the CSV is rewritten at most this often (and at the end / on interruption)


def run_batch(
    pairs: list[Pair],
    out: str | os.PathLike,
    options: ScoreOptions | None = None,
    extra_columns: Iterable[str] = (),
    progress: Callable[[int, int, str], None] | None = None,
) -> BatchResult:
    """Score every pair into the CSV ``out``; resume from it.

    ``out`` is rewritten atomically at most every FLUSH_SECONDS, after the last pair and when the
    run stops early (exception, Ctrl-C); a kill loses at most that much new work. Until this run
    supersedes them, the rows the file already had stay in it, so an interrupted resume never
    loses earlier results; a completed run leaves exactly its own rows. A pair whose files cannot
    be used gets a row with every metric empty and ``error`` set; the batch goes on.
    ``progress(done, total, label)`` is called after each pair.
    """
    options = options or ScoreOptions()
    out = Path(out)
    settings = options.key()
    extra_columns = list(extra_columns)
    cols = columns(options.metrics, extra_columns)
    previous = read_rows(out)
    pending = {(r.get("clean"), r.get("degraded")): r for r in previous}  # on disk until superseded
    keep_cols = cols + [c for c in dict.fromkeys(k for r in previous for k in r) if c not in cols]
    done = {
        key: r
        for key, r in pending.items()
        if r.get("settings") == settings and not r.get("error") and r.get("clean_sha256")
    }
    scorer = Scorer(options, cache=LRUCache(CLEAN_CACHE_SIZE))  # pairs of one clean file come together
    hashes: dict[Path, str] = {}

    def digest(p: Path) -> str:
        if p not in hashes:
            hashes[p] = file_identity(p)  # a stream is read once, shared with open_audio
        return hashes[p]

    opened: dict[tuple[Path, str], Audio] = {}

    def open_clean(p: Path, h: str) -> Audio:
        """The clean file opened (validated) once for the consecutive pairs that share it."""
        if (p, h) not in opened or not h:
            opened.clear()
            opened[(p, h)] = open_audio(p)
        return opened[(p, h)]

    rows: list[dict] = []
    last_flush = 0.0

    def flush() -> None:
        nonlocal last_flush
        atomic_write_text(out, to_csv(rows + list(pending.values()), keep_cols if pending else cols))
        last_flush = time.monotonic()

    scored = reused = failed = 0
    scorer.check_models()  # a model the caller requires is missing: stop before any row
    flush()  # fail early on an unwritable output
    completed = False
    try:
        for i, pair in enumerate(pairs):
            key = (str(pair.clean), str(pair.degraded))
            pending.pop(key, None)
            try:
                hc, hd = digest(pair.clean), digest(pair.degraded)
            except (OSError, PqevalError):  # the open below reports it in the pair's row
                hc = hd = ""
            prev = done.get(key)
            if prev and hc and prev.get("clean_sha256") == hc and prev.get("degraded_sha256") == hd:
                rows.append({**prev, **pair.extra})
                reused += 1
            else:
                try:
                    result = scorer.score(open_clean(pair.clean, hc), open_audio(pair.degraded), clean_id=hc or None)
                    row = pair_row(pair, result, options.metrics)
                    scored += 1
                except PqevalError as e:
                    row = pair_row(pair, None, options.metrics, error=str(e))
                    failed += 1
                row.update(clean_sha256=hc, degraded_sha256=hd, settings=settings)
                rows.append(row)
            if time.monotonic() - last_flush >= FLUSH_SECONDS:
                flush()
            if progress:
                progress(i + 1, len(pairs), pair.degraded.name)
        completed = True
    finally:
        if completed:
            pending.clear()  # a finished run's file holds exactly its own rows
        flush()
    return BatchResult(rows, scored, reused, failed)
