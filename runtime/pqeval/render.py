"""Rendering results for people and programs: tables, JSON and CSV on stdout; notes on stderr.

The CLI parses, calls the library, then hands what it got to one function here. Data goes to
stdout (so ``pqeval score ... --json > x.json`` works); warnings, notes and progress go to
stderr, and ``quiet`` silences all but errors.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .provenance import Provenance
from .registry import DEFAULT_ENGINE, DEFAULT_PRECISION

if TYPE_CHECKING:
    from .scoring import PairScore

PROGRESS_LOG_SECONDS = 10.0  # without a terminal, a progress line at most this often


def one_line(msg: str) -> str:
    """``msg`` with control characters (a newline in a file name, say) escaped: ``\\n``, ``\\x1b``."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode() for c in msg)


def stderr(msg: str, quiet: bool = False) -> None:
    """One line on stderr unless ``quiet`` (control characters escaped)."""
    if not quiet:
        print(one_line(msg), file=sys.stderr, flush=True)


def _console(err: bool = False):
    from rich.console import Console

    return Console(stderr=err, soft_wrap=False)


def fmt_score(v: float | None) -> str:
    """A score with 4 decimals, or NaN."""
    return "NaN" if v is None or math.isnan(v) else f"{v:.4f}"


def json_text(data: Any) -> str:
    """Strict JSON (NaN is not allowed: callers put None there), indented."""
    return json.dumps(data, indent=2, allow_nan=False)


def pair_table(result: PairScore) -> None:
    """The score table on stdout: one row per metric, its value and what it is the mean of."""
    from rich.table import Table

    title = one_line(f"{Path(result.clean).name}  vs  {Path(result.degraded).name}")
    fast_path = (result.engine, result.precision) != (DEFAULT_ENGINE, DEFAULT_PRECISION)
    caption = f"embeddings on {result.engine} {result.precision}" if fast_path else None
    t = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    t.add_column("metric")
    t.add_column("score", justify="right")
    t.add_column("detail")
    for name, m in result.metrics.items():
        if not m.ok:
            detail = f"[red]{m.reason}[/red]"
        elif "min" in m.details:
            detail = f"mean of {len(m.details['frames'])} frames, min {m.details['min']:.4f}"
            if m.details.get("note"):
                name = f"{name} [bold yellow](not perceptual)[/bold yellow]"
        else:
            detail = ""
        t.add_row(name, fmt_score(m.value), detail)
    _console().print(t)


def pair_notes(result: PairScore, quiet: bool = False) -> None:
    """Provenance warnings and alignment/scoring notes of one pair, on stderr."""
    for name, m in result.metrics.items():
        if m.details.get("note"):
            stderr(f"warning: {name}: {m.details['note']} ({m.details['weights']})", quiet)
    for n in result.notes:
        stderr(f"note: {n}", quiet)


def pair_json(result: PairScore) -> None:
    print(json_text(result.as_dict()))


def batch_summary(rows: list[dict], out: str, scored: int, reused: int, failed: int, quiet: bool = False) -> None:
    """The one-line outcome of a batch, a warning per embedding metric whose weights are not the
    published ones (the rows' ``<m>_weights``, as the table and CSV show them), and a line per
    failed pair, on stderr."""
    stderr(f"pqeval: {len(rows)} pairs -> {out}: {scored} scored, {reused} reused, {failed} failed", quiet)
    from .registry import EMBEDDING_METRICS

    for m in EMBEDDING_METRICS:
        for weights in dict.fromkeys(r.get(f"{m}_weights") or "" for r in rows):
            note = Provenance.parse(weights).note if weights else ""
            if note:
                stderr(f"pqeval: warning: {m}: {note} ({weights})", quiet)
    for r in rows:
        if r.get("error"):
            where = "" if r["error"].startswith(str(r["degraded"])) else f"{r['degraded']}: "
            stderr(f"pqeval: failed: {where}{r['error']}")


def models_table(rows: list[dict], search_dirs: list[str], install_hint: str) -> None:
    """``pqeval models``: installed models and their provenance (warnings on stderr)."""
    from rich.table import Table

    if not rows:
        print("No models installed. Looked in: " + ", ".join(search_dirs))
        print(install_hint)
        return
    t = Table(title="installed models")
    for col in ("model", "weights", "verified at export", "size", "path"):
        t.add_column(col)
    for r in rows:
        w = r["weights"] if r["perceptual"] else f"[bold yellow]{r['weights']}[/bold yellow]"
        v = r["verify"]
        ver = f"max|Δ| {v['max_abs_diff']:.1e}, cos {v['cosine_min']:.6f}" if "max_abs_diff" in v else ""
        if r["status"] != "ok":
            ver = f"[red]{r['status']}[/red]"
        t.add_row(r["key"], w, ver, f"{r['size_mb']} MB", r["path"])
    _console().print(t)
    for r in rows:
        if r["note"]:
            stderr(f"warning: {r['key']}: {r['note']}")


