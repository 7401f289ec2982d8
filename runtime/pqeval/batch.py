"""Scoring many pairs into one results table, resumably.

The pairs (:mod:`pqeval.pairs`) are grouped by clean file; each group is scored by
:func:`pqeval.work.score_group` on an engine (:mod:`pqeval.engines`: this process, local worker
processes, or a Dask cluster; :func:`score_pairs`); the rows come back as groups finish and this
process alone writes them (:class:`pqeval.output.ResultsFile`). One row per pair, in the
results-table schema of :mod:`pqeval.results`.

Resume: a row already in the output is kept, not recomputed, when its files' sha256 and its
stamp (:func:`pqeval.results.run_stamp`: settings, pqeval version, each model's key and sha256) match.
"""

from __future__ import annotations

import inspect
import os
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import engines
from .output import ResultsFile
from .pairs import Pair, pairs_from_csv, pairs_from_dirs, parse_shard
from .pairs import shard as shard_pairs
from .results import columns, run_stamp
from .scoring import ScoreOptions, Scorer
from .work import FAILED, REUSED, SCORED

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
    pairs: list[Pair],
    options: ScoreOptions | None = None,
    previous: dict | None = None,
    *,
    client: Any = None,
    workers: int = 1,
) -> Iterator[tuple[dict, str]]:
    """Score ``pairs`` and yield ``(row, status)`` as each group (one clean file) finishes; status
    is "scored", "reused" (an equal row in ``previous``) or "failed" (the row says why).

    Where (:mod:`pqeval.engines`): in this process (``workers=1``, the default); in ``workers``
    local processes; or, with ``client`` (a ``distributed.Client`` you hold, ``"local"`` for a
    LocalCluster on this machine, or a scheduler address / scheduler file), on a Dask cluster.
    Each pair is yielded exactly once (as many times as it is listed), whatever the engine.
    """
    options = options or ScoreOptions()
    engines.check_engine(client, workers)
    with _connected(client, workers) as dask:
        yield from _rows(pairs, options, previous or {}, dask, workers, _stamp(options, dask))


def _connected(client: Any, workers: int) -> Any:
    """A context giving the Dask client for ``client`` (None: no Dask)."""
    return engines.dask_client(client, workers) if client is not None else nullcontext()


def _stamp(options: ScoreOptions, dask: Any) -> dict[str, str]:
    """The run stamp: from a Dask worker (where the models are), else from this process."""
    return engines.dask_stamp(options, dask) if dask is not None else run_stamp(options)


def _rows(
    pairs: list[Pair], options: ScoreOptions, previous: dict, dask: Any, workers: int, stamp: dict[str, str]
) -> Iterator[tuple[dict, str]]:
    """The engine's rows, each pair's as many times as it is listed and never more."""
    if dask is not None:
        rows = engines.run_dask(engines.plan(pairs, previous, engines.dask_slots(dask)), options, stamp, dask)
    elif workers > 1:
        rows = engines.run_processes(engines.plan(pairs, previous, workers), options, stamp, workers)
    else:
        rows = engines.run_serial(pairs, options, stamp, previous)
    remaining = Counter(p.key for p in pairs)
    for row, status in rows:
        key = (row.get("clean", ""), row.get("degraded", ""))
        if remaining[key] <= 0:  # a task delivered twice: its rows are written once
            continue
        remaining[key] -= 1
        yield row, status


def run_batch(
    pairs: list[Pair],
    out: str | os.PathLike,
    options: ScoreOptions | None = None,
    extra_columns: Iterable[str] = (),
    progress: Callable[..., None] | None = None,
    *,
    workers: int = 1,
    client: Any = None,
    shard: str | tuple[int, int] | None = None,
) -> BatchResult:
    """Score every pair into the CSV ``out``; resume from it (see the module docstring).

    A pair whose files cannot be used gets a row with every metric empty and ``error`` set; the
    batch goes on. ``progress(done, total, label)`` is called after each pair (with
    ``failed=N`` too when it takes that keyword, as :class:`pqeval.render.Progress` does). ``workers`` /
    ``client``: where the pairs are scored (:func:`score_pairs`); ``shard``: ``"I/N"`` or
    ``(I, N)``, score only that deterministic part of the pairs (:func:`pqeval.pairs.shard`;
    join the parts with :func:`pqeval.merge.merge_results`). Models, the engine and the run stamp
    are checked before the output is touched.
    """
    options = options or ScoreOptions()
    engines.check_engine(client, workers)
    if shard is not None:
        i, n = parse_shard(shard) if isinstance(shard, str) else shard
        pairs = shard_pairs(pairs, i, n)
    if client is None or isinstance(client, str) and client == "local":  # a remote cluster's: by its workers
        Scorer(options).check_models()  # a model the caller requires is missing: stop before any row
    counts = {SCORED: 0, REUSED: 0, FAILED: 0}
    report_failed = progress is not None and "failed" in inspect.signature(progress).parameters
    with _connected(client, workers) as dask:
        stamp = _stamp(options, dask)
        with ResultsFile(Path(out), columns(options.metrics, list(extra_columns))) as results:
            for done, (row, status) in enumerate(_rows(pairs, options, results.previous, dask, workers, stamp), 1):
                results.add(row)
                counts[status] += 1
                if progress is not None:
                    label = Path(row["degraded"]).name
                    if report_failed:
                        progress(done, len(pairs), label, failed=counts[FAILED])
                    else:
                        progress(done, len(pairs), label)
            rows = results.finish([p.key for p in pairs])
    return BatchResult(rows, counts[SCORED], counts[REUSED], counts[FAILED])
