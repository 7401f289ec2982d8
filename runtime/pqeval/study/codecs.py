"""Lossy-codec degradations: an in-memory encode/decode round trip through libsndfile.

``mp3`` (MPEG-2/2.5 Layer III through libsndfile's LAME, constant bit rate 64 / 32 / 16 kbit/s),
``vorbis`` (Ogg Vorbis, libsndfile compression level 0.3 / 0.7 / 1.0, i.e. VBR quality
0.7 / 0.3 / 0.0) and ``opus`` (Ogg Opus, 32 / 16 / 8 kbit/s). Each encodes into an in-memory
buffer and decodes back with soundfile. MP3 is coded at the input rate when it is an MPEG-2 /
2.5 rate (8, 11.025, 12, 16, 22.05, 24 kHz; these allow all three bit rates), otherwise at
24 kHz (22.05 kHz for multiples of 11.025 kHz) or the next MPEG-2 rate above the input rate;
Opus at the input rate when libopus supports it (8, 12, 16, 24, 48 kHz), otherwise at 48 kHz;
Vorbis at the input rate. Resampling around the codec uses :func:`pqeval.resample.resample`.
The decoded signal is aligned to the encoder input: if the decoder returns exactly the input
length (Opus pre-skip; MP3 with a LAME gapless tag; Vorbis), it is already aligned; if it
returns more (low-rate CBR MP3 frames have no room for the LAME tag, so the 576 + 529 sample
encoder/decoder delay stays in), the delay is the lag in [0, extra] with the highest
cross-correlation. The result is then trimmed / zero-padded to the input length.
A codec that this libsndfile cannot write raises :class:`UsageError`
(:func:`codec_status` says whether it can).
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import correlate

from ..errors import AudioError, UsageError
from ..resample import resample
from .kinds import CODEC_KINDS

__all__ = ["CODEC_KINDS", "CODEC_PARAMS", "codec_roundtrip", "codec_status"]
#: The codec rows of :data:`pqeval.study.degrade.KINDS`: kind -> level -> parameters. kbps in
#: kbit/s (target, per mono channel); compression_level is libsndfile's 0..1.
CODEC_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "mp3": {"low": {"kbps": 64}, "high": {"kbps": 32}, "extreme": {"kbps": 16}},
    "vorbis": {
        "low": {"compression_level": 0.3},
        "high": {"compression_level": 0.7},
        "extreme": {"compression_level": 1.0},
    },
    "opus": {"low": {"kbps": 32}, "high": {"kbps": 16}, "extreme": {"kbps": 8}},
}

# Codec kind -> (soundfile format, subtype).
_CODECS: dict[str, tuple[str, str]] = {
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "vorbis": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
}
_MP3_LSF_RATES = (8000, 11025, 12000, 16000, 22050, 24000)
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad ``y`` at the end to exactly ``n`` samples."""
    if len(y) >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - len(y))])


def _mp3_rate(sr: int) -> int:
    if sr in _MP3_LSF_RATES:
        return sr
    if sr > 24000:
        return 22050 if sr % 11025 == 0 else 24000
    return min(r for r in _MP3_LSF_RATES if r >= sr)


def _opus_rate(sr: int) -> int:
    return sr if sr in _OPUS_RATES else 48000


def _codec_settings(kind: str, level: str, codec_sr: int) -> dict[str, Any]:
    """soundfile.write keyword arguments realising ``KINDS[kind][level]`` at ``codec_sr``."""
    p = CODEC_PARAMS[kind][level]
    if kind == "mp3":
        # libsndfile 1.2: CBR kbps = int(hi - c * (hi - lo)), MPEG-2 [8, 160], MPEG-2.5 [8, 64];
        # LAME then takes the nearest legal rate. +0.5 keeps int() from landing one below.
        hi, lo = (160.0, 8.0) if codec_sr >= 16000 else (64.0, 8.0)
        c = (hi - p["kbps"] - 0.5) / (hi - lo)
        return {"compression_level": c, "bitrate_mode": "CONSTANT"}
    if kind == "opus":
        # libsndfile 1.2: bit/s = int((1 - c) * 250000 + 6000) per channel.
        c = 1.0 - (p["kbps"] * 1000.0 - 6000.0 + 0.5) / 250000.0
        return {"compression_level": c}
    return {"compression_level": float(p["compression_level"])}


def _encode_decode(y: np.ndarray, sr: int, kind: str, level: str) -> tuple[np.ndarray, int, int]:
    """Encode mono ``y`` at ``sr`` into memory and decode it. Returns (decoded, decoded sr, bytes)."""
    fmt, subtype = _CODECS[kind]
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=fmt, subtype=subtype, **_codec_settings(kind, level, sr))
    nbytes = buf.tell()
    buf.seek(0)
    z, zsr = sf.read(buf, dtype="float64", always_2d=True)
    return z.mean(axis=1), int(zsr), nbytes


@functools.cache
def codec_status(kind: str) -> tuple[bool, str]:
    """(available, reason) for a codec kind in this libsndfile, found by a 0.1 s test round trip."""
    fmt, subtype = _CODECS[kind]
    where = f"libsndfile {sf.__libsndfile_version__}"
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        return False, f"{where} was built without {fmt}/{subtype}"
    t = np.arange(1600) / 16000.0
    try:
        z, _, _ = _encode_decode(0.5 * np.sin(2 * np.pi * 440.0 * t), 16000, kind, "low")
    except Exception as err:
        return False, f"{where} cannot round-trip {fmt}/{subtype}: {err}"
    if z.size == 0:
        return False, f"{where} decoded nothing from {fmt}/{subtype}"
    return True, f"{where} writes {fmt}/{subtype}"


def codec_roundtrip(x: np.ndarray, sr: int, kind: str, level: str) -> np.ndarray:
    """Lossy-codec round trip of ``x`` (see the module docstring); float64, same length, aligned."""
    ok, reason = codec_status(kind)
    if not ok:
        raise UsageError(f"degradation {kind!r} is not available: {reason}")
    codec_sr = {"mp3": _mp3_rate, "opus": _opus_rate}.get(kind, lambda s: s)(sr)
    try:
        y = resample(x, sr, codec_sr)
    except ValueError as err:
        raise AudioError(f"audio too short for {kind}: {err}") from None
    try:
        z, zsr, _ = _encode_decode(y, codec_sr, kind, level)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise UsageError(f"{kind} cannot encode {len(y)} samples at {codec_sr} Hz: {err}") from None
    if z.size == 0:
        raise AudioError(f"{kind} decoded no samples from {len(y)} input samples")
    if zsr != codec_sr:
        z = resample(z, zsr, codec_sr)
    z = _fit_length(z[_codec_delay(z, y) :], len(y))
    return _fit_length(resample(z, codec_sr, sr), len(x))


def _codec_delay(z: np.ndarray, y: np.ndarray) -> int:
    """Samples by which decoded ``z`` lags input ``y``: 0 if no longer, else argmax cross-correlation."""
    extra = len(z) - len(y)
    if extra <= 0:
        return 0
    c = correlate(z, y, mode="valid", method="fft")  # c[k] = sum z[k + n] y[n], k in [0, extra]
    return int(np.argmax(c)) if np.any(c > 0) else 0
