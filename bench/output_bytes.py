#!/usr/bin/env python3
"""Bytes written per results row: the writer before issue 13 (the whole table rewritten atomically
at most every 2 s) against the append-only :class:`pqeval.output.ResultsFile` (each row appended,
one compaction at the end), at ROWS rows of the default metrics.

The bytes are what the process hands to ``write()`` (``wchar`` in ``/proc/self/io``), measured
around each writer. The old writer's cost depends on how fast rows come (it rewrites the file at
most every 2 s), so it runs on a simulated clock at several rates: 0.41 pairs/s is one 2-core
process at today's ~2.4 s per pair (issue 13: 100k pairs ~ 67 h), then 10x, 100x, 1000x (more
workers, a cluster). Rates whose real rewrite would exceed --max-write-gb are computed instead
(the same sum over the rewrites' sizes, checked against the measurement where both exist).

    python bench/output_bytes.py [--rows 10000] [--out bench/results/output_bytes.md]
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))

from pqeval import __version__  # noqa: E402
from pqeval.atomic import atomic_write_text  # noqa: E402
from pqeval.output import ResultsFile  # noqa: E402
from pqeval.registry import DEFAULT_METRICS, EMBEDDING_METRICS  # noqa: E402
from pqeval.results import columns, to_csv  # noqa: E402
from pqeval.scoring import ScoreOptions  # noqa: E402

OLD_FLUSH_SECONDS = 2.0  # runtime/pqeval/output.py before issue 13 (commit f9efce7)
RATES = (0.41, 4.1, 41.0, 410.0)  # pairs per second


def wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io (Linux only)")


def make_rows(n: int) -> tuple[list[str], list[dict]]:
    """Rows as a default-metrics batch of an enhancement corpus writes them."""
    rnd = random.Random(0)
    cols = columns(DEFAULT_METRICS)
    settings = ScoreOptions().key()
    sha = {m: f"{rnd.getrandbits(256):064x}" for m in EMBEDDING_METRICS}
    keys = {"vggish": "vggish", "openl3": "openl3-mel256-music-512"}
    rows = []
    for i in range(n):
        spk, utt = i // 100, i
        row = {
            "clean": f"/data/corpus/clean/spk{spk:04d}/utt{utt:06d}.wav",
            "degraded": f"/data/corpus/enhanced/system_a/spk{spk:04d}/utt{utt:06d}.wav",
        }
        for m in DEFAULT_METRICS:
            row[m] = repr(rnd.random())
            row[f"{m}_reason"] = ""
            if m in EMBEDDING_METRICS:
                row[f"{m}_min"] = repr(rnd.random())
                row[f"{m}_weights"] = f"pretrained:{m}.h5 {sha[m]}"
                row[f"{m}_model"] = keys[m]
                row[f"{m}_model_sha256"] = sha[m]
        row.update(
            delay_s="",
            delay_confidence=repr(round(rnd.random(), 6)),
            notes="",
            error="",
            clean_sha256=f"{rnd.getrandbits(256):064x}",
            degraded_sha256=f"{rnd.getrandbits(256):064x}",
            settings=settings,
            pqeval_version=__version__,
        )
        rows.append(row)
    return cols, rows


def new_writer(path: Path, cols: list[str], rows: list[dict]) -> tuple[int, float]:
    """(bytes written, seconds) of ResultsFile: every row appended, then finish()."""
    t0, w0 = time.perf_counter(), wchar()
    with ResultsFile(path, cols) as f:
        for r in rows:
            f.add(r)
        f.finish([(r["clean"], r["degraded"]) for r in rows])
    return wchar() - w0, time.perf_counter() - t0


def old_writer(path: Path, cols: list[str], rows: list[dict], rate: float) -> int:
    """Bytes written by the writer before issue 13, rows arriving at ``rate`` pairs/s (simulated
    clock): the whole table rewritten atomically at the start, whenever >= 2 s passed since the
    last rewrite, and at the end."""
    w0 = wchar()
    atomic_write_text(path, to_csv([], cols))
    last, done = 0.0, []
    for i, r in enumerate(rows, 1):
        done.append(r)
        now = i / rate
        if now - last >= OLD_FLUSH_SECONDS:
            atomic_write_text(path, to_csv(done, cols))
            last = now
    atomic_write_text(path, to_csv(done, cols))
    return wchar() - w0


def old_writer_computed(cols: list[str], rows: list[dict], rate: float) -> int:
    """The same bytes as :func:`old_writer`, summed from the table sizes without writing them."""
    header = len(to_csv([], cols).encode())
    sizes = [len(to_csv([r], cols).encode()) - header for r in rows]
    total, table, last = header, header, 0.0
    for i, s in enumerate(sizes, 1):
        table += s
        if i / rate - last >= OLD_FLUSH_SECONDS:
            total += table
            last = i / rate
    return total + table


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--max-write-gb", type=float, default=2.0, help="write the old way for real up to this much")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "output_bytes.md")
    args = ap.parse_args()

    cols, rows = make_rows(args.rows)
    work = Path(tempfile.mkdtemp(prefix="pqeval-output-bytes-"))
    try:
        new_bytes, new_s = new_writer(work / "new.csv", cols, rows)
        final = (work / "new.csv").stat().st_size
        old = []
        for rate in RATES:
            computed = old_writer_computed(cols, rows, rate)
            measured = None
            if computed <= args.max_write_gb * 1e9:
                measured = old_writer(work / f"old{rate}.csv", cols, rows, rate)
            old.append((rate, computed, measured))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.rows
    lines = [
        "# Bytes written per results row (issue 13)",
        "",
        f"`python bench/output_bytes.py --rows {n}` on {cpu_name()} ({platform.system()}, Python "
        f"{platform.python_version()}, pqeval {__version__}), {time.strftime('%Y-%m-%d')}.",
        "",
        f"{n} rows of the default metrics ({', '.join(DEFAULT_METRICS)}), {len(cols)} columns; the final "
        f"table is {final / 1e6:.2f} MB ({final / n:.0f} bytes per row). Bytes are what the process "
        "handed to `write()` (`wchar` in `/proc/self/io`).",
        "",
        "| writer | rows arrive at | bytes written | per row | × the final table |",
        "|---|---|---|---|---|",
        f"| append-only + one compaction (now) | any rate | {new_bytes / 1e6:,.1f} MB | {new_bytes / n:,.0f} B "
        f"| {new_bytes / final:.2f} |",
    ]
    for rate, computed, measured in old:
        b = measured if measured is not None else computed
        how = "" if measured is not None else " (computed)"
        lines.append(
            f"| whole table every ≥ 2 s (before) | {rate:g} pairs/s | {b / 1e6:,.1f} MB{how} | {b / n:,.0f} B "
            f"| {b / final:.1f} |"
        )
    checks = [(c, m) for _, c, m in old if m is not None]
    lines += [
        "",
        f"The append-only writer's bytes do not depend on the rate: each row once when it arrives, the "
        f"whole table once at the end (the compaction into input order), and the header: "
        f"{new_bytes / final:.2f}× the final table; {n} rows took {new_s:.2f} s to write here.",
        "The old writer rewrote the whole table each time 2 s had passed: at one process's rate "
        "(0.41 pairs/s, ~2.4 s per pair) that is once per row, O(n²) bytes; more workers make rows "
        "come faster and the rewrites rarer, but each still copies the whole table. "
        '"(computed)": the sum of the rewrites\' sizes, not written for real (it would write more than '
        f"{args.max_write_gb:g} GB)"
        + (
            f"; where both exist the computed sum and the measurement differ by at most "
            f"{max(abs(m - c) for c, m in checks)} bytes."
            if checks
            else "."
        ),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
