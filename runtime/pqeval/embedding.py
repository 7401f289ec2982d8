"""What every embedder returns: per-frame embeddings of one clip, with provenance and notes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .provenance import Provenance


@dataclass
class Embedding:
    """Per-frame embeddings of one clip.

    frames: [N, D] float32; times: [N] frame start in seconds; model: model key (e.g. "vggish");
    weights: provenance string from the model file ("pretrained:<file> <sha256>" or "seeded:<seed>");
    notes: what the embedder did that the user should know (e.g. a short clip zero-padded).
    """

    frames: np.ndarray
    times: np.ndarray
    model: str
    weights: str
    notes: tuple[str, ...] = ()

    @property
    def provenance(self) -> Provenance:
        return Provenance.parse(self.weights)
