#!/usr/bin/env python3
"""Peak memory and time of ``pqeval score`` on a long pair with the default metrics.

Builds a clean/degraded pair of MINUTES minutes by tiling a real 16 kHz speech recording (the
degraded copy has Gaussian noise, the study's "high" level), runs ``pqeval score`` on it in a
fresh process under ``/usr/bin/time -v`` and writes bench/results/long_pair.md with the peak RSS,
the wall time, the CPU and the scores. Needs installed models (``pqeval models``).

    python bench/long_pair.py --minutes 60 [--work DIR] [-- EXTRA PQEVAL SCORE OPTIONS]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT.parent / "shared" / "audio" / "speech_libri_198_f.wav"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def make_pair(work: Path, minutes: float) -> tuple[Path, Path]:
    x, sr = sf.read(str(SPEECH), dtype="float64")
    n = int(minutes * 60 * sr)
    clean = np.resize(x, n)
    noisy = clean + 0.01 * np.random.default_rng(0).standard_normal(n)
    c, d = work / "clean.wav", work / "degraded.wav"
    sf.write(str(c), clean, sr, subtype="FLOAT")
    sf.write(str(d), noisy / max(1.0, float(np.abs(noisy).max())), sr, subtype="FLOAT")
    return c, d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "long_pair.md")
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="pqeval-long-"))
    work.mkdir(parents=True, exist_ok=True)
    c, d = make_pair(work, args.minutes)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "pqeval", "score", str(c), str(d), "--json", *args.extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)[1]) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", p.stderr)[1]
    scores = {}
    if p.stdout.strip():
        out = json.loads(p.stdout)
        scores = {k: (v["value"], v["reason"]) for k, v in out["metrics"].items()}
    lines = [
        f"# `pqeval score` on a {args.minutes:g}-minute pair (`python bench/long_pair.py --minutes {args.minutes:g}`)",
        "",
        f"CPU: {cpu_name()}, {len(__import__('os').sched_getaffinity(0))} cores. Extra options: "
        f"`{' '.join(args.extra) or 'none (default metrics)'}`. Models: whatever `pqeval models` lists "
        "(seeded weights here: latency and memory do not depend on weight values).",
        "",
        f"- exit code: {p.returncode}",
        f"- peak RSS (`/usr/bin/time -v`, Maximum resident set size): **{rss:.0f} MB**",
        f"- wall clock: {wall}",
        "",
        "| metric | value | reason |",
        "|---|---|---|",
        *[f"| {k} | {v if v is not None else 'NaN'} | {r or ''} |" for k, (v, r) in scores.items()],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if p.returncode in (0, 3) else 1


if __name__ == "__main__":
    sys.exit(main())
