"""Reading recordings: any format libsndfile reads, any rate and channel count, to mono float64.

Mono is the mean over channels, as torchvggish (``waveform_to_examples``) and openl3
(``_preprocess_audio_batch``) both do. 16-bit PCM reads as ``int / 32768``, exactly as
torchvggish's ``wavfile_to_examples``.

``load_audio`` reads a whole file; ``open_audio`` checks it the same way but hands out
:class:`LazySamples` that read ranges from disk on demand, so the embedders (which work window
batch by window batch) hold only a batch's worth of a long recording, whatever its length.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import select
import stat
import struct
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from .errors import AudioError
from .integrity import sha256_file

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
    """A mono recording: ``samples`` float64 shape (n,), ``sr`` in Hz; ``notes`` about the input
    (over full scale, channels that cancel in the mono mix, a WAV without a data size)."""

    samples: np.ndarray | LazySamples
    sr: int
    channels: int = 1
    path: str = "<array>"
    notes: tuple[str, ...] = ()

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


def _wav_data(f: BinaryIO, size: int) -> tuple[int, int, int] | None:
    """(declared, present, offset of the size field) of a RIFF/WAVE data chunk, else None.

    libsndfile silently reads what is there, which would score half a truncated recording as if
    whole; a size of 0 or 0xFFFFFFFF (streamed writers) is not a declaration.
    """
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    while True:
        hdr = f.read(8)
        if len(hdr) < 8:
            return None
        cid, n = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if cid == b"data":
            return n, size - f.tell(), f.tell() - 4
        f.seek(n + (n & 1), 1)


class _Patched:
    """A read-only binary file with some bytes replaced (``{offset: bytes}``), for libsndfile."""

    def __init__(self, f: BinaryIO, patch: dict[int, bytes]) -> None:
        self._f, self._patch, self.seek, self.tell = f, patch, f.seek, f.tell

    def read(self, n: int = -1) -> bytes:
        pos = self._f.tell()
        data = self._f.read(n)
        for at, new in self._patch.items():
            lo, hi = max(at, pos), min(at + len(new), pos + len(data))
            if lo < hi:
                data = data[: lo - pos] + new[lo - at : hi - at] + data[hi - pos :]
        return data


#: Most bytes read from a pipe, a device or stdin (each is read once, whole, into memory).
STREAM_LIMIT = 4 << 30
_CHUNK = 1 << 20
#: Streams already read, by the name they were given: (stamp, bytes or why they failed).
_STREAMS: dict[str, tuple[tuple[int, ...] | None, bytes | AudioError]] = {}
STDIN = "<stdin>"


def forget_streams() -> None:
    """Drop the bytes of streams read so far (the CLI does this before each command)."""
    _STREAMS.clear()


def _os_error(name: str, e: OSError) -> AudioError:
    if e.errno == errno.ENOENT:
        return AudioError(f"{name}: no such file")
    if e.errno == errno.ELOOP:
        return AudioError(f"{name}: symlink loop (too many levels of symbolic links)")
    return AudioError(f"{name}: cannot read ({e.strerror or e})")


def _drain(name: str, read: Callable[[], bytes]) -> bytes:
    """Everything ``read()`` gives until it gives b"", at most STREAM_LIMIT bytes."""
    out = io.BytesIO()
    while chunk := read():
        if out.tell() + len(chunk) > STREAM_LIMIT:
            raise AudioError(f"{name}: a stream of more than {STREAM_LIMIT} bytes (pqeval.audio.STREAM_LIMIT)")
        out.write(chunk)
    if not out.tell():
        raise AudioError(f"{name}: the stream is empty (nothing to read)")
    return out.getvalue()


def _read_stdin() -> bytes:
    buf = getattr(sys.stdin, "buffer", None)
    if buf is None or sys.stdin.isatty():
        raise AudioError(f"{STDIN}: standard input is a terminal or closed; pipe a recording in (... - < x.wav)")
    return _drain(STDIN, lambda: buf.read(_CHUNK))


def _read_stream(name: str, fifo: bool) -> bytes:
    """A pipe's or device's bytes, to EOF: opened without blocking, waited on with select()."""
    waited = False

    def read() -> bytes:
        nonlocal waited
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:  # a writer, no data yet
                waited = bool(select.select([fd], [], []))
                continue
            if not chunk and fifo and not waited:  # EOF at once: nobody has the pipe open to write
                raise AudioError(f"{name}: a named pipe with no writer (nothing to read)")
            waited = True
            return chunk

    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if os.isatty(fd):
                raise AudioError(f"{name}: a terminal, not an audio stream")
            return _drain(name, read)
        finally:
            os.close(fd)
    except OSError as e:
        raise _os_error(name, e) from None


def _stamp(name: str) -> tuple[int, ...] | None:
    """What tells one stream from the next under the same name: the pipe's inode and last write."""
    try:
        st = os.fstat(sys.stdin.fileno()) if name == "-" else os.stat(name)
    except (OSError, ValueError, AttributeError):
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def _stream_bytes(name: str, mode: int) -> bytes:
    """The bytes of stdin (``-``) or a non-regular file, read once and kept while the stream's
    inode and write time stay the same (a new pipe, or new writes, under that name are read)."""
    stamp, got = _STREAMS.get(name, (None, None))
    if got is None or stamp != _stamp(name):
        try:
            got = _read_stdin() if name == "-" else _read_stream(name, stat.S_ISFIFO(mode))
        except AudioError as e:
            got = e
        _STREAMS[name] = (_stamp(name), got)
    if isinstance(got, AudioError):
        raise got
    return got


