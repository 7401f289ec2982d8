"""Score a (clean, degraded) pair with every metric: audio -> alignment -> embeddings/metrics.

Alignment is explicit: a degraded file at another sample rate is resampled to the clean rate,
a constant delay between the two is measured and reported (or compensated, ``align="delay"``),
and lengths that differ are trimmed to the shorter (``length="trim"``, reported in the notes) or
refused (``length="error"``). Each metric that cannot be computed for this pair is NaN with a
reason; unusable input files raise AudioError, and an unusable model ModelError (no number could
ever come from it).
"""

from __future__ import annotations

import importlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from . import inference
from .audio import Audio, LazySamples, head
from .content import content_of
from .delay import DelayEstimate, compensate, delay_note, estimate_delay
from .embedding import Embedding
from .errors import AudioError, UsageError
from .metrics import MetricResult, failed, pesq_score, stoi_score
from .registry import (
    ALL_METRICS,
    DEFAULT_ENGINE,
    DEFAULT_HOP,
    DEFAULT_METRICS,
    DEFAULT_PRECISION,
    EMBEDDING_METRICS,
    FAMILIES,
    OPENL3,
    SPEECH_METRICS,
    VGGISH,
    VGGISH_OUTPUTS,
    VGGISH_RESAMPLERS,
    base_spec,
    check_names,
)
from .resample import resampled
from .session import check_threads
from .similarity import embedding_similarity
from .threads import blas_single_thread

LENGTH_POLICIES = ("trim", "error")
ALIGN_MODES = ("report", "delay")
MIN_HOP = 1.0 / OPENL3.sample_rate  # s: one sample at the model's rate
MAX_HOP = 3600.0  # s: beyond an hour every clip is one window anyway


def _family(name: str, arg: str | None = None) -> dict[str, Any]:
    """Field metadata: the option belongs to embedding family ``name``; ``arg`` is the embedder's
    keyword it feeds (None: the model key)."""
    return {"family": name, "arg": arg}


_RUN_ONLY = {"changes_numbers": False}
_ALL_FAMILIES = {"family": "*"}  # changes every embedding family's frames (engine, precision)


@dataclass(frozen=True, kw_only=True)
class ScoreOptions:
    """Everything that decides the numbers of a score, frozen; build it from keywords.

    metrics: from :data:`pqeval.registry.ALL_METRICS`; length: "trim" (compare the common part,
    reported) or "error" when the two files differ in length; align: "report" (a delay between
    the files is reported in the notes) or "delay" (a reliable delay is compensated first);
    ``<family>_model``: the model key scored for that embedding family; the other
    ``<family>_<arg>`` fields are the embedder's keyword arguments (VGGish ``output`` and
    ``resampler``, OpenL3 ``hop`` in seconds); ``engine`` ("ort", the parity reference, or
    "openvino") and ``precision`` ("fp32"; "bf16"; "int8": each family's int8 compact variant of
    its model) run every embedding model (:mod:`pqeval.inference`: refused where this machine
    cannot run them natively). ``threads`` does not change numbers: :meth:`key` leaves it out.
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
    length: str = "trim"
    align: str = "report"
    vggish_model: str = field(default=VGGISH.default_key, metadata=_family("vggish"))
    vggish_output: str = field(default="postprocessed", metadata=_family("vggish", "output"))
    vggish_resampler: str = field(default=VGGISH_RESAMPLERS[0], metadata=_family("vggish", "resampler"))
    openl3_model: str = field(default=OPENL3.default_key, metadata=_family("openl3"))
    openl3_hop: float = field(default=DEFAULT_HOP, metadata=_family("openl3", "hop"))
    engine: str = field(default=DEFAULT_ENGINE, metadata=_ALL_FAMILIES)
    precision: str = field(default=DEFAULT_PRECISION, metadata=_ALL_FAMILIES)
    threads: int | None = field(default=None, metadata=_RUN_ONLY)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        check_names(self.metrics, ALL_METRICS, "metric")
        if not self.metrics:
            raise UsageError("no metric chosen")
        if self.align not in ALIGN_MODES:
            raise UsageError(f"align must be one of {', '.join(ALIGN_MODES)}, got {self.align!r}")
        if self.length not in LENGTH_POLICIES:
            raise UsageError(f"length policy must be one of {', '.join(LENGTH_POLICIES)}, got {self.length!r}")
        if self.vggish_output not in VGGISH_OUTPUTS:
            raise UsageError(f"VGGish output must be one of {', '.join(VGGISH_OUTPUTS)}, got {self.vggish_output!r}")
        if self.vggish_resampler not in VGGISH_RESAMPLERS:
            raise UsageError(f"resampler must be one of {', '.join(VGGISH_RESAMPLERS)}, got {self.vggish_resampler!r}")
        if not MIN_HOP <= self.openl3_hop <= MAX_HOP:  # also refuses NaN
            raise UsageError(f"the OpenL3 hop must be {MIN_HOP:.3g}..{MAX_HOP:g} s, got {self.openl3_hop}")
        if self.threads is not None:
            check_threads(self.threads, "threads")
        for name in EMBEDDING_METRICS:
            chosen = str(getattr(self, f"{name}_model"))
            spec = base_spec(chosen)
            if spec is not None and spec.family != name:
                raise UsageError(f"{chosen} is a model of the {spec.family} family, not {name}")
            if self.precision == "int8" and spec is not None and spec.key != chosen:
                raise UsageError(
                    f"--precision int8 scores {name} with the int8 variant of its model; {chosen} is already a "
                    f"compact variant: give {spec.key} (or use {chosen} with --precision fp32)"
                )
        if any(m in EMBEDDING_METRICS for m in self.metrics):
            inference.check(self.engine, self.precision)

    def key(self) -> str:
        """Every field that changes the numbers as one string: the resume key of batch rows."""
        parts = []
        for f in fields(self):
            if f.metadata.get("changes_numbers", True):
                v = getattr(self, f.name)
                parts.append(f"{f.name}={','.join(v) if isinstance(v, tuple) else v}")
        return ";".join(parts)

    def family_key(self, name: str) -> str:
        """The fields that change embedding family ``name``'s frames (its cache key)."""
        return ";".join(
            f"{f.name}={getattr(self, f.name)}" for f in fields(self) if f.metadata.get("family") in (name, "*")
        )

    def model_key(self, name: str) -> str:
        """The model file key scored for embedding family ``name``: ``<name>_model``, or with
        precision int8 its int8 compact variant (``vggish-int8fc``, ``openl3-…-int8qdq``)."""
        key = str(getattr(self, f"{name}_model"))
        if self.precision == "int8":
            key = f"{key}-{FAMILIES[name].int8_kind}"
        return key

    def embedder_args(self, name: str) -> dict[str, Any]:
        """Keyword arguments of family ``name``'s embedder (e.g. ``{"hop": 0.5}``)."""
        return {
            f.metadata["arg"]: getattr(self, f.name)
            for f in fields(self)
            if f.metadata.get("family") == name and f.metadata.get("arg")
        }