def available_table(rows: list[dict]) -> None:
    """``pqeval models --available``: every exportable model, installed or not, and how to get it."""
    from rich.table import Table

    t = Table(title="models pqeval can export")
    t.add_column("model", no_wrap=True)
    for col in ("installed", "one frame", "export with"):
        t.add_column(col)
    for r in rows:
        key = f"{r['key']} (default)" if r["default"] else r["key"]
        t.add_row(key, "yes" if r["installed"] else "", r["frame"], f"{r['export']} --weights …")
    _console().print(t)


def engines_table(table: dict) -> None:
    """``pqeval engines``: the CPU, then one row per engine × precision."""
    from rich.table import Table

    tab = Table(title=f"{table['cpu']}: {' '.join(table['instruction_sets']) or 'no notable instruction sets'}")
    for col in ("engine", "precision", "runs here", "why not"):
        tab.add_column(col)
    for r in table["engines"]:
        ok = "yes (default)" if r["default"] else "yes" if r["ok"] else "no"
        tab.add_row(r["engine"], r["precision"], ok, r["reason"])
    _console().print(tab)


def bench_table(rows: list[dict], reps: int) -> None:
    """``pqeval bench``: one row per model."""
    from rich.table import Table

    r0 = rows[0]
    tab = Table(
        title=f"pqeval bench: {r0['audio_s']} s of audio, {r0['engine']} {r0['precision']}, "
        f"{r0['threads']} threads, {reps} runs"
    )
    cols = (
        "model",
        "load s",
        "median s",
        "min–max s",
        "per 10 s audio",
        "ms per example/window",
        "GFLOP/s",
        "peak RSS MB (process)",
    )
    for col in cols:
        tab.add_column(col)
    for r in rows:
        tab.add_row(
            r["model"],
            f"{r['load_s']:.2f}",
            f"{r['median_s']:.3f}",
            f"{r['min_s']:.3f}–{r['max_s']:.3f}",
            f"{r['per_10s_audio_s']:.3f}",
            f"{r['per_unit_ms']:.1f}",
            str(r["gflops_end_to_end"] or "–"),
            f"{r['peak_rss_mb']:.0f}",
        )
    _console().print(tab)
    for r in rows:
        note = Provenance.parse(r["weights"]).note
        if note:
            stderr(f"warning: {r['model']}: {note} (times and memory do not depend on the weights)")


def _clock_text(seconds: float) -> str:
    """``H:MM:SS``."""
    s = max(0, round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Progress of long work on stderr: a live bar on a terminal, else (a cluster job's log, a
    pipe) a one-line record after the first item, at most every PROGRESS_LOG_SECONDS, and at the
    end: ``pqeval: LABEL done/total UNIT, rate UNIT/s, ETA H:MM:SS, N failed (item)``.

    Call it with ``(done, total, item)`` and, when the caller counts them, ``failed=N``.
    ``clock``: seconds, monotonic (a stand-in in tests).
    """

    def __init__(
        self, label: str, quiet: bool = False, unit: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.label = label
        self.quiet = quiet
        self.unit = unit
        self.clock = clock
        self.live = sys.stderr.isatty() and not quiet
        self._bar: Any = None
        self._task: Any = None
        self._last: float | None = None
        self._start = 0.0

    def __enter__(self) -> Progress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=_console(err=True),
                transient=True,
            )
            self._bar.__enter__()
        self._start = self.clock()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, done: int, total: int, item: str, failed: int | None = None) -> None:
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(item, total=total)
            desc = item if not failed else f"{item} [red]({failed} failed)[/red]"
            self._bar.update(self._task, completed=done, description=desc)
            return
        now = self.clock()
        if self.quiet or not (self._last is None or now - self._last >= PROGRESS_LOG_SECONDS or done == total):
            return
        self._last = now
        stderr(self.line(done, total, item, failed, now - self._start))

    def line(self, done: int, total: int, item: str, failed: int | None, elapsed: float) -> str:
        """The log record: counts, rate, ETA, failures."""
        unit = f" {self.unit}" if self.unit else ""
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _clock_text((total - done) / rate) if rate > 0 else "?"
        fails = "" if failed is None else f", {failed} failed"
        return f"pqeval: {self.label} {done}/{total}{unit}, {rate:.2f}{unit or ' items'}/s, ETA {eta}{fails} ({item})"


def lines(items: Iterable[str]) -> None:
    for item in items:
        print(item)