def _stat(name: str) -> int:
    """The st_mode of an input that may be read (regular file or stream); AudioError otherwise."""
    try:
        mode = os.stat(name).st_mode
    except OSError as e:
        raise _os_error(name, e) from None
    if stat.S_ISDIR(mode):
        raise AudioError(f"{name}: is a directory, expected an audio file")
    if stat.S_ISSOCK(mode):
        raise AudioError(f"{name}: a socket, not an audio file")
    return mode


def file_identity(path: str | os.PathLike) -> str:
    """Hex sha256 of an input's bytes: a file's, or a stream's (``-``, pipe, device), which is read
    only once: ``open_audio`` / ``load_audio`` of the same name later use the same bytes.

    Raises OSError for a regular file that cannot be read, AudioError for a stream that cannot.
    """
    name = os.fspath(path)
    mode = 0 if name == "-" else _stat(name)
    if name != "-" and stat.S_ISREG(mode):
        return sha256_file(name)
    return hashlib.sha256(_stream_bytes(name, mode)).hexdigest()


@dataclass(frozen=True)
class _Source:
    """An input to decode: the file ``name``, or a stream's ``data``, with header ``patch``es."""

    name: str
    data: bytes | None = None
    patch: tuple[tuple[int, bytes], ...] = ()

    @contextmanager
    def open(self) -> Iterator[sf.SoundFile]:
        if self.data is None and not self.patch:
            with sf.SoundFile(self.name) as f:
                yield f
            return
        with io.BytesIO(self.data) if self.data is not None else open(self.name, "rb") as raw:
            f = sf.SoundFile(_Patched(raw, dict(self.patch)) if self.patch else raw)
            with f:
                yield f


def _source(path: str | os.PathLike) -> _Source:
    """Check an input (exists, not a directory or socket, WAV not truncated); read a stream once."""
    name = os.fspath(path)
    mode = 0 if name == "-" else _stat(name)
    data = None if stat.S_ISREG(mode) else _stream_bytes(name, mode)
    name = STDIN if name == "-" else name
    try:
        with io.BytesIO(data) if data is not None else open(name, "rb") as f:
            info = _wav_data(f, len(data) if data is not None else os.fstat(f.fileno()).st_size)
    except OSError as e:
        raise _os_error(name, e) from None
    if info is None:
        return _Source(name, data)
    declared, present, at = info
    if declared not in (0, 0xFFFFFFFF) and declared > present:
        raise AudioError(f"{name}: truncated WAV file (header declares {declared} data bytes, {present} present)")
    if declared == 0 and present > 0:  # a streamed (or crashed) writer: read what is there
        riff = struct.pack("<I", min(at + 4 + present - 8, 0xFFFFFFFF))
        return _Source(name, data, ((4, riff), (at, struct.pack("<I", min(present, 0xFFFFFFFF)))))
    return _Source(name, data)


def _unreadable(name: str, e: Exception) -> AudioError:
    if isinstance(e, OSError) and not isinstance(e, sf.LibsndfileError):
        return AudioError(f"{name}: cannot read ({e.strerror or e})")
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    return AudioError(f"{name}: not a readable audio file ({reason})")


_READ_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)
FULL_SCALE = 1.0
CANCEL_RATIO = 1e-4  # mono mix energy below this fraction of the channels' (-40 dB): they cancel


class _Levels:
    """Peak and energies (channels, mono mix) accumulated block by block, for the notes."""

    def __init__(self, x: np.ndarray | None = None) -> None:
        self.peak, self.mono, self.chans = 0.0, 0.0, 0.0
        if x is not None:
            self.add(x.reshape(len(x), -1))

    def add(self, block: np.ndarray) -> None:
        if block.size:
            self.peak = max(self.peak, float(np.max(np.abs(block))))
            self.mono += float(np.sum(block.mean(axis=1) ** 2))
            self.chans += float(np.sum(block**2)) / block.shape[1]

    def notes(self, channels: int, src: _Source | None = None, frames: int = 0) -> tuple[str, ...]:
        out = [f"WAV header declares no data size; read {frames} samples present"] if src and src.patch else []
        if self.peak > FULL_SCALE:
            out.append(f"peak {round(self.peak, 6)!r} is over full scale ({FULL_SCALE}); scores are computed as given")
        if channels > 1 and self.chans > 0 and self.mono <= CANCEL_RATIO * self.chans:
            out.append("channels cancel when mixed to mono (phase-inverted?)")
        return tuple(out)


