#!/usr/bin/env python3
"""Write golden outputs of the installed resampy's kaiser_best to tests/data/ for the resampler tests.

The test environment can hold only one resampy: the export extra pins 0.2.2 (openl3 0.4.2 needs
<0.3), so the other version's filter is checked against values this script wrote with it:

    python -m venv /tmp/r && /tmp/r/bin/pip install resampy==0.4.3 soundfile && \
        /tmp/r/bin/python scripts/make_resample_golden.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import resampy

CASES = [
    (8000, 16000),
    (11025, 16000),
    (22050, 16000),
    (44100, 16000),
    (48000, 16000),
    (96000, 16000),
    (8000, 48000),
    (16000, 48000),
    (22050, 48000),
    (44100, 48000),
    (96000, 48000),
]


def signal(sr: int) -> np.ndarray:
    """0.1 s of a chirp plus seeded noise at sr Hz (deterministic)."""
    n = sr // 10
    t = np.arange(n) / sr
    return 0.5 * np.sin(2 * np.pi * (100 + 0.4 * sr * t) * t) + 0.1 * np.random.default_rng(sr).standard_normal(n)


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "tests" / "data" / f"resampy_{resampy.__version__}_kaiser_best.npz"
    arrays = {f"{a}_{b}": resampy.resample(signal(a), a, b, filter="kaiser_best") for a, b in CASES}
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
