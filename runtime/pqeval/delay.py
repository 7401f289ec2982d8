"""Constant delay between a clean and a degraded recording: estimate it, and compensate it.

A degraded recording that lags its reference by a constant delay scores as if badly degraded
(STOI 1.00 -> 0.10 for 100 ms), because STOI/ESTOI, the embeddings' frames and part of PESQ
compare the two frame by frame. :func:`estimate_delay` finds the delay, :func:`compensate` removes it.

Method (generalised cross-correlation without weighting, i.e. the plain normalised
cross-correlation of Knapp & Carter 1976, "The generalized correlation method for estimation of
time delay", IEEE Trans. ASSP 24(4); computed with FFTs):

1. Excerpts. A signal of at most ``WHOLE_SECONDS`` is used whole. From a longer one,
   ``PROBES`` excerpts of ``EXCERPT_SECONDS`` spread evenly over the reference are read, and the
   ``EXCERPTS`` with the most energy are kept; for each, the degraded signal is read over the
   same span widened by the largest lag on both sides. Nothing else is read, so the work and
   memory are bounded whatever the length (about ``PROBES·EXCERPT + EXCERPTS·(EXCERPT + 2·max)``
   seconds of samples).
2. Coarse lag: both excerpts are decimated by an integer ``q`` to about ``COARSE_RATE`` Hz
   (``scipy.signal.resample_poly``, a zero-phase FIR anti-alias filter) and cross-correlated
   by FFT over lags ``-max..max``; the cross-correlations of the excerpts are summed.
3. Fine lag: at the full rate, the normalised cross-correlation is evaluated directly at every
   lag within ``q + FINE_MARGIN`` samples of ``q·coarse``; its maximum is the estimate.

Sign: ``deg[t] = ref[t - samples]``, i.e. a positive delay means the degraded signal lags (starts
later than) the reference. Samples outside a signal count as zeros (a delayed copy is a copy
zero-padded at the start).

How accurate it is on the project's recordings and degradations: ``bench/results/delay_accuracy.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft

from .audio import LazySamples
from .errors import AudioError
from .threads import blas_single_thread

__all__ = [
    "COARSE_RATE",
    "EXCERPTS",
    "EXCERPT_SECONDS",
    "NOTE_MIN_SECONDS",
    "RELIABLE_CONFIDENCE",
    "DelayEstimate",
    "compensate",
    "delay_note",
    "estimate_delay",
]

#: Length of one excerpt of a long signal, seconds. Four seconds hold a few words of speech or a
#: few bars of music, enough for a single sharp peak; see the module docstring, step 1.
EXCERPT_SECONDS = 4.0
#: Signals up to this long (seconds, the reference) are correlated whole rather than by excerpts.
WHOLE_SECONDS = 16.0
#: Evenly spaced candidate excerpts of the reference read from a long signal (their energy decides).
PROBES = 8
#: Excerpts kept (most energy first) and correlated against the degraded signal.
EXCERPTS = 3
#: Target rate of the coarse search, Hz: the decimation factor is ``max(1, sr // COARSE_RATE)``, so
#: the coarse search keeps everything below 8 kHz (8–16 kHz input is searched at its own rate).
COARSE_RATE = 16000
#: Extra full-rate lags searched on each side of the coarse peak, samples (the coarse peak of a
#: decimated signal is within ±q samples of the full-rate one; the margin absorbs filter effects).
FINE_MARGIN = 4
#: Normalised cross-correlation at or above which an estimate is called reliable. Between unrelated
#: recordings of 3–10 s it stayed at or below 0.12 (2.5x margin); delayed copies with noise at
#: 10 dB SNR or any study noise / bitdepth level measured 0.67 or more. Below it: only ``bitrate``
#: cases that remove almost all of the reference's energy (a robin call, 99.99 % above 2 kHz;
#: the DC-dominated humpback recording at 8 kHz) -- there the peak was still right but is not
#: trusted. Numbers: bench/results/delay_accuracy.md.
RELIABLE_CONFIDENCE = 0.3
#: Below this RMS (full scale = 1; about -140 dBFS, under the 24-bit step) a signal counts as silent.
SILENCE_RMS = 1e-7
#: A reliable delay at least this long (seconds) is reported in a pair's notes.
NOTE_MIN_SECONDS = 0.001


class Signal(Protocol):
    """What the estimator reads: ``len(x)`` samples, and ``x[lo:hi]`` -> float64 (hi - lo,)."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: slice) -> Any: ...