@dataclass
class PairScore:
    """All metrics of one pair plus what was done to align it."""

    clean: str
    degraded: str
    sr: int
    seconds: float
    metrics: dict[str, MetricResult]
    notes: list[str] = field(default_factory=list)
    settings: str = ""  # ScoreOptions.key(): everything that decided the numbers
    delay: DelayEstimate | None = None  # found between the pair (compensated only with align="delay")
    engine: str = DEFAULT_ENGINE  # what ran the embedding models (pqeval.inference)
    precision: str = DEFAULT_PRECISION

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
            "engine": self.engine,
            "precision": self.precision,
            "settings": self.settings,
            "delay": self.delay.as_dict() if self.delay else None,
            "metrics": {
                k: {"value": None if not m.ok else m.value, "reason": m.reason, **m.details}
                for k, m in self.metrics.items()
            },
        }


@dataclass(frozen=True)
class Aligned:
    """A pair brought to one rate and length: ``clean``/``degraded`` signals (arrays or lazy),
    ``sr`` in Hz, the ``delay`` found between them, and what was done (``notes``)."""

    clean: np.ndarray | LazySamples
    degraded: np.ndarray | LazySamples
    sr: int
    delay: DelayEstimate
    notes: list[str]


def align(clean: Audio, degraded: Audio, policy: str = "trim", mode: str = "report") -> Aligned:
    """Bring both signals to the clean rate, estimate the delay between them, and bring them to
    one length.

    policy: "trim" (to the shorter, reported) or "error" when lengths differ; mode: "report"
    (the delay goes into the notes only) or "delay" (a reliable delay is compensated first, and
    the length policy applies to what remains). Signals read on demand
    (:func:`pqeval.audio.open_audio`) stay lazy: resampling, shifting and trimming happen as
    ranges are read, and the delay search reads bounded excerpts.
    """
    notes = [f"{a.path}: {n}" for a in (clean, degraded) for n in a.notes]
    sr = clean.sr
    deg = degraded.samples
    if degraded.sr != sr:
        try:
            deg = resampled(deg, degraded.sr, sr)
        except AudioError as e:
            raise AudioError(f"{degraded.path}: {e}") from None
        notes.append(f"degraded resampled from {degraded.sr} Hz to the clean rate {sr} Hz")
    ref = clean.samples
    est = estimate_delay(ref, deg, sr)
    if mode == "delay" and est.reliable and est.samples:
        try:
            ref, deg = compensate(ref, deg, est.samples)
        except AudioError as e:
            raise AudioError(f"{degraded.path}: {e}") from None
        who = "lagged" if est.samples > 0 else "led"
        notes.append(
            f"delay: the degraded {who} the clean by {abs(est.seconds) * 1000:.1f} ms; compensated (--align delay)"
        )
    elif (note := delay_note(est, sr)) is not None:
        notes.append(note)
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
    return Aligned(ref, deg, sr, est, notes)


