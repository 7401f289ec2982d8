"""Peak memory of STOI/ESTOI against input length: pystoi itself vs pqeval.metrics.stoi_score.

Each case runs in a fresh interpreter under ``/usr/bin/time -v`` and reports its "Maximum
resident set size". The input is real speech (../shared/audio/pesq_speech.wav and its 0 dB
babble-noise version, 16 kHz) tiled to the length asked for; both signals are float64 and whole,
as pqeval's scorer hands them over, so the figures include them (2 × 16 kHz × 8 B = 15.4 MB per
minute of input). The "load only" row is that baseline: interpreter, imports and the two signals.

    python bench/stoi_memory.py                          # the default cases, writes bench/results/stoi_memory.md
    python bench/stoi_memory.py --cases pystoi:stoi:1 pqeval:estoi:60 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIO = Path(os.environ.get("PQEVAL_TEST_AUDIO", ROOT.parent / "shared" / "audio"))
OUT = ROOT / "bench" / "results" / "stoi_memory.md"
SR = 16000

DEFAULT_CASES = [
    "load:none:1",
    "load:none:60",
    *(f"pystoi:{m}:{n}" for m in ("stoi", "estoi") for n in (1, 5, 10, 20)),
    *(f"pqeval:{m}:{n}" for m in ("stoi", "estoi") for n in (1, 5, 10, 20, 60)),
]


def _signals(minutes: float):
    import numpy as np
    import soundfile as sf

    ref, sr = sf.read(str(AUDIO / "pesq_speech.wav"), dtype="float64")
    deg, _ = sf.read(str(AUDIO / "pesq_speech_bab_0dB.wav"), dtype="float64")
    assert sr == SR
    n = int(minutes * 60 * sr)
    return np.resize(ref, n), np.resize(deg, n)


def worker(impl: str, metric: str, minutes: float) -> None:
    """One case in this process; prints ``value seconds``."""
    sys.path.insert(0, str(ROOT / "runtime"))
    ref, deg = _signals(minutes)
    t0 = time.perf_counter()
    if impl == "load":
        value = float("nan")
    elif impl == "pystoi":
        import numpy as np
        from pystoi import stoi

        np.random.seed(0)
        value = float(stoi(ref, deg, SR, extended=(metric == "estoi")))
    elif impl == "pqeval":
        from pqeval.metrics import stoi_score

        value = stoi_score(ref, deg, SR, extended=(metric == "estoi")).value
    else:
        raise SystemExit(f"unknown implementation {impl!r}")
    print(f"{value!r} {time.perf_counter() - t0:.2f}")


def run_case(case: str) -> dict:
    impl, metric, minutes = case.split(":")
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--worker", impl, metric, minutes]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    row = {"impl": impl, "metric": metric, "minutes": float(minutes), "rc": p.returncode}
    row["rss_mb"] = int(rss.group(1)) / 1024 if rss else float("nan")
    if p.returncode == 0:
        value, seconds = p.stdout.split()[-2:]
        row.update(value=float(value), seconds=float(seconds))
    else:
        row.update(value=float("nan"), seconds=float("nan"), error=p.stderr.strip().splitlines()[:3])
    return row


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(rows: list[dict], argv: list[str]) -> str:
    lines = [
        "# STOI/ESTOI peak memory against input length (`python bench/stoi_memory.py`)",
        "",
        f"CPU: {cpu_name()} ({os.cpu_count()} cores visible), Python {platform.python_version()}. "
        f"Command: `python bench/stoi_memory.py{' ' + ' '.join(argv) if argv else ''}`.",
        "",
        'Each row is a fresh process under `/usr/bin/time -v` (peak RSS = its "Maximum resident set size"). '
        "Input: pesq_speech.wav and its 0 dB babble version (16 kHz) tiled to the length, both float64 and "
        "whole in memory (15.4 MB per minute, counted in every row; `load` is that baseline alone). "
        "`pystoi` calls pystoi 0.4 directly; `pqeval` is `pqeval.metrics.stoi_score` (chunked, equal to "
        "pystoi to 1e-10). Time is the metric call alone (wall clock, BLAS at one thread).",
        "",
        "| implementation | metric | minutes | peak RSS MB | MB per minute above load | seconds | value |",
        "|---|---|---|---|---|---|---|",
    ]
    base = {r["minutes"]: r["rss_mb"] for r in rows if r["impl"] == "load"}
    base0 = min(base.values()) if base else 0.0
    for r in rows:
        if r["impl"] == "load":
            per = ""
        else:
            # the load baseline grows with the signals (15.4 MB/min): subtract the matching one if measured
            b = base.get(r["minutes"], base0 + 15.4 * (r["minutes"] - 1))
            per = f"{(r['rss_mb'] - b) / r['minutes']:.1f}"
        value = "" if r["impl"] == "load" else f"{r['value']:.6f}"
        if r["rc"] != 0:
            value = f"failed (exit {r['rc']}): {' / '.join(r.get('error', []))[:80]}"
        lines.append(
            f"| {r['impl']} | {r['metric']} | {r['minutes']:g} | {r['rss_mb']:.0f} | {per} | "
            f"{r['seconds']:.1f} | {value} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=3, metavar=("IMPL", "METRIC", "MINUTES"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--cases", nargs="+", default=DEFAULT_CASES, help="impl:metric:minutes (impl: load, pystoi, pqeval)"
    )
    ap.add_argument("--no-write", action="store_true", help=f"print only; do not write {OUT.relative_to(ROOT)}")
    args = ap.parse_args()
    if args.worker:
        impl, metric, minutes = args.worker
        worker(impl, metric, float(minutes))
        return
    rows = []
    for case in args.cases:
        row = run_case(case)
        rows.append(row)
        print(
            f"{case:24s} rss {row['rss_mb']:8.0f} MB  {row['seconds']:8.1f} s  value {row['value']!r}",
            flush=True,
        )
    argv = [a for a in sys.argv[1:] if a != "--no-write"]
    text = markdown(rows, argv)
    if not args.no_write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text)
        print(f"wrote {OUT}")
    else:
        print(text)


if __name__ == "__main__":
    main()
