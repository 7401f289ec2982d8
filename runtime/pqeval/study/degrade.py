"""Degradations of the pqeval study (noise, bit rate, bit depth) and a few more, three levels each.

Every degradation takes a mono float64 signal in [-1, 1] at its native sample rate and returns a
float64 signal of exactly the same length and rate, ending with peak normalisation (divide by
max |y| so that the peak is exactly 1.0; an all-zero result is returned unchanged), as the study's
own code does. ``normalize=False`` returns the value before that step, which the tests use to check
the definitions (noise σ, quantisation step, ...).

The parameter table ``KINDS`` (kind -> level -> parameters) is the single source of truth; like
pystoi's module constants, it documents the definitions and the code reads from it.

Study kinds:

========  ==============================  =================================  ====================
level     ``noise``: Gaussian σ added     ``bitrate``: down/up factor        ``bitdepth``: bits
========  ==============================  =================================  ====================
low       0.002                           2                                  12
high      0.01                            4                                  8
extreme   0.02                            6                                  4
========  ==============================  =================================  ====================

- ``noise``: ``x + σ·N(0, 1)``; the generator is ``np.random.default_rng`` seeded from
  (seed, kind, level), see :func:`rng_for`.
- ``bitrate``: resample to ``round(sr / factor)`` Hz and back to ``sr`` with
  :func:`pqeval.resample.resample` (resampy kaiser_best, zero delay), so the result is band-limited
  below ``sr / (2·factor)``; the up-sampled signal is trimmed or zero-padded at the end to the input
  length (the two rate conversions can lose up to ``factor`` samples).
- ``bitdepth``: mid-tread quantiser with ``Q = 2**(bits-1) - 1`` steps per polarity:
  ``round(clip(x, -1, 1) · Q) / Q`` (``np.round``: half to even). It has ``2·Q + 1 = 2**bits - 1``
  distinct levels (-Q..Q; the asymmetric two's-complement code -2**(bits-1) is never used, so zero
  is exactly representable and the quantiser is symmetric).

Beyond the study:

- ``clipping``: hard clip at ``±fraction · max|x|`` (fraction 0.5 / 0.25 / 0.1).
- ``reverb``: convolution with a synthetic room impulse response (:func:`room_impulse_response`):
  a unit direct path followed by seeded Gaussian noise under an exponential envelope that decays
  by 60 dB in RT60 seconds, scaled to a given direct-to-reverberant energy ratio (DRR).
  Levels: RT60 0.2 / 0.5 / 1.0 s with DRR 10 / 3 / -3 dB. The output keeps the input length (the
  tail beyond the end is cut), no delay is added.
- ``mp3`` (constant bit rate 64 / 32 / 16 kbit/s), ``vorbis`` (libsndfile compression level
  0.3 / 0.7 / 1.0) and ``opus`` (32 / 16 / 8 kbit/s): an in-memory encode/decode round trip,
  aligned to the input; see :mod:`pqeval.study.codecs`. A codec that this libsndfile cannot
  write raises :class:`UsageError`; :func:`expand_kinds` leaves it out of ``"all"`` with the reason.

Measured scores of every kind and level on a reference recording, and why outputs are never
stored as 16-bit PCM: ``docs/degradations.md``.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import fftconvolve

from ..atomic import atomic_write_audio
from ..audio import load_audio
from ..errors import AudioError, UsageError
from ..resample import resample
from .codecs import CODEC_PARAMS, _fit_length, codec_roundtrip, codec_status
from .kinds import ALL_KINDS, CODEC_KINDS, EXTRA_KINDS, LEVELS, STUDY_KINDS

__all__ = [
    "ALL_KINDS",
    "CODEC_KINDS",
    "DESCRIPTIONS",
    "EXTRA_KINDS",
    "KINDS",
    "LEVELS",
    "STUDY_KINDS",
    "DegradeResult",
    "add_noise",
    "codec_roundtrip",
    "codec_status",
    "degrade",
    "degrade_file",
    "down_up_sample",
    "expand_kinds",
    "expand_levels",
    "hard_clip",
    "peak_normalize",
    "quantize",
    "read_mono",
    "reverberate",
    "rng_for",
    "room_impulse_response",
]

#: kind -> level -> parameters. Units: sigma in full-scale amplitude units (signal in [-1, 1]);
#: factor dimensionless; bits; fraction of the input peak; rt60 in seconds, drr_db in dB;
#: kbps in kbit/s (codec target, per mono channel); compression_level is libsndfile's 0..1.
KINDS: dict[str, dict[str, dict[str, Any]]] = {
    "noise": {"low": {"sigma": 0.002}, "high": {"sigma": 0.01}, "extreme": {"sigma": 0.02}},
    "bitrate": {"low": {"factor": 2}, "high": {"factor": 4}, "extreme": {"factor": 6}},
    "bitdepth": {"low": {"bits": 12}, "high": {"bits": 8}, "extreme": {"bits": 4}},
    "clipping": {
        "low": {"fraction": 0.5},
        "high": {"fraction": 0.25},
        "extreme": {"fraction": 0.1},
    },
    "reverb": {
        "low": {"rt60": 0.2, "drr_db": 10.0},
        "high": {"rt60": 0.5, "drr_db": 3.0},
        "extreme": {"rt60": 1.0, "drr_db": -3.0},
    },
    **CODEC_PARAMS,
}

#: One-line description of each kind, for reports and ``--help``.
DESCRIPTIONS: dict[str, str] = {
    "noise": "additive white Gaussian noise of standard deviation sigma (full scale = 1)",
    "bitrate": "down-sample by factor and up-sample back (band limit sr/(2*factor))",
    "bitdepth": "uniform quantisation to bits (2**bits - 1 levels on [-1, 1])",
    "clipping": "hard clip at fraction of the signal's peak",
    "reverb": "synthetic exponential-decay room impulse response (rt60 s, drr_db dB)",
    "mp3": "MP3 (LAME via libsndfile), constant bit rate kbps",
    "vorbis": "Ogg Vorbis via libsndfile at compression_level (VBR quality 1 - level)",
    "opus": "Ogg Opus via libsndfile at kbps",
}

# Output container formats of degrade_file: fmt -> (soundfile format, subtype, extension).
_OUT_FORMATS: dict[str, tuple[str, str, str]] = {
    "wav": ("WAV", "FLOAT", ".wav"),
    "flac": ("FLAC", "PCM_24", ".flac"),
}


@dataclass(frozen=True)
class DegradeResult:
    """What :func:`degrade_file` did: ``written`` paths (kind-major order) and ``notes``, one
    line per kind left out of ``"all"`` (``"skipping mp3: <reason>"``)."""

    written: list[Path]
    notes: list[str]


# --------------------------------------------------------------------------------------------
# helpers


def peak_normalize(y: np.ndarray) -> np.ndarray:
    """Return ``y / max|y|`` (peak exactly 1.0) as float64; an all-zero signal is returned as is."""
    y = np.asarray(y, dtype=np.float64)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak == 0.0:
        return y.copy()
    return y / peak


def rng_for(seed: int, kind: str, level: str) -> np.random.Generator:
    """The generator a seeded degradation draws from: ``default_rng(SeedSequence([seed, crc(kind), crc(level)]))``.

    CRC-32 of the names (not Python's salted ``hash``) keeps it identical across processes, and
    each (kind, level) gets an independent stream, so e.g. the noise of "high" is not a scaled
    copy of the noise of "low".
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    entropy = [int(seed), zlib.crc32(kind.encode()), zlib.crc32(level.encode())]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _check_audio(audio: Any) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1:
        raise UsageError(f"audio must be a 1-D mono signal, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise UsageError(f"audio must be real numbers, got dtype {x.dtype}")
    if x.size == 0:
        raise AudioError("audio is empty (0 samples)")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise AudioError("audio contains NaN or infinite samples")
    return x


def _check_sr(sr: Any) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise UsageError(f"sample rate must be a positive integer in Hz, got {sr!r}")
    return int(sr)


def _params(kind: str, level: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise UsageError(f"unknown degradation kind {kind!r}; choose from {', '.join(ALL_KINDS)}")
    if level not in LEVELS:
        raise UsageError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    return KINDS[kind][level]


# --------------------------------------------------------------------------------------------
# the degradations (before peak normalisation)


def add_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``x + sigma * N(0, 1)`` drawn from ``rng`` (float64, same shape)."""
    return x + sigma * rng.standard_normal(x.shape)


def down_up_sample(x: np.ndarray, sr: int, factor: int) -> np.ndarray:
    """Resample to ``round(sr / factor)`` Hz and back to ``sr`` (resampy kaiser_best); same length."""
    sr_low = int(round(sr / factor))
    if sr_low < 1:
        raise UsageError(f"cannot down-sample {sr} Hz by a factor of {factor}")
    try:
        low = resample(x, sr, sr_low)
        back = resample(low, sr_low, sr)
    except ValueError as err:
        raise AudioError(f"audio too short for bit-rate degradation: {err}") from None
    return _fit_length(back, len(x))


def quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """``round(clip(x, -1, 1) * Q) / Q`` with ``Q = 2**(bits-1) - 1``: 2**bits - 1 levels on [-1, 1]."""
    if bits < 2:
        raise UsageError(f"bit depth must be at least 2, got {bits}")
    q = 2 ** (bits - 1) - 1
    return np.round(np.clip(x, -1.0, 1.0) * q) / q


def hard_clip(x: np.ndarray, fraction: float) -> np.ndarray:
    """Clip ``x`` to ``±fraction * max|x|``."""
    t = fraction * float(np.max(np.abs(x)))
    return np.clip(x, -t, t)


def room_impulse_response(sr: int, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic room impulse response, float64 of ``1 + round(rt60 * sr)`` samples.

    ``h[0] = 1`` (direct path); ``h[n] = g[n] · 10**(-3 n / (rt60 · sr))`` for n ≥ 1, with
    ``g ~ N(0, 1)`` from ``rng`` (the envelope falls by 60 dB in rt60 seconds), scaled so that
    ``10·log10(h[0]² / Σ_{n≥1} h[n]²) = drr_db``.
    """
    n_tail = max(1, int(round(rt60 * sr)))
    n = np.arange(1, n_tail + 1)
    tail = rng.standard_normal(n_tail) * 10.0 ** (-3.0 * n / (rt60 * sr))
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    return np.concatenate([[1.0], tail])


def reverberate(x: np.ndarray, sr: int, rt60: float, drr_db: float, rng: np.random.Generator):
    """``x`` convolved with :func:`room_impulse_response`, cut to the input length."""
    h = room_impulse_response(sr, rt60, drr_db, rng)
    return fftconvolve(x, h)[: len(x)]


# --------------------------------------------------------------------------------------------
# public entry points


def degrade(
    audio: np.ndarray,
    sr: int,
    kind: str,
    level: str,
    seed: int = 0,
    normalize: bool = True,
) -> np.ndarray:
    """Apply one degradation ``KINDS[kind][level]`` to mono ``audio`` sampled at ``sr`` Hz.

    ``audio``: 1-D array of samples in [-1, 1] (any real dtype; converted to float64).
    Returns float64 of shape ``(len(audio),)`` at the same rate, peak-normalised to max |y| = 1.0
    unless ``normalize=False`` or the result is all zero. ``seed`` (non-negative int) drives the
    random kinds (noise, reverb) through :func:`rng_for`; the others ignore it.

    Raises :class:`UsageError` for an unknown kind/level, bad arguments or an unavailable codec,
    :class:`AudioError` for empty / non-finite / too short audio.
    """
    params = _params(kind, level)
    x = _check_audio(audio)
    sr = _check_sr(sr)
    rng = rng_for(seed, kind, level)  # validates the seed for every kind
    if kind == "noise":
        y = add_noise(x, params["sigma"], rng)
    elif kind == "bitrate":
        y = down_up_sample(x, sr, params["factor"])
    elif kind == "bitdepth":
        y = quantize(x, params["bits"])
    elif kind == "clipping":
        y = hard_clip(x, params["fraction"])
    elif kind == "reverb":
        y = reverberate(x, sr, params["rt60"], params["drr_db"], rng)
    else:
        y = codec_roundtrip(x, sr, kind, level)
    assert y.shape == x.shape, (kind, y.shape, x.shape)
    return peak_normalize(y) if normalize else np.asarray(y, dtype=np.float64)


def expand_kinds(kinds: str | Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Resolve a kind selection to (kinds to run, {skipped kind: reason}).

    ``"all"`` (alone or inside a list) means every kind in ``ALL_KINDS`` that works here; codecs
    this libsndfile cannot write are left out with their reason. A codec named explicitly but
    unavailable raises :class:`UsageError`, as does an unknown name.
    """
    names = [kinds] if isinstance(kinds, str) else list(kinds)
    out: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        if name == "all":
            for k in ALL_KINDS:
                if k in CODEC_KINDS and not codec_status(k)[0]:
                    skipped[k] = codec_status(k)[1]
                elif k not in out:
                    out.append(k)
            continue
        if name not in KINDS:
            raise UsageError(f"unknown degradation kind {name!r}; choose from all, {', '.join(ALL_KINDS)}")
        if name in CODEC_KINDS and not codec_status(name)[0]:
            raise UsageError(f"degradation {name!r} is not available: {codec_status(name)[1]}")
        if name not in out:
            out.append(name)
    if not out and not skipped:
        raise UsageError("no degradation kind selected")
    return out, skipped


def expand_levels(levels: str | Iterable[str]) -> list[str]:
    """Resolve a level selection (``"all"`` or names from ``LEVELS``) to a list in table order."""
    names = [levels] if isinstance(levels, str) else list(levels)
    out: list[str] = []
    for name in names:
        for lv in LEVELS if name == "all" else [name]:
            if lv not in LEVELS:
                raise UsageError(f"unknown level {lv!r}; choose from all, {', '.join(LEVELS)}")
            if lv not in out:
                out.append(lv)
    if not out:
        raise UsageError("no level selected")
    return out


def read_mono(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(float64 mono samples averaged over channels, sr Hz) of any soundfile-readable file.

    Raises :class:`AudioError` naming the file, as :func:`pqeval.audio.load_audio`.
    """
    a = load_audio(path)
    return np.asarray(a.samples, dtype=np.float64), a.sr


def degrade_file(
    in_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    kinds: str | Iterable[str] = STUDY_KINDS,
    levels: str | Iterable[str] = LEVELS,
    seed: int = 0,
    fmt: str = "wav",
) -> DegradeResult:
    """Degrade one recording at every kind × level; returns the written paths and the notes.

    Reads any soundfile-readable file, mixes to mono by averaging channels, keeps the native
    sample rate, and writes ``<stem>__<kind>_<level>.wav`` into ``out_dir`` (created if missing).
    ``kinds`` / ``levels`` accept names or ``"all"`` (see :func:`expand_kinds`; an unavailable
    codec is left out of "all" and its reason returned in :attr:`DegradeResult.notes`, never
    issued as a warning).

    Storage: ``fmt="wav"`` writes 32-bit float WAV (exact to float32, i.e. 6e-8 relative, far
    below any degradation here); ``fmt="flac"`` writes 24-bit FLAC (``.flac``, step 1.2e-7).
    Never 16-bit PCM: 16-bit storage by itself changes the scores (see ``docs/degradations.md``).

    Each file is written to a temporary file in ``out_dir`` and moved into place with
    ``os.replace``, so a reader never sees a partial file. Raises :class:`AudioError` if the
    input cannot be read, :class:`UsageError` for bad options or an unwritable ``out_dir``.
    """
    if fmt not in _OUT_FORMATS:
        raise UsageError(f"unknown output format {fmt!r}; choose from {', '.join(_OUT_FORMATS)}")
    sf_format, subtype, ext = _OUT_FORMATS[fmt]
    kind_list, skipped = expand_kinds(kinds)
    level_list = expand_levels(levels)
    rng_for(seed, "check", "check")  # validate the seed before any work
    x, sr = read_mono(in_path)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{out}: cannot create output directory ({err.strerror or err})") from None
    notes = [f"skipping {kind}: {reason}" for kind, reason in skipped.items()]
    stem = Path(in_path).stem
    written: list[Path] = []
    for kind in kind_list:
        for level in level_list:
            try:
                y = degrade(x, sr, kind, level, seed=seed)
            except AudioError as err:
                raise AudioError(f"{in_path}: {err}") from None
            target = out / f"{stem}__{kind}_{level}{ext}"
            atomic_write_audio(target, y, sr, sf_format, subtype)
            written.append(target)
    return DegradeResult(written, notes)
