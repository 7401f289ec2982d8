"""Scoring many pairs into one results table, resumably.

The pairs (:mod:`pqeval.pairs`) are grouped by clean file; each group is scored by
:func:`pqeval.work.score_group` on an engine (:func:`score_pairs`); the rows come back as groups
finish and this process alone writes them (:class:`pqeval.output.ResultsFile`). One row per pair,
in the results-table schema of :mod:`pqeval.results`.

Resume: a row already in the output is kept, not recomputed, when its files' sha256 and its
stamp (:func:`pqeval.results.run_stamp`: the settings) match.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .output import ResultsFile
from .pairs import Pair, group_by_clean, pairs_from_csv, pairs_from_dirs
from .results import columns, run_stamp
from .scoring import ScoreOptions, Scorer
from .work import FAILED, REUSED, SCORED, iter_group

__all__ = ["BatchResult", "LRUCache", "Pair", "pairs_from_csv", "pairs_from_dirs", "run_batch", "score_pairs"]


@dataclass
class BatchResult:
    rows: list[dict]
    scored: int
    reused: int
    failed: int


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


def score_pairs(
    pairs: list[Pair], options: ScoreOptions | None = None, previous: dict | None = None
) -> Iterator[tuple[dict, str]]:
    """Score ``pairs`` and yield ``(row, status)`` as each group (one clean file) finishes; status
    is "scored", "reused" (an equal row in ``previous``) or "failed" (the row says why)."""
    options = options or ScoreOptions()
    stamp = run_stamp(options)
    previous = previous or {}
    for group in group_by_clean(pairs):
        mine = {p.key: previous[p.key] for p in group if p.key in previous}
        yield from iter_group(group, options, stamp, mine)


def run_batch(
    pairs: list[Pair],
    out: str | os.PathLike,
    options: ScoreOptions | None = None,
    extra_columns: Iterable[str] = (),
    progress: Callable[[int, int, str], None] | None = None,
) -> BatchResult:
    """Score every pair into the CSV ``out``; resume from it (see the module docstring).

    A pair whose files cannot be used gets a row with every metric empty and ``error`` set; the
    batch goes on. ``progress(done, total, label)`` is called after each pair.
    """
    options = options or ScoreOptions()
    Scorer(options).check_models()  # a model the caller requires is missing: stop before any row
    counts = {SCORED: 0, REUSED: 0, FAILED: 0}
    with ResultsFile(Path(out), columns(options.metrics, list(extra_columns))) as results:
        for done, (row, status) in enumerate(score_pairs(pairs, options, results.previous), 1):
            results.add(row)
            counts[status] += 1
            if progress:
                progress(done, len(pairs), Path(row["degraded"]).name)
        rows = results.finish([p.key for p in pairs])
    return BatchResult(rows, counts[SCORED], counts[REUSED], counts[FAILED])
