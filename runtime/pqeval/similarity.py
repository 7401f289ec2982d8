"""Cosine similarity of two clips' embeddings, frame by aligned frame."""

from __future__ import annotations

import numpy as np

from .embedding import Embedding
from .metrics import MetricResult, failed


def cosine_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of [N, D] arrays (float64). Two zero rows count as 1, one zero row as 0.

    Equal rows (element by element, nonzero and finite) score exactly 1: the rounding of
    ``dot / (norm * norm)`` would otherwise leave them at 1 - 1e-16.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    cos = np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0, cos))
    equal = (a == b).all(axis=1) & (na > 0) & np.isfinite(na)
    cos = np.where(equal, 1.0, cos)
    return np.clip(cos, -1.0, 1.0)


def embedding_similarity(clean: Embedding, degraded: Embedding) -> MetricResult:
    """Mean cosine over the frames both clips have; details hold min, per-frame values and times."""
    n = min(len(clean.frames), len(degraded.frames))
    prov = clean.provenance
    details: dict = {"weights": clean.weights, "perceptual": prov.perceptual}
    if prov.note:
        details["note"] = prov.note
    if n == 0:
        r = failed(clean.model, "no embedding frames")
        r.details = details
        return r
    cos = cosine_per_frame(clean.frames[:n], degraded.frames[:n])
    details.update(
        min=float(cos.min()),
        frames=[float(c) for c in cos],
        times=[round(float(t), 6) for t in clean.times[:n]],
    )
    if len(clean.frames) != len(degraded.frames):
        details["frame_counts"] = [len(clean.frames), len(degraded.frames)]
    return MetricResult(clean.model, float(cos.mean()), details=details)
