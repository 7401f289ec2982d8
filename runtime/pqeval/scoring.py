"""Score a (clean, degraded) pair with every metric: audio -> alignment -> embeddings/metrics.

Alignment is explicit: a degraded file at another sample rate is resampled to the clean rate,
and lengths that differ are trimmed to the shorter (``length="trim"``, reported in the notes) or
refused (``length="error"``). Each metric that cannot be computed is NaN with a reason; only
unusable input files raise (AudioError).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .audio import Audio, LazySamples, head
from .embedding import Embedding
from .errors import AudioError, PqevalError, UsageError
from .metrics import MetricResult, failed, pesq_score, stoi_score
from .resample import resampled
from .similarity import embedding_similarity

EMBEDDING_METRICS = ("vggish", "openl3")
CLASSIC_METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi")
ALL_METRICS = EMBEDDING_METRICS + CLASSIC_METRICS
DEFAULT_METRICS = ("vggish", "openl3", "pesq_wb", "stoi", "estoi")
OPENL3_DEFAULT_KEY = "openl3-mel256-music-512"
LENGTH_POLICIES = ("trim", "error")


@dataclass
class ScoreOptions:
    """Settings that change the numbers (and so key any cache)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    length: str = "trim"
    vggish_output: str = "postprocessed"
    vggish_model: str = "vggish"
    openl3_model: str = OPENL3_DEFAULT_KEY
    openl3_hop: float = 0.5
    threads: int | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in ALL_METRICS]
        if unknown:
            raise UsageError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(ALL_METRICS)}")
        if self.length not in LENGTH_POLICIES:
            raise UsageError(f"length policy must be one of {LENGTH_POLICIES}, got {self.length!r}")


@dataclass
class PairScore:
    """All metrics of one pair plus what was done to align it."""

    clean: str
    degraded: str
    sr: int
    seconds: float
    metrics: dict[str, MetricResult]
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [k for k, m in self.metrics.items() if not m.ok]

    def as_dict(self) -> dict:
        return {
            "clean": self.clean,
            "degraded": self.degraded,
            "sample_rate": self.sr,
            "seconds": round(self.seconds, 6),
            "notes": self.notes,
            "metrics": {
                k: {"value": None if not m.ok else m.value, "reason": m.reason, **m.details}
                for k, m in self.metrics.items()
            },
        }


def align(clean: Audio, degraded: Audio, policy: str = "trim") -> tuple[np.ndarray | LazySamples, np.ndarray | LazySamples, int, list[str]]:
    """Bring both signals to the clean rate and one length; return (clean, degraded, sr, notes).

    Signals read on demand (:func:`pqeval.audio.open_audio`) stay lazy: resampling and trimming
    happen as ranges are read.
    """
    notes = []
    sr = clean.sr
    deg = degraded.samples
    if degraded.sr != sr:
        try:
            deg = resampled(deg, degraded.sr, sr)
        except AudioError as e:
            raise AudioError(f"{degraded.path}: {e}") from None
        notes.append(f"degraded resampled from {degraded.sr} Hz to the clean rate {sr} Hz")
    ref = clean.samples
    if len(ref) != len(deg):
        msg = f"lengths differ: clean {len(ref) / sr:.3f} s, degraded {len(deg) / sr:.3f} s"
        if policy == "error":
            raise AudioError(f"{degraded.path}: {msg} (use --length trim to compare the common part)")
        n = min(len(ref), len(deg))
        ref, deg = head(ref, n), head(deg, n)
        notes.append(f"{msg}; both trimmed to {n / sr:.3f} s")
    for a in (clean, degraded):
        if a.channels > 1:
            notes.append(f"{a.path}: {a.channels} channels mixed to mono")
    return ref, deg, sr, notes


class Scorer:
    """Scores pairs with one set of options; models are opened once and reused across pairs.

    ``cache`` (optional, dict-like) memoises embeddings by (model, clip identity, settings), so a
    clean reference shared by many pairs is embedded once.
    """

    def __init__(self, options: ScoreOptions | None = None, cache: dict | None = None) -> None:
        self.options = options or ScoreOptions()
        self.cache = cache
        self._embedders: dict[str, object] = {}

    def embedder(self, name: str):
        """The embedder for "vggish" or "openl3" (raises ModelError if its model is not installed)."""
        if name not in self._embedders:
            from .session import open_model

            o = self.options
            if name == "vggish":
                from .vggish import VGGishEmbedder

                self._embedders[name] = VGGishEmbedder(open_model(o.vggish_model, o.threads), output=o.vggish_output)
            else:
                from .openl3 import OpenL3Embedder

                self._embedders[name] = OpenL3Embedder(open_model(o.openl3_model, o.threads), hop=o.openl3_hop)
        return self._embedders[name]

    def settings_key(self, name: str) -> str:
        o = self.options
        return f"{o.vggish_model}:{o.vggish_output}" if name == "vggish" else f"{o.openl3_model}:hop={o.openl3_hop}"

    def _embed(self, name: str, x: np.ndarray | LazySamples, sr: int, ident: str | None) -> Embedding:
        emb = self.embedder(name)
        if self.cache is None or ident is None:
            return emb.embed(x, sr)
        key = (name, self.settings_key(name), emb.model.sidecar.get("sha256"), ident, len(x), sr)
        if key not in self.cache:
            self.cache[key] = emb.embed(x, sr)
        return self.cache[key]

    def score(self, clean: Audio, degraded: Audio, clean_id: str | None = None) -> PairScore:
        """Score one pair; ``clean_id`` (e.g. a content hash) enables the clean-embedding cache.

        Lazily read signals stay lazy when only embeddings are asked for (read window batch by
        window batch); the classic metrics need whole signals, so with any of them both signals
        are read once, up front, and every metric uses those arrays.
        """
        ref, deg, sr, notes = align(clean, degraded, self.options.length)
        if any(m not in EMBEDDING_METRICS for m in self.options.metrics):
            ref, deg = np.asarray(ref), np.asarray(deg)
        results: dict[str, MetricResult] = {}
        for m in self.options.metrics:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if m in EMBEDDING_METRICS:
                    results[m] = self._similarity(m, ref, deg, sr, clean_id)
                else:
                    results[m] = self._classic(m, ref, deg, sr)
            notes += [f"{m}: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
        return PairScore(clean.path, degraded.path, sr, len(ref) / sr, results, notes)

    def _similarity(self, m: str, ref, deg, sr: int, clean_id: str | None) -> MetricResult:
        try:
            a = self._embed(m, ref, sr, clean_id)
            b = self._embed(m, deg, sr, None)
        except PqevalError as e:
            return failed(m, str(e))
        return embedding_similarity(a, b)

    @staticmethod
    def _classic(m: str, ref: np.ndarray, deg: np.ndarray, sr: int) -> MetricResult:
        if m.startswith("pesq"):
            return pesq_score(ref, deg, sr, m.split("_")[1])
        return stoi_score(ref, deg, sr, extended=(m == "estoi"))