@dataclass(frozen=True)
class DelayEstimate:
    """A constant delay of the degraded signal relative to the reference.

    ``samples``: delay in samples at the rate given to :func:`estimate_delay` (positive: the
    degraded signal lags the reference; ``deg[t] ≈ ref[t - samples]``). ``seconds``: the same in
    seconds. ``confidence``: normalised cross-correlation of the two at that lag, 0..1 (1: the
    degraded signal is a scaled, shifted copy; 0: silence or nothing in common). ``reliable``:
    ``confidence >= RELIABLE_CONFIDENCE``; an unreliable estimate should not be compensated.
    """

    samples: int
    seconds: float
    confidence: float
    reliable: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: samples (int), seconds and confidence (floats, 6 decimals), reliable (bool)."""
        return {
            "samples": self.samples,
            "seconds": round(self.seconds, 6),
            "confidence": round(self.confidence, 6),
            "reliable": self.reliable,
        }


def _unreliable() -> DelayEstimate:
    return DelayEstimate(0, 0.0, 0.0, False)


def _read(x: Signal, lo: int, hi: int) -> np.ndarray:
    """Samples [lo, hi) of ``x`` less their mean, float64 (hi - lo,); zeros where the range is outside ``x``."""
    out = np.zeros(max(0, hi - lo))
    a, b = max(lo, 0), min(hi, len(x))
    if b > a:
        part = np.asarray(x[a:b], dtype=np.float64)
        out[a - lo : b - lo] = part - part.mean()
    return out


def _excerpts(ref: Signal, sr: int) -> list[tuple[int, np.ndarray]]:
    """(start, samples) of the reference to correlate: all of it, or its loudest excerpts."""
    n = len(ref)
    if n <= WHOLE_SECONDS * sr:
        return [(0, _read(ref, 0, n))]
    w = int(round(EXCERPT_SECONDS * sr))
    probes = [(int(s), _read(ref, int(s), int(s) + w)) for s in np.linspace(0, n - w, PROBES).round()]
    keep = sorted(np.argsort([float(np.dot(p, p)) for _, p in probes])[::-1][:EXCERPTS])
    return [probes[i] for i in keep]


def _xcorr(r: np.ndarray, d: np.ndarray, max_lag: int) -> np.ndarray:
    """c[L + max_lag] = Σ_t r[t]·d[t + L + max_lag] for L in -max_lag..max_lag; d has len(r) + 2·max_lag."""
    nfft = next_fast_len(len(d), real=True)  # circular, but lags 0..2·max_lag never wrap: t + lag < len(d)
    c = irfft(rfft(d, nfft) * np.conj(rfft(r, nfft)), nfft)
    return c[: 2 * max_lag + 1]


def _window_energy(d: np.ndarray, w: int, lags: np.ndarray) -> np.ndarray:
    """Σ d[j : j + w]² for each start j in ``lags`` (float64, same shape)."""
    cs = np.concatenate([[0.0], np.cumsum(np.square(d))])
    return cs[lags + w] - cs[lags]


def estimate_delay(ref: Signal, deg: Signal, sr: int, max_seconds: float = 1.0) -> DelayEstimate:
    """Estimate the constant delay of ``deg`` relative to ``ref``, both mono at ``sr`` Hz.

    ``ref``, ``deg``: float64 arrays (n,) or anything with ``len()`` and ``[lo:hi]`` slicing that
    returns float64 arrays (e.g. :class:`pqeval.audio.LazySamples`); lengths may differ. Only
    bounded excerpts are read (module docstring). ``sr``: any positive rate (8–96 kHz tested).
    ``max_seconds``: largest delay searched, either sign, seconds.

    Returns a :class:`DelayEstimate`; silence in either signal gives delay 0, confidence 0,
    unreliable. The delay is whole samples, exact for a shifted copy and within about 1 ms after
    the study's degradations or noise at 10 dB SNR.
    """
    if sr <= 0 or max_seconds < 0:
        raise ValueError(f"need sr > 0 and max_seconds >= 0, got sr={sr}, max_seconds={max_seconds}")
    if len(ref) == 0 or len(deg) == 0:
        return _unreliable()
    max_lag = int(round(max_seconds * sr))
    q = max(1, sr // COARSE_RATE)
    rs, ds = [], []
    for lo, r in _excerpts(ref, sr):
        rs.append(r)
        ds.append(_read(deg, lo - max_lag, lo + len(r) + max_lag))
    e_ref = sum(float(np.dot(r, r)) for r in rs)
    e_deg = sum(float(np.dot(d, d)) for d in ds)
    n_ref = sum(len(r) for r in rs)
    floor = SILENCE_RMS**2
    if e_ref <= floor * n_ref or e_deg <= floor * sum(len(d) for d in ds):
        return _unreliable()

    # coarse: decimated by q, lags -cmax..cmax (units of q samples)
    cmax = max_lag // q
    csum = np.zeros(2 * cmax + 1)
    for r, d in zip(rs, ds, strict=True):
        if q == 1:
            rc, dc = r, d
        else:
            from scipy.signal import resample_poly  # imported here: ~0.6 s, needed only above 32 kHz

            rc = resample_poly(r, 1, q)
            dc = resample_poly(d[max_lag - cmax * q :], 1, q)
        dc = _fit(dc, len(rc) + 2 * cmax)
        csum += _xcorr(rc, dc, cmax)
    coarse = (int(np.argmax(csum)) - cmax) * q

    # fine: full rate, normalised, around q * coarse
    reach = 0 if q == 1 else q + FINE_MARGIN
    lags = np.arange(max(-max_lag, coarse - reach), min(max_lag, coarse + reach) + 1)
    num = np.zeros(len(lags))
    den_deg = np.zeros(len(lags))
    with blas_single_thread():  # a few long dot products: BLAS threads only add overhead (threads.py)
        for r, d in zip(rs, ds, strict=True):
            starts = lags + max_lag
            num += np.array([np.dot(r, d[j : j + len(r)]) for j in starts])
            den_deg += _window_energy(d, len(r), starts)
    rho = num / np.sqrt(e_ref * np.maximum(den_deg, floor * n_ref))
    best = int(np.argmax(rho))
    samples = int(lags[best])
    confidence = float(np.clip(rho[best], 0.0, 1.0))
    return DelayEstimate(samples, samples / sr, confidence, confidence >= RELIABLE_CONFIDENCE)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded at the end to ``n`` samples."""
    return x[:n] if len(x) >= n else np.concatenate([x, np.zeros(n - len(x))])