class Scorer:
    """Scores pairs with one set of options; models are opened once and reused across pairs.

    ``cache`` (optional, dict-like) memoises embeddings by (model, clip identity, settings), so a
    clean reference shared by many pairs is embedded once.
    """

    def __init__(self, options: ScoreOptions | None = None, cache: MutableMapping | None = None) -> None:
        self.options = options or ScoreOptions()
        self.cache = cache
        self._embedders: dict[str, Any] = {}
        self._checked = False

    def embedder(self, name: str) -> Any:
        """The embedder of family ``name`` (raises ModelError if its model is not installed)."""
        if name not in self._embedders:
            from .session import open_model

            o = self.options
            module, cls = FAMILIES[name].embedder.split(":")
            factory = getattr(importlib.import_module(module), cls)
            model = open_model(o.model_key(name), o.threads, o.engine, o.precision)
            self._embedders[name] = factory(model, **o.embedder_args(name))
        return self._embedders[name]

    def check_models(self) -> None:
        """Raise ModelError now if a model the options ask for is missing or unusable: no number
        could ever come from it, so it is an error (exit 2), not a NaN. Checked once per Scorer."""
        if self._checked:
            return
        for name in self.options.metrics:
            if name in EMBEDDING_METRICS:
                self.embedder(name).model.check(name)
        self._checked = True

    def _embed(self, name: str, x: np.ndarray | LazySamples, sr: int, ident: str | None) -> Embedding:
        emb = self.embedder(name)
        if self.cache is None or ident is None:
            return emb.embed(x, sr)
        key = (name, self.options.family_key(name), emb.model.sidecar.get("sha256"), ident, len(x), sr)
        if key not in self.cache:
            self.cache[key] = emb.embed(x, sr)
        return self.cache[key]

    def score(self, clean: Audio, degraded: Audio, clean_id: str | None = None) -> PairScore:
        """Score one pair; ``clean_id`` (e.g. a content hash) enables the clean-embedding cache.

        Lazily read signals stay lazy when only embeddings are asked for (read window batch by
        window batch); the classic metrics need whole signals, so with any of them both signals
        are read once, up front, and every metric uses those arrays.
        """
        self.check_models()
        al = align(clean, degraded, self.options.length, self.options.align)
        ref, deg, sr, notes = al.clean, al.degraded, al.sr, al.notes
        whole: tuple[np.ndarray, np.ndarray] | None = None
        if any(m not in EMBEDDING_METRICS for m in self.options.metrics):
            whole = np.asarray(ref), np.asarray(deg)
            ref, deg = whole
        results: dict[str, MetricResult] = {}
        with blas_single_thread():  # also makes STOI's last bit the same in every process (threads.py)
            for m in self.options.metrics:
                if m in EMBEDDING_METRICS:
                    results[m], emb_notes = self._similarity(m, ref, deg, sr, clean_id)
                    notes += [f"{m}: {n}" for n in emb_notes]
                else:
                    assert whole is not None  # read above: classic metrics need whole signals
                    results[m] = self._classic(m, *whole, sr)
        speech = [m for m in self.options.metrics if m in SPEECH_METRICS and results[m].ok]
        if speech and content_of(Path(clean.path).stem) == "music":
            notes.append(f"{', '.join(speech)}: speech measures, computed here on content named as music")
        o = self.options
        return PairScore(
            clean.path, degraded.path, sr, len(ref) / sr, results, notes, o.key(), al.delay, o.engine, o.precision
        )

    def _similarity(self, m: str, ref, deg, sr: int, clean_id: str | None) -> tuple[MetricResult, list[str]]:
        try:
            a = self._embed(m, ref, sr, clean_id)
            b = self._embed(m, deg, sr, None)
        except AudioError as e:  # this clip cannot be embedded (e.g. too short): NaN with the reason
            return failed(m, str(e)), []
        return embedding_similarity(a, b), list(dict.fromkeys(a.notes + b.notes))

    @staticmethod
    def _classic(m: str, ref: np.ndarray, deg: np.ndarray, sr: int) -> MetricResult:
        if m.startswith("pesq"):
            return pesq_score(ref, deg, sr, m.split("_")[1])
        return stoi_score(ref, deg, sr, extended=(m == "estoi"))
