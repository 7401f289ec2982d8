"""What every embedding model returns, and the interface the scorer relies on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

SEEDED_NOTE = "weights: seeded — not a perceptual measurement"
CUSTOM_NOTE = "weights: custom, not the published model — not a validated perceptual measurement"


def weights_note(weights: str) -> str:
    """The warning to show beside scores from these weights ('' for the published ones)."""
    if weights.startswith("pretrained:"):
        return ""
    return CUSTOM_NOTE if weights.startswith("custom:") else SEEDED_NOTE


@dataclass
class Embedding:
    """Per-frame embeddings of one clip.

    frames: [N, D] float32; times: [N] frame start in seconds; model: model key (e.g. "vggish");
    weights: provenance string from the model file ("pretrained:<file> <sha256>" or "seeded:<seed>").
    """

    frames: np.ndarray
    times: np.ndarray
    model: str
    weights: str

    @property
    def seeded(self) -> bool:
        return is_seeded(self.weights)


def is_seeded(weights: str) -> bool:
    """True unless the provenance string says the weights are the upstream pretrained ones.

    ("seeded" here means "not a perceptual measurement": custom weights are flagged too.)"""
    return not weights.startswith("pretrained:")


class Embedder(Protocol):
    """Turns a mono float64 signal at ``sr`` Hz into an Embedding."""

    name: str

    def embed(self, audio: np.ndarray, sr: int) -> Embedding: ...
