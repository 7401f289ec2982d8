"""OpenL3 in numpy + ONNX Runtime: openl3 0.4.2's framing, kapre 0.3.7's spectrograms, the CNN in ORT.

Reproduces ``openl3.get_audio_embedding(audio, sr, model=..., frontend='kapre', center=True,
hop_size=h)`` (openl3 0.4.2, Cramer et al. 2019):

* resample to 48 kHz with resampy 0.2.x's ``kaiser_best`` filter (openl3 0.4.2 pins
  ``resampy<0.3``; that filter differs from resampy >= 0.3's, see ``pqeval.resample``);
* ``_preprocess_audio_batch``: prepend 24000 zeros (``center=True``), pad the end with zeros so
  that every sample falls in a window (to at least one whole window), cut 1 s windows (48000
  samples) every ``int(hop_size * 48000)`` samples; window i is stamped ``i * hop_size`` seconds;
  the windows go to the model as float32;
* the kapre 0.3.7 layers openl3 builds in front of its CNN (``openl3.models.__fix_kapre_spec``):
  ``tf.signal.stft`` with a periodic Hann window as long as the FFT, hop 242, no centring
  (``linear``: n_fft 512, no end padding -> 197 frames; ``mel128``/``mel256``: n_fft 2048,
  ``pad_end=True`` -> ceil(48000 / 242) = 199 frames), magnitude, for mel the
  ``librosa.filters.mel(sr=48000, n_fft=2048, n_mels, fmin=0, fmax=24000, htk=False,
  norm='slaney')`` filterbank in float32, then openl3's "kapre 0.1.4" decibel conversion
  ``max(10 log10(max(S, 1e-10)) - max_window(...), -80)`` (the max is over the whole window),
  transposed to the CNN's layout [batch, freq, time, 1].

The ONNX file (``pqeval export openl3``) holds the CNN after that spectrogram: input
``spectrogram`` [B, F, T, 1] float32 (dynamic B), output ``embedding`` [B, 512 or 6144].
Compute is > 99 % in the CNN (~20 GFLOP per window for mel256), so features are made per batch
of windows and memory stays bounded by ``batch_size`` however long the clip is.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from .audio import as_signal
from .embedding import Embedding
from .errors import AudioError, ModelError, UsageError
from .registry import OPENL3, OPENL3_CONTENT_TYPES, OPENL3_EMBEDDING_SIZES, OPENL3_INPUT_REPRS, OPENL3_NATIVE_HOP
from .resample import RangeResampler, output_length, resample
from .threads import blas_single_thread

SAMPLE_RATE = OPENL3.sample_rate  # 48 kHz, the rate every OpenL3 model runs at
RESAMPLER = "kaiser_best_0.2"  # openl3 0.4.2 requires resampy<0.3
WINDOW_SECONDS = 1.0  # one embedding per 1 s window
FRAME_LENGTH = 48000  # samples per window (openl3's frame_len = TARGET_SR)
DEFAULT_HOP = OPENL3_NATIVE_HOP  # s, openl3's own hop_size default (pqeval scores at registry.DEFAULT_HOP)
HOP_LENGTH = 242  # STFT hop in samples (all input representations)
DB_AMIN = 1e-10  # floor on the magnitude before log10
DB_REF = 1.0
DB_DYNAMIC_RANGE = 80.0  # dB below the window's maximum that are kept
INPUT_REPRS = OPENL3_INPUT_REPRS
CONTENT_TYPES = OPENL3_CONTENT_TYPES
EMBEDDING_SIZES = OPENL3_EMBEDDING_SIZES
INPUT_NAME = "spectrogram"
OUTPUT_NAME = "embedding"

_N_FFT = {"linear": 512, "mel128": 2048, "mel256": 2048}
_N_MELS = {"linear": None, "mel128": 128, "mel256": 256}
_PAD_END = {"linear": False, "mel128": True, "mel256": True}
_FFT_ROWS = 40  # STFT frames per FFT call (buffers of 40 x 2048 values stay in the CPU's cache)
_RFFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"  # np.fft.rfft(..., out=)


def n_stft_frames(input_repr: str) -> int:
    """STFT frames per 1 s window: 197 for linear (no end padding), 199 for the mel inputs."""
    n_fft = _N_FFT[input_repr]
    if _PAD_END[input_repr]:
        return -(-FRAME_LENGTH // HOP_LENGTH)  # tf.signal.frame(pad_end=True): ceil(n / hop)
    return 1 + (FRAME_LENGTH - n_fft) // HOP_LENGTH


def frontend_params(input_repr: str) -> dict:
    """The spectrogram parameters of one input representation (recorded in the ONNX metadata)."""
    if input_repr not in INPUT_REPRS:
        raise ValueError(f"input_repr must be one of {INPUT_REPRS}, got {input_repr!r}")
    n_fft, n_mels = _N_FFT[input_repr], _N_MELS[input_repr]
    n_bins = n_mels if n_mels else n_fft // 2 + 1
    p = {
        "input_repr": input_repr,
        "sample_rate": SAMPLE_RATE,
        "window_seconds": WINDOW_SECONDS,
        "center": True,
        "resampler": "resampy 0.2 kaiser_best",
        "n_fft": n_fft,
        "win_length": n_fft,
        "hop_length": HOP_LENGTH,
        "window": "periodic hann",
        "stft_center": False,
        "pad_end": _PAD_END[input_repr],
        "magnitude": "abs",
        "n_mels": n_mels,
        "mel_scale": "slaney" if n_mels else None,
        "mel_norm": "slaney" if n_mels else None,
        "fmin": 0.0 if n_mels else None,
        "fmax": SAMPLE_RATE / 2.0 if n_mels else None,
        "db": "10*log10(max(S, amin)) - max over window, floored at -dynamic_range (kapre 0.1.4)",
        "db_amin": DB_AMIN,
        "db_ref": DB_REF,
        "db_dynamic_range": DB_DYNAMIC_RANGE,
        "input_shape": [n_bins, n_stft_frames(input_repr), 1],
        "input_layout": "batch, freq, time, channel",
    }
    return p


# --- Slaney mel scale and filterbank, as librosa 0.10/0.11 (htk=False, norm='slaney') ---------

_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(freqs: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa ``hz_to_mel(htk=False)``): linear below 1 kHz, log above."""
    f = np.asanyarray(freqs, dtype=np.float64)
    mels = f / _F_SP
    return np.where(f >= _MIN_LOG_HZ, _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mels)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel` (librosa ``mel_to_hz(htk=False)``)."""
    m = np.asanyarray(mels, dtype=np.float64)
    freqs = _F_SP * m
    return np.where(
        m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL)), freqs
    )


@lru_cache(maxsize=8)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """[n_mels, n_fft//2 + 1] float32, equal to ``librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=)``.

    Same operations in the same order, including librosa's float32 weight array (rows are
    rounded to float32 before the Slaney area normalisation), which kapre then uses as is.
    """
    fmax = float(sr) / 2 if fmax is None else fmax
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    weights.setflags(write=False)
    return weights


class OpenL3Frontend:
    """1 s windows at 48 kHz [B, 48000] -> kapre-compatible dB spectrograms [B, F, T, 1] float32.

    Built once per input representation (window and filterbank precomputed); F is 257 (linear),
    128 or 256 (mel); T is 197 (linear) or 199 (mel).
    """

    def __init__(self, input_repr: str = "mel256") -> None:
        if input_repr not in INPUT_REPRS:
            raise ValueError(f"input_repr must be one of {INPUT_REPRS}, got {input_repr!r}")
        self.input_repr = input_repr
        self.n_fft = _N_FFT[input_repr]
        self.n_mels = _N_MELS[input_repr]
        self.pad_end = _PAD_END[input_repr]
        self.n_frames = n_stft_frames(input_repr)
        n = np.arange(self.n_fft)
        self.window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.n_fft)  # periodic Hann (tf.signal.hann_window)
        # The mel filterbank [n_mels, n_freq] is 99 % zeros (each bin feeds at most two triangles:
        # 2031 of 262,400 weights for mel256), so it is applied as a gather of each band's bins and
        # a per-band sum: equal to kapre's dense tensordot up to summation order (~1e-16), and
        # faster (docs/measurements.md).
        self._mel_sparse = None
        if self.n_mels:
            fb = mel_filterbank(SAMPLE_RATE, self.n_fft, self.n_mels).astype(np.float64)
            band, bins = np.nonzero(fb)  # sorted by band
            if len(np.unique(band)) != self.n_mels:  # reduceat needs every band to have a bin
                raise ValueError(f"{input_repr}: a mel band without FFT bins")
            starts = np.flatnonzero(np.r_[True, band[1:] != band[:-1]])
            self._mel_sparse = (bins, fb[band, bins], starts)
        self._scratch = threading.local()  # per-thread work buffers: see _buffers

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_scratch"]  # per-thread buffers are not part of the frontend's state
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._scratch = threading.local()

    def _buffers(self) -> dict[str, np.ndarray]:
        """This thread's work buffers for _FFT_ROWS frames, made once and reused: fresh arrays of
        this size (0.3-0.7 MB) can cost page faults on every call, more than the work on them."""
        b = getattr(self._scratch, "buffers", None)
        if b is None:
            rows, n_freq = min(self.n_frames, _FFT_ROWS), self.n_fft // 2 + 1
            b = {
                "windowed": np.empty((rows, self.n_fft)),
                "spectrum": np.empty((rows, n_freq), dtype=np.complex128),
                "magnitude": np.empty((rows, n_freq)),
                "weighted": np.empty((rows, len(self._mel_sparse[0]) if self._mel_sparse else 0)),
            }
            self._scratch.buffers = b
        return b

    def _stft(self, windows: np.ndarray, target) -> Iterator[tuple[int, int, np.ndarray]]:
        """|STFT| of each window, _FFT_ROWS frames at a time in reused buffers: the magnitudes of
        window i, frames [r, r + m) go to ``target(i, r, m)`` (a float64 [m, n_fft//2 + 1] array),
        and (i, r, that array) is yielded. Per frame the same values as one
        ``abs(rfft(frames * window))`` of all frames."""
        x = np.asarray(windows)
        if x.ndim != 2:
            raise ValueError(f"windows must be [B, samples], got shape {x.shape}")
        b, width = x.shape
        if self.pad_end:  # tf.signal.frame(pad_end=True): zeros so that ceil(n / hop) frames fit
            need = (self.n_frames - 1) * HOP_LENGTH + self.n_fft
            if need < width:
                raise ValueError(f"windows of {width} samples are longer than the {need} this frontend frames")
            padded = np.zeros((b, need))
            padded[:, :width] = x
            x = padded
        else:
            x = np.asarray(x, dtype=np.float64)
        frames = np.lib.stride_tricks.as_strided(
            x,
            shape=(b, self.n_frames, self.n_fft),
            strides=(x.strides[0], x.strides[1] * HOP_LENGTH, x.strides[1]),
            writeable=False,
        )
        buffers = self._buffers()
        windowed, spectrum = buffers["windowed"], buffers["spectrum"]
        rows = len(windowed)
        for i in range(b):
            for r in range(0, self.n_frames, rows):
                m = min(rows, self.n_frames - r)
                np.multiply(frames[i, r : r + m], self.window, out=windowed[:m])
                z = np.fft.rfft(windowed[:m], out=spectrum[:m]) if _RFFT_OUT else np.fft.rfft(windowed[:m])
                yield i, r, np.abs(z, out=target(i, r, m))

    def magnitude(self, windows: np.ndarray) -> np.ndarray:
        """[B, 48000] -> |STFT| [B, T, n_fft//2 + 1] float64 (tf.signal.stft framing, no centring)."""
        out = np.empty((len(windows), self.n_frames, self.n_fft // 2 + 1))
        for _ in self._stft(windows, lambda i, r, m: out[i, r : r + m]):
            pass
        return out

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """[B, 48000] waveform windows -> [B, F, T, 1] float32 dB spectrograms (0 dB max, >= -80 dB)."""
        if self._mel_sparse is None:
            spec = np.ascontiguousarray(self.magnitude(windows).transpose(0, 2, 1))  # [B, n_freq, T]
        else:
            # Per block of frames: each band's weighted bins summed (np.add.reduceat: the band's
            # first value plus numpy's sum of the rest), per value the same additions in the same
            # order as kapre's layout [B, n_freq, T] reduced along axis 1, written to [B, n_mels, T].
            bins, weights, starts = self._mel_sparse
            spec = np.empty((len(windows), len(starts), self.n_frames))
            buffers = self._buffers()
            mag, weighted = buffers["magnitude"], buffers["weighted"]
            for i, r, block in self._stft(windows, lambda i, r, m: mag[:m]):
                m = len(block)
                np.take(block, bins, axis=1, out=weighted[:m])
                np.multiply(weighted[:m], weights, out=weighted[:m])
                np.add.reduceat(weighted[:m], starts, axis=1, out=spec[i, :, r : r + m].T)
        np.maximum(spec, DB_AMIN, out=spec)
        if DB_REF != 1.0:  # x / 1.0 is x
            spec /= DB_REF
        log_spec = np.log10(spec, out=spec)
        log_spec *= 10.0
        log_spec -= log_spec.max(axis=(1, 2), keepdims=True)
        np.maximum(log_spec, -DB_DYNAMIC_RANGE, out=log_spec)
        return np.ascontiguousarray(log_spec[..., None], dtype=np.float32)


def resample_to_48k(x: np.ndarray, sr: int) -> np.ndarray:
    """Mono signal at ``sr`` Hz -> 48 kHz float64, as resampy 0.2.x's ``kaiser_best`` (openl3 0.4.2
    requires resampy<0.3; resampy 0.3's filter instead costs cosine ~0.998 at 44.1 kHz)."""
    sr = int(sr)
    if sr <= 0:
        raise AudioError(f"sample rate must be positive, got {sr}")
    return resample(x, sr, SAMPLE_RATE, filter=RESAMPLER)


# --- openl3 0.4.2 framing (_preprocess_audio_batch) ------------------------------------------


def hop_samples(hop_size: float) -> int:
    """Window hop in 48 kHz samples exactly as openl3 computes it: ``int(hop_size * 48000)``."""
    return int(hop_size * SAMPLE_RATE)


def num_windows(n_samples: int, hop_size: float = DEFAULT_HOP, center: bool = True) -> int:
    """Number of 1 s windows openl3 cuts from ``n_samples`` samples at 48 kHz (at least 1)."""
    hop_len = hop_samples(hop_size)
    n = n_samples + (FRAME_LENGTH // 2 if center else 0)
    if n < FRAME_LENGTH:
        pad = FRAME_LENGTH - n
    else:
        pad = int(np.ceil((n - FRAME_LENGTH) / float(hop_len))) * hop_len - (n - FRAME_LENGTH)
    n += max(pad, 0)
    return 1 + int((n - FRAME_LENGTH) / float(hop_len))


def window_times(n: int, hop_size: float = DEFAULT_HOP) -> np.ndarray:
    """Timestamps (s) openl3 reports for n windows: ``arange(n) * hop_size``."""
    return np.arange(n) * hop_size


def window_span(first: int, count: int, hop_size: float, center: bool = True) -> tuple[int, int]:
    """[start, stop) in 48 kHz samples of the unpadded signal that windows first..first+count-1 read."""
    hop_len = hop_samples(hop_size)
    offset = FRAME_LENGTH // 2 if center else 0
    return first * hop_len - offset, (first + count - 1) * hop_len - offset + FRAME_LENGTH


def cut_windows(
    x48: np.ndarray,
    first: int,
    count: int,
    hop_size: float,
    center: bool = True,
    base: int = 0,
    total: int | None = None,
) -> np.ndarray:
    """Windows ``first .. first+count-1`` of a 48 kHz signal, zero-padded as openl3: [count, 48000] float32.

    Reads straight from the unpadded signal, so no padded copy of a long clip is ever made.
    ``x48`` may be a block of the signal starting at sample ``base`` of a signal ``total``
    samples long (default: the whole signal).
    """
    hop_len = hop_samples(hop_size)
    offset = FRAME_LENGTH // 2 if center else 0
    total = len(x48) if total is None else total
    out = np.zeros((count, FRAME_LENGTH), dtype=np.float32)
    for k in range(count):
        start = (first + k) * hop_len - offset
        lo, hi = max(start, 0), min(start + FRAME_LENGTH, total)
        if hi > lo:
            out[k, lo - start : hi - start] = x48[lo - base : hi - base]
    return out


class OpenL3Embedder:
    """OpenL3 embeddings of a clip, ``batch_size`` windows per ORT call.

    ``hop`` (s) sets the window hop; each window costs a full CNN pass (~20 GFLOP for mel256),
    so hop 0.1 is ten windows per second of audio and hop 0.5 two. ``batch_size``: windows per
    ORT call; 1 is fastest and smallest (docs/measurements.md).
    """

    name = OPENL3.name

    def __init__(self, model, hop: float = DEFAULT_HOP, batch_size: int = 1, center: bool = True) -> None:
        if not hop > 0 or hop_samples(hop) < 1:
            raise UsageError(f"hop must be a positive number of seconds (>= 1/48000), got {hop!r}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size!r}")
        self.model = model
        self.hop = float(hop)
        self.batch_size = int(batch_size)
        self.center = bool(center)
        self.frontend = OpenL3Frontend(self._input_repr(model))

    @staticmethod
    def _input_repr(model) -> str:
        """The input representation the model file was exported for; ModelError if unusable."""
        raw = model.metadata.get("pqeval.frontend")
        try:
            params = json.loads(raw)
            input_repr = params["input_repr"]
            expected = frontend_params(input_repr)
        except (TypeError, ValueError, KeyError):
            raise ModelError(f"{model.path}: no usable OpenL3 frontend description in its metadata") from None
        if params != expected:
            diff = sorted(k for k in set(params) | set(expected) if params.get(k) != expected.get(k))
            raise ModelError(
                f"{model.path}: exported with frontend parameters this runtime does not compute ({', '.join(diff)})"
            )
        return input_repr

    def run_windows(self, windows: np.ndarray) -> np.ndarray:
        """[B, 48000] float32 windows -> [B, D] float32 embeddings (one ORT call)."""
        return self.model.run({INPUT_NAME: self.frontend(windows)})[0]

    def embed(self, audio: np.ndarray, sr: int) -> Embedding:
        """Mono float signal at ``sr`` Hz -> Embedding with frames [N, D] float32, times N × hop (s).

        Clips under 1 s (at 48 kHz) are zero-padded to one window, as openl3 does, and say so in
        ``Embedding.notes``.
        """
        x = as_signal(audio)  # an array, or LazySamples read batch by batch
        if x.ndim != 1:
            raise AudioError(f"OpenL3 expects a mono 1-D signal, got shape {x.shape}")
        if x.size == 0:
            raise AudioError("OpenL3 got an empty signal")
        if int(sr) <= 0:
            raise AudioError(f"sample rate must be positive, got {sr}")
        n48 = output_length(len(x), sr, SAMPLE_RATE, RESAMPLER)
        if n48 < 1:
            raise AudioError(f"{len(x)} samples are too few to resample from {sr} Hz to {SAMPLE_RATE} Hz")
        notes: tuple[str, ...] = ()
        if n48 < FRAME_LENGTH:
            notes = (
                f"clip is {n48 / SAMPLE_RATE:.3f} s, shorter than OpenL3's 1 s window: "
                "zero-padded to one window, as openl3 does",
            )
        n = num_windows(n48, self.hop, self.center)
        x48 = RangeResampler(x, sr, SAMPLE_RATE, RESAMPLER)  # overlapping windows share resampled chunks
        parts = []
        with blas_single_thread():  # numpy between ORT runs must not fight ORT's threads (threads.py)
            for first in range(0, n, self.batch_size):  # resample only what this batch reads: bounded memory
                count = min(self.batch_size, n - first)
                a, b = window_span(first, count, self.hop, self.center)
                a, b = max(a, 0), min(b, n48)
                block = x48.view(a, b)  # = resample_range(x, sr, 48000, a, b, RESAMPLER)
                parts.append(
                    self.run_windows(cut_windows(block, first, count, self.hop, self.center, base=a, total=n48))
                )
        frames = np.concatenate(parts).astype(np.float32, copy=False)
        key = getattr(self.model, "key", self.name)
        return Embedding(frames, window_times(n, self.hop), key, self.model.weights, notes)
