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

from .audio import AUDIO_EXTENSIONS, audio_files
from .errors import UsageError


@dataclass(frozen=True)
class Pair:
    """A clean reference and a degraded recording; ``extra``: the pairs CSV's other columns;
    ``problem``: why this line of the pairs CSV cannot be scored (it becomes a failed row), else ''.
    A path the CSV left empty is ``Path()`` and written as ''."""

    clean: Path
    degraded: Path
    extra: dict = field(default_factory=dict, hash=False, compare=False)
    problem: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[str, str]:
        """(clean, degraded) as written in the results table: the pair's identity."""
        return (path_text(self.clean), path_text(self.degraded))


def path_text(p: Path) -> str:
    """A pair's path as the results table writes it ('' for a path the pairs CSV left empty)."""
    return "" if p == Path() else str(p)


def _reserved_columns() -> set[str]:
    from .registry import ALL_METRICS
    from .results import columns

    return set(columns(ALL_METRICS))


def pairs_from_csv(path: str | os.PathLike) -> list[Pair]:
    """Pairs from a CSV with ``clean`` and ``degraded`` columns; relative paths resolve against the
    CSV's folder. UTF-8, with or without Excel's byte-order mark. Its other columns travel with
    each pair (``extra``: kept in the results), except those named like a results column. A row
    with a missing or empty path, or more fields than the header, is a pair with a ``problem``
    (a failed row saying what is wrong, naming the CSV line), not the end of the batch."""
    path = Path(path)
    base = path.parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if not {"clean", "degraded"} <= set(header):
                raise UsageError(f"{path}: needs a header with 'clean' and 'degraded' columns")
            records = [(reader.line_num, rec) for rec in reader if rec]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{path}: cannot read the pairs file ({e})") from None
    reserved = _reserved_columns()
    extra_cols = [c for c in dict.fromkeys(header) if c not in reserved]
    return [_pair(path, base, header, extra_cols, line, rec) for line, rec in records]


def _pair(path: Path, base: Path, header: list[str], extra_cols: list[str], line: int, rec: list[str]) -> Pair:
    cells = dict(zip(header, rec, strict=False))
    extra = {c: cells.get(c, "") for c in extra_cols}
    clean, degraded = cells.get("clean", ""), cells.get("degraded", "")
    c, d = (Path() if not t.strip() else base / t for t in (clean, degraded))
    where = f"{path} line {line}"
    n = len(rec)
    fields = f"{n} field{'s' if n != 1 else ''}"
    if n < len(header):
        missing = [c for c in ("clean", "degraded") if c not in header[:n]]
        if missing:
            cells_txt = " and ".join(f"'{c}'" for c in missing)
            problem = f"{where}: {fields}, no {cells_txt} cell (the header has {len(header)} columns)"
            return Pair(c, d, extra, problem)
    elif n > len(header):
        problem = f"{where}: {fields}, the header has {len(header)} (quote a path that holds a comma)"
        return Pair(c, d, extra, problem)
    empty = [c for c, t in (("clean", clean), ("degraded", degraded)) if not t.strip()]
    if empty:
        cols = " and ".join(f"'{c}'" for c in empty)
        return Pair(c, d, extra, f"{where}: empty path in the {cols} column{'s' if len(empty) > 1 else ''}")
    return Pair(c, d, extra)


def _audio_tree(d: Path, recursive: bool) -> list[Path]:
    """The audio files in ``d`` (and below it, if ``recursive``; symbolic links to folders are
    not followed), sorted by path."""
    if not recursive:
        return audio_files(d)
    found = []
    for root, dirs, files in os.walk(d):
        dirs.sort()
        found += [Path(root) / f for f in files if Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return sorted(p for p in found if p.is_file())


def _stems(stem: str) -> list[str]:
    """Clean stems a degraded stem can belong to, longest first: ``a__b__c`` -> a__b__c, a__b, a."""
    parts = stem.split("__")
    return ["__".join(parts[:i]) for i in range(len(parts), 0, -1)]


def pairs_from_dirs(
    clean_dir: str | os.PathLike, degraded_dir: str | os.PathLike, recursive: bool = False
) -> list[Pair]:
    """Pair each degraded file with the clean file of the same stem, or whose stem it starts with
    followed by ``__`` (``pqeval degrade``'s ``<stem>__<kind>_<level>`` names; the longest such
    stem wins, so a clean ``x__y.wav`` pairs with a degraded ``x__y.wav``). ``recursive``: also
    the files in subfolders, each paired within the same relative folder."""
    cd, dd = Path(clean_dir), Path(degraded_dir)
    for d in (cd, dd):
        if not d.is_dir():
            raise UsageError(f"{d}: not a directory")
    clean = {(p.parent.relative_to(cd), p.stem): p for p in _audio_tree(cd, recursive)}
    pairs = []
    for p in _audio_tree(dd, recursive):
        folder = p.parent.relative_to(dd)
        match = next((clean[(folder, s)] for s in _stems(p.stem) if (folder, s) in clean), None)
        if match is not None:
            pairs.append(Pair(match, p))
    if not pairs:
        where = " (or their subfolders)" if recursive else ""
        raise UsageError(f"no degraded file in {dd}{where} matches a clean file in {cd} by name")
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
