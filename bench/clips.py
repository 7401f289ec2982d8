"""Benchmark input: real recordings from ../shared/audio, joined and tiled to any length (16 kHz mono).

The clips are made on the fly from the shared recordings (never copied into the repository):
every 16 kHz ``.wav`` in sorted order, joined end to end, repeated until ``seconds`` are filled.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
DEFAULT_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
NOISE_SNR_DB = 10.0  # the degraded clip for `pqeval score`: white noise at this SNR


def audio_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("PQEVAL_BENCH_AUDIO") or DEFAULT_AUDIO)


@lru_cache(maxsize=2)
def _joined(directory: str) -> np.ndarray:
    import soundfile as sf

    parts = []
    for p in sorted(Path(directory).glob("*.wav")):
        x, sr = sf.read(str(p), dtype="float64", always_2d=True)
        if sr == SAMPLE_RATE:
            parts.append(x.mean(axis=1))
    if not parts:
        raise FileNotFoundError(f"{directory}: no 16 kHz .wav recordings for the benchmark clips")
    return np.concatenate(parts)


def bench_clip(seconds: float, directory: str | os.PathLike | None = None) -> np.ndarray:
    """``seconds`` of real audio at 16 kHz, float64 mono (a fresh array)."""
    src = _joined(str(audio_dir(directory)))
    n = int(round(seconds * SAMPLE_RATE))
    reps = -(-n // len(src))
    return np.tile(src, reps)[:n].copy()


def degraded_clip(seconds: float, directory: str | os.PathLike | None = None, seed: int = 0) -> np.ndarray:
    """The bench clip plus white noise at NOISE_SNR_DB, peak-limited to 1."""
    x = bench_clip(seconds, directory)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(x)) * np.sqrt(np.mean(x**2) / 10 ** (NOISE_SNR_DB / 10))
    y = x + noise
    return y / max(1.0, float(np.abs(y).max()))


def clip_path(work: Path, name: str, seconds: float) -> Path:
    return Path(work) / "clips" / f"{name}-{seconds:g}s.wav"
