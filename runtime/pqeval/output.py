"""The results file of a batch: earlier rows for resuming, rows added as pairs finish, and the
final table.

:class:`ResultsFile` is the one writer of a batch's output; only the process that runs the batch
writes it (workers send rows back). The file is rewritten atomically at most every
:data:`FLUSH_SECONDS`, after the last pair and when the run stops early; until this run
supersedes them, the rows the file already had stay in it, so an interrupted resume never loses
earlier results; a completed run leaves exactly its own rows, in the order of its pairs.
"""

from __future__ import annotations

import time
from pathlib import Path

from .atomic import atomic_write_text
from .results import read_rows, to_csv

FLUSH_SECONDS = 2.0  # the CSV is rewritten at most this often (and at the end / on interruption)

Key = tuple[str, str]


class ResultsFile:
    """Rows of one batch output at ``path`` with header ``columns``.

    ``previous``: the rows an earlier run left, by pair key (for resuming). Use as a context
    manager: entering checks the file can be written (before any work), :meth:`add` records a
    finished row, :meth:`finish` writes the final table; leaving without :meth:`finish` (an
    error, Ctrl-C) writes what was done, keeping the earlier rows not yet superseded.
    """

    def __init__(self, path: str | Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        earlier = read_rows(self.path)
        self.previous: dict[Key, dict] = {(r.get("clean", ""), r.get("degraded", "")): r for r in earlier}
        self._keep_cols = self.columns + [c for c in dict.fromkeys(k for r in earlier for k in r) if c not in columns]
        self._pending = dict(self.previous)  # on disk until superseded
        self._rows: dict[Key, dict] = {}
        self._final: list[dict] | None = None
        self._last = 0.0

    def __enter__(self) -> ResultsFile:
        self._flush()  # fail early on an unwritable output
        return self

    def __exit__(self, *exc: object) -> None:
        if self._final is None:  # stopped early: keep what was done and the earlier rows
            self._flush()

    def add(self, row: dict) -> None:
        key = (row.get("clean", ""), row.get("degraded", ""))
        self._pending.pop(key, None)
        self._rows[key] = row
        if time.monotonic() - self._last >= FLUSH_SECONDS:
            self._flush()

    def finish(self, order: list[Key]) -> list[dict]:
        """Write exactly this run's rows in ``order``; return them."""
        self._pending.clear()
        self._final = [self._rows[k] for k in order if k in self._rows]  # a pair listed twice: two rows
        self._flush()
        return self._final

    def _flush(self) -> None:
        rows = self._final if self._final is not None else list(self._rows.values()) + list(self._pending.values())
        atomic_write_text(self.path, to_csv(rows, self._keep_cols if self._pending else self.columns))
        self._last = time.monotonic()
