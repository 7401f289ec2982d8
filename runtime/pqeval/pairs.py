"""Which pairs a batch scores: from a pairs CSV or two folders, grouped by clean file, sharded.

A *group* is the pairs that share one clean file: the unit of work handed to a worker, so each
clean embedding is computed once (the worker's Scorer caches it by the clean file's hash).
"""

from __future__ import annotations

import csv
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .audio import audio_files
from .errors import UsageError


@dataclass(frozen=True)
class Pair:
    """A clean reference and a degraded recording; ``extra``: the pairs CSV's other columns."""

    clean: Path
    degraded: Path
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        """(clean, degraded) as written in the results table: the pair's identity."""
        return (str(self.clean), str(self.degraded))


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


def group_by_clean(pairs: list[Pair]) -> list[list[Pair]]:
    """The pairs grouped by clean file, groups in order of first appearance, pairs in input order."""
    groups: dict[Path, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(p.clean, []).append(p)
    return list(groups.values())


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (1-based) -> (I, N); UsageError unless 1 <= I <= N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be I/N (e.g. 3/10), got {text!r}") from None
    if not 1 <= i <= n:
        raise UsageError(f"--shard I/N needs 1 <= I <= N, got {text!r}")
    return i, n


def in_shard(pair: Pair, i: int, n: int) -> bool:
    """Whether ``pair`` belongs to shard ``i`` of ``n``: decided by its clean file's path (a stable
    CRC-32, the same on every machine and run), so a clean file's pairs stay together."""
    return zlib.crc32(str(pair.clean).encode("utf-8")) % n == i - 1


def shard(pairs: list[Pair], i: int, n: int) -> list[Pair]:
    """The pairs of shard ``i`` of ``n`` (1-based), in input order."""
    return [p for p in pairs if in_shard(p, i, n)]
