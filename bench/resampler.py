#!/usr/bin/env python3
"""pqeval's resampler against scipy's resample_poly running the same polyphase filter.

Both compute resampy's kaiser_best (0.2) filter; pqeval runs it as banded float64 GEMMs in fixed
chunks (pqeval/resample.py), scipy as its scalar upfirdn loop. 10 s of noise per rate pair, best
of 7 runs, numpy's BLAS at one thread (as pqeval's embedders run it). Writes
bench/results/resampler.md.

    python bench/resampler.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))

from pqeval.resample import DEFAULT_FILTER, output_length, polyphase_filter, resample, time_register  # noqa: E402
from pqeval.threads import blas_single_thread  # noqa: E402

PAIRS = [(44100, 16000), (22050, 16000), (48000, 16000), (8000, 16000), (16000, 48000), (44100, 48000)]
REPS = 7


def best(f) -> float:
    f()
    times = []
    for _ in range(REPS):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from scipy.signal import resample_poly

    rows = [
        (
            "| rate pair | pqeval ms per 10 s | resample_poly ms per 10 s | speed-up | "
            "max abs difference (flip-free outputs) |"
        ),
        "|---|---|---|---|---|",
    ]
    with blas_single_thread():
        for sr_in, sr_out in PAIRS:
            x = np.random.default_rng(0).standard_normal(10 * sr_in)
            up, down, taps = polyphase_filter(sr_in, sr_out)
            n = output_length(len(x), sr_in, sr_out)
            ours = best(lambda x=x, sr_in=sr_in, sr_out=sr_out: resample(x, sr_in, sr_out))
            scipy_t = best(lambda x=x, up=up, down=down, taps=taps: resample_poly(x, up, down, window=taps / up))
            diff = np.abs(resample(x, sr_in, sr_out) - resample_poly(x, up, down, window=taps / up)[:n])
            # outputs whose float time register fell below an integer are recomputed as resampy does
            flipped = time_register(0, n, sr_in, sr_out, DEFAULT_FILTER).astype(np.int64) != (np.arange(n) * down) // up
            rows.append(
                f"| {sr_in / 1000:g} → {sr_out / 1000:g} kHz | {1e3 * ours:.1f} | {1e3 * scipy_t:.1f} | "
                f"{scipy_t / ours:.1f}× | {diff[~flipped].max():.1e} |"
            )
    text = "\n".join(
        [
            "# Resampler speed (`python bench/resampler.py`)",
            "",
            __doc__.split("\n\n")[1].replace("\n", " "),
            "",
            *rows,
            "",
        ]
    )
    out = ROOT / "bench" / "results" / "resampler.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
