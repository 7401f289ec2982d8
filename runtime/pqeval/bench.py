"""``pqeval bench``: the runtime's own latency and memory on this machine (no original frameworks).

The side-by-side comparison with torchvggish and openl3/TensorFlow lives in ``bench/run.py`` of
a checkout; this is what a user can run anywhere pqeval is installed.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

from .errors import UsageError
from .registry import DEFAULT_ENGINE, DEFAULT_HOP, DEFAULT_PRECISION, OPENL3, gflop_per_unit

MAX_SECONDS = 3600.0  # s of synthetic signal (an hour at 16 kHz is 0.46 GB of float64)
MAX_REPS = 1000


def synthetic_signal(seconds: float, sr: int = 16000) -> np.ndarray:
    """A deterministic vibrato tone plus noise, (seconds * sr,) float64."""
    t = np.arange(int(seconds * sr)) / sr
    return 0.3 * np.sin(2 * np.pi * (220 + 40 * np.sin(t)) * t) + 0.05 * np.random.default_rng(0).standard_normal(
        len(t)
    )


def run_bench(
    models: tuple[str, ...],
    seconds: float = 10.0,
    threads: int | None = None,
    reps: int = 5,
    hop: float = DEFAULT_HOP,
    openl3_model: str = OPENL3.default_key,
    audio: Path | None = None,
    engine: str = DEFAULT_ENGINE,
    precision: str = DEFAULT_PRECISION,
) -> list[dict]:
    """Load each family's model, embed the signal once to warm up, then time ``reps`` runs.

    models: embedding family names (registry); seconds: length of the synthetic 16 kHz signal
    (ignored with ``audio``); engine, precision: as ``ScoreOptions``. Returns one dict per model
    (times in s, memory in MB).
    """
    from .scoring import ScoreOptions, Scorer
    from .session import open_model

    if not 0 < seconds <= MAX_SECONDS or not 1 <= reps <= MAX_REPS:  # also refuses NaN
        raise UsageError(f"--seconds must be in (0, {MAX_SECONDS:g}] and --reps in 1..{MAX_REPS}")
    if audio is not None:
        from .audio import open_audio

        a = open_audio(audio)  # streamed from disk, as `pqeval score` does
        x, sr = a.samples, a.sr
    else:
        sr = 16000
        x = synthetic_signal(seconds, sr)
    rows = []
    options = ScoreOptions(
        metrics=tuple(models),
        openl3_model=openl3_model,
        openl3_hop=hop,
        engine=engine,
        precision=precision,
        threads=threads,
    )
    scorer = Scorer(options)
    for name in models:
        key = options.model_key(name)
        m = open_model(key, threads, engine, precision)
        t0 = time.perf_counter()
        m.session  # noqa: B018 - integrity check + session creation is the load cost
        load_s = time.perf_counter() - t0
        emb = scorer.embedder(name)
        units = len(emb.embed(x, sr).frames)  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            emb.embed(x, sr)
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        gflop = gflop_per_unit(key)
        rows.append(
            {
                "model": key,
                "weights": m.weights,
                "engine": engine,
                "precision": precision,
                "threads": m.threads,
                "audio_s": round(len(x) / sr, 3),
                "hop_s": hop if name == OPENL3.name else None,
                "units": units,
                "load_s": round(load_s, 4),
                "median_s": round(med, 4),
                "min_s": round(min(times), 4),
                "max_s": round(max(times), 4),
                "reps": reps,
                "per_10s_audio_s": round(med * 10 * sr / len(x), 4),
                "per_unit_ms": round(1e3 * med / max(units, 1), 2),
                "gflops_end_to_end": round(gflop * units / med, 1) if gflop else None,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    return rows