def load_audio(path: str | os.PathLike) -> Audio:
    """Read ``path`` and return it as mono float64 at its own sample rate.

    ``-`` is stdin; a pipe or device (``<(cat x.wav)``, a FIFO) is read once into memory (at most
    :data:`STREAM_LIMIT` bytes). Raises AudioError (one line, naming the file) for a missing file, a
    directory, a socket, a truncated WAV, a file libsndfile cannot decode, zero-length audio, or
    NaN/inf samples.
    """
    return _read_whole(_source(path))


def _read_whole(src: _Source) -> Audio:
    try:
        with src.open() as f:
            data, sr = f.read(dtype="float64", always_2d=True), int(f.samplerate)
    except _READ_ERRORS as e:
        raise _unreadable(src.name, e) from None
    check_samples(data, sr, src.name)
    notes = _Levels(data).notes(data.shape[1], src, len(data))
    return Audio(to_mono(data), sr, data.shape[1], src.name, notes)


# Containers whose seeks libsndfile makes sample-exact; others (MP3, Ogg) are read whole.
SEEKABLE_FORMATS = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "CAF", "FLAC", "AU", "RAW"})
_CHECK_FRAMES = 1 << 18  # frames per block of the validation pass


def open_audio(path: str | os.PathLike) -> Audio:
    """Check ``path`` as ``load_audio`` does, but return samples read from disk on demand.

    The validation pass (NaN/inf, length, the notes' levels) reads the file in blocks of 2**18
    frames; afterwards ``samples`` is a :class:`LazySamples` whose ranges equal ``load_audio``'s
    samples exactly. Formats without exact seeking (MP3, Ogg) are read whole, as ``load_audio``.
    A stream (``-``, pipe, device) is read once into memory and decoded from there.
    """
    src = _source(path)
    name, levels = src.name, _Levels()
    try:
        with src.open() as f:
            sr, channels, frames, fmt = int(f.samplerate), f.channels, f.frames, f.format
            whole = fmt not in SEEKABLE_FORMATS or not f.seekable()
            if not whole:
                if sr <= 0 or frames == 0:
                    check_samples(np.zeros((0, channels)), sr, name)
                done, n_bad, first_bad = 0, 0, -1
                for block in f.blocks(blocksize=_CHECK_FRAMES, dtype="float64", always_2d=True):
                    bad = ~np.isfinite(block)
                    if bad.any():
                        n_bad += int(bad.sum())
                        if first_bad < 0:
                            first_bad = done + int(np.flatnonzero(bad.any(axis=1))[0])
                    else:
                        levels.add(block)
                    done += len(block)
    except _READ_ERRORS as e:
        raise _unreadable(name, e) from None
    if whole:
        return _read_whole(src)  # the source is checked already
    if n_bad:
        raise AudioError(f"{name}: {n_bad} non-finite (NaN/inf) samples, the first at {first_bad / sr:.3f} s")
    if done != frames:
        raise AudioError(f"{name}: declares {frames} frames but {done} could be read")

    def read(lo: int, hi: int) -> np.ndarray:
        try:
            with src.open() as f:
                f.seek(lo)
                block = f.read(hi - lo, dtype="float64", always_2d=True)
        except _READ_ERRORS as e:
            raise _unreadable(name, e) from None
        if len(block) != hi - lo:
            raise AudioError(f"{name}: changed while being read (wanted {hi - lo} frames at {lo}, got {len(block)})")
        return to_mono(block)

    return Audio(LazySamples(frames, read, name), sr, channels, name, levels.notes(channels, src, frames))


def from_array(samples: np.ndarray, sr: int, name: str = "<array>") -> Audio:
    """Wrap an in-memory signal ((n,) or (n, channels)) after the same checks as load_audio."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise AudioError(f"{name}: expected a 1-D or (samples, channels) array, got shape {x.shape}")
    check_samples(x, int(sr), name)
    channels = 1 if x.ndim == 1 else x.shape[1]
    return Audio(to_mono(x), int(sr), channels, name, _Levels(x).notes(channels))


def audio_files(d: Path) -> list[Path]:
    """The audio files directly in folder ``d`` (by extension, :data:`AUDIO_EXTENSIONS`), sorted."""
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