def _offset_view(x: Signal, offset: int, n: int) -> np.ndarray | LazySamples:
    """Samples [offset, offset + n) of ``x``: a slice of an array, or a LazySamples read on demand."""
    if isinstance(x, np.ndarray):
        return x[offset : offset + n]

    def read(lo: int, hi: int) -> np.ndarray:
        return np.asarray(x[offset + lo : offset + hi], dtype=np.float64)

    return LazySamples(n, read, getattr(x, "name", "<lazy>"))


def compensate(ref: Signal, deg: Signal, samples: int) -> tuple[np.ndarray | LazySamples, np.ndarray | LazySamples]:
    """Undo a delay of ``samples`` (as :attr:`DelayEstimate.samples`); return (ref2, deg2) of one length.

    ``samples > 0`` drops the first ``samples`` of ``deg``; ``samples < 0`` drops the first
    ``-samples`` of ``ref``; both are then cut to their common length, so ``deg2[t] ≈ ref2[t]``.
    Arrays give array views (no copy); other signals (:class:`pqeval.audio.LazySamples`) give
    LazySamples read on demand. Raises :class:`AudioError` if nothing would remain.
    """
    samples = int(samples)
    a, b = max(0, -samples), max(0, samples)
    n = min(len(ref) - a, len(deg) - b)
    if n <= 0:
        raise AudioError(f"a delay of {samples} samples leaves no common audio ({len(ref)} and {len(deg)} samples)")
    return _offset_view(ref, a, n), _offset_view(deg, b, n)


def delay_note(est: DelayEstimate, sr: int) -> str | None:
    """The line for a pair's notes when a reliable delay of at least ``NOTE_MIN_SECONDS`` was found, else None."""
    if not est.reliable or abs(est.seconds) < NOTE_MIN_SECONDS:
        return None
    who = "lags" if est.samples > 0 else "leads"
    return (
        f"degraded {who} the clean by {abs(est.seconds) * 1000:.1f} ms ({abs(est.samples)} samples at {sr} Hz, "
        f"cross-correlation {est.confidence:.2f}); scores compare misaligned frames unless --align delay"
    )
