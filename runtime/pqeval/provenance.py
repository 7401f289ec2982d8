"""Where a model's weights came from, parsed once: pretrained, seeded, custom or unknown.

Every exported model records its weight source in the ONNX metadata key ``pqeval.weights`` (and
in its sidecar): ``pretrained:<files> <sha256>`` for the published weights, ``seeded:<seed>`` for
random weights made for tests, ``custom:<description>`` for anything else. Only pretrained
weights give perceptual measurements; every other kind is labelled wherever a score appears.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS: tuple[str, ...] = ("pretrained", "seeded", "custom", "unknown")
SEEDED_NOTE = "weights: seeded — not a perceptual measurement"
CUSTOM_NOTE = "weights: custom, not the published model — not a validated perceptual measurement"
UNKNOWN_NOTE = "weights: provenance not recorded — not verified as a perceptual measurement"
_NOTES = {"pretrained": "", "seeded": SEEDED_NOTE, "custom": CUSTOM_NOTE, "unknown": UNKNOWN_NOTE}
#: Short caveats for figure labels and table cells.
_CAVEATS = {
    "pretrained": "",
    "seeded": "seeded weights — not perceptual",
    "custom": "custom weights — not validated",
    "unknown": "weights provenance not recorded — not verified as perceptual",
}


@dataclass(frozen=True)
class Provenance:
    """A parsed ``pqeval.weights`` string.

    ``kind`` is one of :data:`KINDS`; ``detail`` is the text after ``<kind>:`` (files and sha256,
    the seed, a description); ``raw`` the string as recorded.
    """

    kind: str
    detail: str
    raw: str

    @classmethod
    def parse(cls, weights: str | None) -> Provenance:
        raw = (weights or "").strip()
        kind, sep, detail = raw.partition(":")
        if not sep or kind not in KINDS[:3]:
            return cls("unknown", raw, raw)
        return cls(kind, detail.strip(), raw)

    @property
    def perceptual(self) -> bool:
        """True only for the published (pretrained) weights."""
        return self.kind == "pretrained"

    @property
    def note(self) -> str:
        """The warning to show beside scores from these weights ('' for the published ones)."""
        return _NOTES[self.kind]

    @property
    def caveat(self) -> str:
        """A short form of :attr:`note` for figure labels ('' for the published ones)."""
        return _CAVEATS[self.kind]

    def __str__(self) -> str:
        return self.raw
