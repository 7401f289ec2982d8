"""Reading recordings: any format libsndfile reads, any rate and channel count, to mono float64.

Mono is the mean over channels, as torchvggish (``waveform_to_examples``) and openl3
(``_preprocess_audio_batch``) both do. 16-bit PCM reads as ``int / 32768``, exactly as
torchvggish's ``wavfile_to_examples``.

``load_audio`` reads a whole file; ``open_audio`` checks it the same way but hands out
:class:`LazySamples` that read ranges from disk on demand, so the embedders (which work window
batch by window batch) hold only a batch's worth of a long recording, whatever its length.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")


class LazySamples:
    """A mono float64 signal of known length read on demand: ``len(x)``, ``x[lo:hi]`` -> ndarray.

    ``np.asarray(x)`` reads all of it (for metrics that need the whole signal). ``read(lo, hi)``
    must return samples [lo, hi) as float64 (n,) for 0 <= lo < hi <= n.
    """

    ndim = 1
    dtype = np.dtype(np.float64)

    def __init__(self, n: int, read: Callable[[int, int], np.ndarray], name: str = "<lazy>") -> None:
        self._n = int(n)
        self._read = read
        self.name = name

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int]:
        return (self._n,)

    @property
    def size(self) -> int:
        return self._n

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("LazySamples supports only [lo:hi] slices")
        lo, hi, step = key.indices(self._n)
        if step != 1:
            raise TypeError("LazySamples supports only contiguous slices")
        return self._read(lo, hi) if hi > lo else np.zeros(0)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        x = self[0 : self._n]
        return x if dtype is None else x.astype(dtype, copy=False)

    def head(self, n: int) -> LazySamples:
        """The first n samples, still read on demand."""
        return LazySamples(min(int(n), self._n), self._read, self.name)


def as_signal(x) -> np.ndarray | LazySamples:
    """LazySamples as they are (read on demand); anything else as a float64 array."""
    return x if isinstance(x, LazySamples) else np.asarray(x, dtype=np.float64)


def head(x: np.ndarray | LazySamples, n: int) -> np.ndarray | LazySamples:
    """The first n samples of an array or a LazySamples, without reading anything."""
    return x.head(n) if isinstance(x, LazySamples) else x[:n]


@dataclass(frozen=True)
class Audio:
    """A mono recording: ``samples`` float64 shape (n,), ``sr`` in Hz."""

    samples: np.ndarray | LazySamples
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
        raise AudioError(f"{name}: {int(bad.sum())} non-finite (NaN/inf) samples, the first at {first / sr:.3f} s")


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


def _checked_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, expected an audio file")
    trunc = wav_truncation(p)
    if trunc:
        raise AudioError(f"{p}: truncated WAV file (header declares {trunc[0]} data bytes, {trunc[1]} present)")
    return p


def _unreadable(p: Path, e: Exception) -> AudioError:
    if isinstance(e, OSError) and not isinstance(e, sf.LibsndfileError):
        return AudioError(f"{p}: cannot read ({e.strerror or e})")
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    return AudioError(f"{p}: not a readable audio file ({reason})")


_READ_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)


def load_audio(path: str | os.PathLike) -> Audio:
    """Read ``path`` and return it as mono float64 at its own sample rate.

    Raises AudioError (one line, naming the file) for a missing file, a directory, a truncated
    WAV, a file libsndfile cannot decode, zero-length audio, or NaN/inf samples.
    """
    return _read_whole(_checked_path(path))


def _read_whole(p: Path) -> Audio:
    try:
        data, sr = sf.read(str(p), dtype="float64", always_2d=True)
    except _READ_ERRORS as e:
        raise _unreadable(p, e) from None
    check_samples(data, int(sr), str(p))
    return Audio(to_mono(data), int(sr), data.shape[1], str(p))


# Containers whose seeks libsndfile makes sample-exact; others (MP3, Ogg) are read whole.
SEEKABLE_FORMATS = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "CAF", "FLAC", "AU", "RAW"})
_CHECK_FRAMES = 1 << 18  # frames per block of the validation pass


def open_audio(path: str | os.PathLike) -> Audio:
    """Check ``path`` as ``load_audio`` does, but return samples read from disk on demand.

    The validation pass (NaN/inf, length) reads the file in blocks of 2**18 frames; afterwards
    ``samples`` is a :class:`LazySamples` whose ranges equal ``load_audio``'s samples exactly.
    Formats without exact seeking (MP3, Ogg) are read whole, as ``load_audio``.
    """
    p = _checked_path(path)
    try:
        with sf.SoundFile(str(p)) as f:
            sr, channels, frames, fmt = int(f.samplerate), f.channels, f.frames, f.format
            if fmt not in SEEKABLE_FORMATS or not f.seekable():
                return _read_whole(p)  # the path is checked already
            if sr <= 0 or frames == 0:
                check_samples(np.zeros((0, channels)), sr, str(p))
            done, n_bad, first_bad = 0, 0, -1
            for block in f.blocks(blocksize=_CHECK_FRAMES, dtype="float64", always_2d=True):
                bad = ~np.isfinite(block)
                if bad.any():
                    n_bad += int(bad.sum())
                    if first_bad < 0:
                        first_bad = done + int(np.flatnonzero(bad.any(axis=1))[0])
                done += len(block)
    except AudioError:
        raise
    except _READ_ERRORS as e:
        raise _unreadable(p, e) from None
    if n_bad:
        raise AudioError(f"{p}: {n_bad} non-finite (NaN/inf) samples, the first at {first_bad / sr:.3f} s")
    if done != frames:
        raise AudioError(f"{p}: declares {frames} frames but {done} could be read")

    def read(lo: int, hi: int) -> np.ndarray:
        try:
            with sf.SoundFile(str(p)) as f:
                f.seek(lo)
                block = f.read(hi - lo, dtype="float64", always_2d=True)
        except _READ_ERRORS as e:
            raise _unreadable(p, e) from None
        if len(block) != hi - lo:
            raise AudioError(f"{p}: changed while being read (wanted {hi - lo} frames at {lo}, got {len(block)})")
        return to_mono(block)

    return Audio(LazySamples(frames, read, str(p)), sr, channels, str(p))


def from_array(samples: np.ndarray, sr: int, name: str = "<array>") -> Audio:
    """Wrap an in-memory signal ((n,) or (n, channels)) after the same checks as load_audio."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise AudioError(f"{name}: expected a 1-D or (samples, channels) array, got shape {x.shape}")
    check_samples(x, int(sr), name)
    return Audio(to_mono(x), int(sr), 1 if x.ndim == 1 else x.shape[1], name)


def audio_files(d: Path) -> list[Path]:
    """The audio files directly in folder ``d`` (by extension, :data:`AUDIO_EXTENSIONS`), sorted."""
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
