"""Reading recordings: any format libsndfile reads, any rate and channel count, to mono float64.

Mono is the mean over channels, as torchvggish (``waveform_to_examples``) and openl3
(``_preprocess_audio_batch``) both do. 16-bit PCM reads as ``int / 32768``, exactly as
torchvggish's ``wavfile_to_examples``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError


@dataclass(frozen=True)
class Audio:
    """A mono recording: ``samples`` float64 shape (n,), ``sr`` in Hz."""

    samples: np.ndarray
    sr: int
    channels: int = 1
    path: str = "<array>"

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sr


def to_mono(x: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) -> (n,) float64, averaging channels."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def check_samples(samples: np.ndarray, sr: int, name: str = "<array>") -> None:
    """Raise AudioError for empty audio, non-finite samples or a bad rate."""
    if sr <= 0:
        raise AudioError(f"{name}: sample rate must be positive, got {sr}")
    if samples.size == 0:
        raise AudioError(f"{name}: the file holds no audio samples (zero length)")
    bad = ~np.isfinite(samples)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(len(samples), -1).any(axis=1))[0])
        raise AudioError(
            f"{name}: {int(bad.sum())} non-finite (NaN/inf) samples, the first at {first / sr:.3f} s"
        )


def wav_truncation(path: str | os.PathLike) -> tuple[int, int] | None:
    """(declared, present) bytes of a RIFF/WAVE file's data chunk when the file ends early, else None.

    libsndfile silently reads what is there, which would score half a recording as if whole.
    A size of 0 or 0xFFFFFFFF (streamed writers) is not treated as a declaration.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(f.fileno()).st_size
            while True:
                hdr = f.read(8)
                if len(hdr) < 8:
                    return None
                cid, n = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid == b"data":
                    present = size - f.tell()
                    return (n, present) if n not in (0, 0xFFFFFFFF) and n > present else None
                f.seek(n + (n & 1), 1)
    except OSError:
        return None


def load_audio(path: str | os.PathLike) -> Audio:
    """Read ``path`` and return it as mono float64 at its own sample rate.

    Raises AudioError (one line, naming the file) for a missing file, a directory, a file
    libsndfile cannot decode, zero-length audio, or NaN/inf samples.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, expected an audio file")
    try:
        data, sr = sf.read(str(p), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"{p}: not a readable audio file ({reason})") from None
    except OSError as e:
        raise AudioError(f"{p}: cannot read ({e.strerror or e})") from None
    trunc = wav_truncation(p)
    if trunc:
        raise AudioError(f"{p}: truncated WAV file (header declares {trunc[0]} data bytes, {trunc[1]} present)")
    check_samples(data, int(sr), str(p))
    return Audio(to_mono(data), int(sr), data.shape[1], str(p))


def from_array(samples: np.ndarray, sr: int, name: str = "<array>") -> Audio:
    """Wrap an in-memory signal ((n,) or (n, channels)) after the same checks as load_audio."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise AudioError(f"{name}: expected a 1-D or (samples, channels) array, got shape {x.shape}")
    check_samples(x, int(sr), name)
    return Audio(to_mono(x), int(sr), 1 if x.ndim == 1 else x.shape[1], name)
