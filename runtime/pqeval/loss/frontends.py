"""pqeval's VGGish and OpenL3 frontends in PyTorch, differentiable end to end.

Each stage is a small ``torch.nn.Module`` built from the very numpy constants pqeval's evaluator
uses (``pqeval.resample.polyphase_filter``, ``pqeval.vggish.VGGishFrontend``,
``pqeval.openl3.OpenL3Frontend`` / ``mel_filterbank``), so the loss and the score cannot drift
apart:

* :class:`Resampler`: resampy ``kaiser_best`` as a strided ``conv1d`` with the polyphase filter,
  plus resampy's float-time quirk (the few outputs whose float time register fell below an
  integer are recomputed tap by tap, as ``pqeval.resample`` does);
* :class:`STFTMagnitude`: framing (``unfold``) and ``|DFT|`` as one matmul with the window folded
  into a cos/sin matrix (tf.signal.stft's ``pad_end`` for OpenL3's mel inputs);
* :class:`LogMel`: VGGish's mel matrix and ``log(mel + 0.01)``;
* :class:`Mel` and :class:`KapreDB`: OpenL3's Slaney mel filterbank and kapre's decibels,
  ``max(10 log10(max(S, 1e-10)) - max over the window, -80)``.

Every stage computes in the dtype of its input (float32 or float64). The constants are made in
float64 by numpy, then rounded once to that dtype (cached per dtype and device), so a float64
pass is the evaluator's arithmetic up to summation order.

Gradients where the functions are not differentiable (docs/loss.md):

* ``|z|`` at ``z = 0`` (silence): 0 (subgradient); the value is exactly 0 as in numpy.
* ``max(S, 1e-10)``: the gradient reaches ``S`` only where ``S > 1e-10``; 0 at or below.
* the per-window maximum: ``torch.amax``'s, i.e. the derivative of ``x_i - max(x)`` flows to
  the maximum element as well (``-1`` per unit of every other element's gradient), split evenly
  among elements that tie for the maximum.
* the -80 dB floor: the gradient passes only strictly above the floor; 0 at and below it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import openl3 as _openl3
from .. import vggish as _vggish
from ..errors import AudioError, UsageError
from ..registry import DEFAULT_HOP
from ..resample import (
    DEFAULT_FILTER,
    FILTERS,
    half_window,
    output_length,
    polyphase_filter,
    time_register,
)


class _Stage(nn.Module):
    """A stage whose constant tensors are made from float64 numpy arrays in the input's dtype and device."""

    def __init__(self) -> None:
        super().__init__()
        self._arrays: dict[str, np.ndarray] = {}
        self._tensors: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    def _const(self, name: str, like: Tensor) -> Tensor:
        key = (name, like.dtype, like.device)
        t = self._tensors.get(key)
        if t is None:
            t = torch.as_tensor(self._arrays[name], dtype=like.dtype, device=like.device)
            self._tensors[key] = t
        return t


def _as_batch(x: Tensor, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"{what}: expected a float tensor of shape (batch, samples), got {tuple(x.shape)} {x.dtype}")
    return x


# --- resampling ----------------------------------------------------------------------------


_MIN_ROW_OUTPUTS = 64  # as pqeval.resample's GEMM rows
_MAX_TAPS = 1 << 23  # as pqeval.resample's largest GEMM plan; beyond it the conv weight alone is > 64 MB


class Resampler(_Stage):
    """resampy ``kaiser_best`` from ``sr_in`` to ``sr_out`` Hz: (B, n) -> (B, int(n * sr_out / sr_in)).

    filter: "kaiser_best_0.2" (resampy 0.2.x, default) or "kaiser_best_0.3" (see pqeval.resample).
    A linear map of the input: the polyphase filter taps ``pqeval.resample.polyphase_filter`` gives
    run as ``conv1d`` with ``up`` output channels and stride ``down``, the outputs of each row
    interleaved. Equal to ``pqeval.resample.resample`` up to summation order (float64: ~1e-15).
    """

    def __init__(self, sr_in: int, sr_out: int, filter: str = DEFAULT_FILTER) -> None:
        super().__init__()
        if int(sr_in) <= 0 or int(sr_out) <= 0:
            raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
        if filter not in FILTERS:
            raise ValueError(f"filter must be one of {', '.join(FILTERS)}, got {filter!r}")
        self.sr_in, self.sr_out, self.filter = int(sr_in), int(sr_out), filter
        self._flips: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}
        if self.sr_in == self.sr_out:
            self.up = self.down = 1
            return
        up, down, taps = polyphase_filter(self.sr_in, self.sr_out, filter)
        half = (len(taps) - 1) // 2
        # ``group`` periods of the filter per row: at least 64 output channels, which keeps the
        # convolution a reasonable GEMM (one channel per phase alone runs 3-25x slower in float64).
        group = max(1, -(-_MIN_ROW_OUTPUTS // up))
        up, down = group * up, group * down
        # Output t = r*up + p reads input r*down + m with weight taps[p*down/group + half - m*up/group].
        step = up // group
        m = np.arange(-(half // step) - 1, ((up - 1) * (down // group) + half) // step + 2)
        if up * len(m) > _MAX_TAPS:  # checked before the [K, up] matrix is made
            raise UsageError(
                f"resampling {self.sr_in} -> {self.sr_out} Hz needs a polyphase filter of {up * len(m):,} taps "
                f"(the rates' ratio reduces to {up // group}/{down // group}); resample to a common rate first"
            )
        idx = np.arange(up)[None, :] * (down // group) + half - m[:, None] * step  # [K, up]
        ok = (idx >= 0) & (idx < len(taps))
        h = np.where(ok, taps[np.clip(idx, 0, len(taps) - 1)], 0.0)
        used = np.flatnonzero(ok.any(axis=1))
        h = h[used[0] : used[-1] + 1]
        self.up, self.down = up, down
        self.first = int(m[used[0]])  # <= 0: the input offset of a row's first tap
        self.kernel = h.shape[0]
        self._arrays["weight"] = np.ascontiguousarray(h.T[:, None, :])  # [up, 1, K], conv1d correlates

    def output_length(self, n: int) -> int:
        """Output samples for ``n`` input samples, as resampy computes it."""
        return n if self.sr_in == self.sr_out else output_length(n, self.sr_in, self.sr_out, self.filter)

    def forward(self, x: Tensor) -> Tensor:
        x = _as_batch(x, "Resampler input")
        if self.sr_in == self.sr_out:
            return x
        b, n = x.shape
        n_out = self.output_length(n)
        if n_out < 1:
            raise AudioError(f"{n} samples are too few to resample from {self.sr_in} Hz to {self.sr_out} Hz")
        rows = -(-n_out // self.up)
        left = -self.first
        right = max(0, (rows - 1) * self.down + self.kernel - left - n)
        xp = F.pad(x[:, None, :], (left, right))
        y = F.conv1d(xp, self._const("weight", x), stride=self.down)[:, :, :rows]  # [B, up, rows]
        y = y.transpose(1, 2).reshape(b, -1)[:, :n_out]
        fix = self._flip_fix(n)
        if fix is not None:
            pos, src, w = (torch.as_tensor(a, device=x.device) for a in fix)
            values = (x[:, src] * w.to(x.dtype)).sum(-1)  # [B, F]
            y = y.index_copy(1, pos, values)
        return y

    def _flip_fix(self, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(outputs, input index [F, W], weight [F, W]) of the outputs resampy computes at its float
        time where that time fell just below an integer (pqeval.resample's ``_fix_flips``)."""
        if n_in not in self._flips:
            self._flips[n_in] = _flip_taps(n_in, self.sr_in, self.sr_out, self.filter)
            if len(self._flips) > 64:
                self._flips.pop(next(iter(self._flips)))
        return self._flips[n_in]


def _flip_taps(n_in: int, sr_in: int, sr_out: int, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    spec = FILTERS[name]
    scale = min(1.0, float(sr_out) / sr_in)
    step = int(scale * spec.per_zero)
    if scale * spec.per_zero == step:  # exact table steps: no output ever flips
        return None
    up, down, _ = polyphase_filter(sr_in, sr_out, name)
    n_out = output_length(n_in, sr_in, sr_out, name)
    tr = time_register(0, n_out, sr_in, sr_out, name)
    flipped = np.flatnonzero(tr.astype(np.int64) != (np.arange(n_out, dtype=np.int64) * down) // up)
    if flipped.size == 0:
        return None
    win = half_window(name) * scale
    delta = np.diff(win, append=win[-1])
    t = tr[flipped]
    n = t.astype(np.int64)
    width = len(win) // step + 1
    i = np.arange(width)
    srcs, weights = [], []
    frac = scale * (t - n)
    for side in (0, 1):  # left wing reads x[n - i], right wing x[n + 1 + i]; as resampy's loop
        index_frac = frac * spec.per_zero
        pos = index_frac.astype(np.int64)
        eta = index_frac - pos
        limit = n + 1 if side == 0 else n_in - n - 1
        count = np.maximum(0, np.minimum(limit, (len(win) - pos) // step))
        valid = i[None, :] < count[:, None]
        tab = np.where(valid, pos[:, None] + i * step, 0)
        src = n[:, None] - i if side == 0 else n[:, None] + 1 + i
        srcs.append(np.where(valid, src, 0))
        weights.append(np.where(valid, win[tab] + eta[:, None] * delta[tab], 0.0))
        frac = scale - frac
    return flipped, np.concatenate(srcs, axis=1), np.concatenate(weights, axis=1)


# --- framing and spectra -------------------------------------------------------------------


def _safe_magnitude(re: Tensor, im: Tensor) -> Tensor:
    """sqrt(re² + im²), exactly 0 at 0 with gradient 0 there (not NaN)."""
    power = re * re + im * im
    nonzero = power > 0
    root = torch.sqrt(torch.where(nonzero, power, torch.ones_like(power)))
    return torch.where(nonzero, root, torch.zeros_like(power))


class STFTMagnitude(_Stage):
    """Frames of ``frame_length`` samples every ``hop`` and their |DFT| with ``n_fft`` points:
    (B, n) -> (B, frames, n_fft // 2 + 1).

    ``window`` (frame_length,) multiplies each frame (folded into the DFT matrix); frames are
    zero-padded to ``n_fft``. pad_end=False: complete frames only, ``1 + (n - frame_length) // hop``
    (numpy framing, VGGish); pad_end=True: ``ceil(n / hop)`` frames over zeros appended at the end
    (tf.signal.stft ``pad_end=True``, OpenL3's mel inputs).
    """

    def __init__(self, frame_length: int, hop: int, n_fft: int, window: np.ndarray, pad_end: bool = False) -> None:
        super().__init__()
        if len(window) != frame_length or frame_length > n_fft:
            raise ValueError(f"window of {len(window)} for frames of {frame_length} and an FFT of {n_fft}")
        self.frame_length, self.hop, self.n_fft, self.pad_end = int(frame_length), int(hop), int(n_fft), pad_end
        self.bins = n_fft // 2 + 1
        t = np.arange(frame_length)[:, None]
        k = np.arange(self.bins)[None, :]
        angle = 2.0 * np.pi * ((t * k) % n_fft) / n_fft  # exact integer phase before the float multiply
        w = np.asarray(window, dtype=np.float64)[:, None]
        self._arrays["dft"] = np.concatenate([w * np.cos(angle), w * np.sin(angle)], axis=1)  # [L, 2 * bins]

    def n_frames(self, n: int) -> int:
        """Frames of a signal of ``n`` samples."""
        if self.pad_end:
            return -(-n // self.hop)
        return max(0, 1 + (n - self.frame_length) // self.hop)

    def forward(self, x: Tensor, n_frames: int | None = None) -> Tensor:
        """(B, n) -> |STFT| (B, frames, bins); ``n_frames`` keeps only the first frames."""
        x = _as_batch(x, "STFT input")
        nf = self.n_frames(x.shape[1]) if n_frames is None else n_frames
        need = (nf - 1) * self.hop + self.frame_length
        if x.shape[1] < need:
            if not self.pad_end and n_frames is None:
                raise AssertionError("complete frames need no padding")  # a bug
            x = F.pad(x, (0, need - x.shape[1]))
        frames = x[:, :need].unfold(1, self.frame_length, self.hop)  # [B, nf, L], a view
        z = frames @ self._const("dft", x)  # [B, nf, 2 * bins]
        return _safe_magnitude(z[..., : self.bins], z[..., self.bins :])


class LogMel(_Stage):
    """VGGish's ``log(|X| @ mel_matrix + offset)``: (..., bins) -> (..., mel bands)."""

    def __init__(self, mel_matrix: np.ndarray, offset: float = _vggish.LOG_OFFSET) -> None:
        super().__init__()
        self._arrays["mel"] = np.asarray(mel_matrix, dtype=np.float64)  # [bins, mel]
        self.offset = float(offset)

    def forward(self, magnitude: Tensor) -> Tensor:
        return torch.log(magnitude @ self._const("mel", magnitude) + self.offset)


class Mel(_Stage):
    """A mel filterbank as a matmul, in the CNN's layout: (B, frames, bins) -> (B, mel bands, frames)."""

    def __init__(self, filterbank: np.ndarray) -> None:
        super().__init__()
        self._arrays["fb"] = np.ascontiguousarray(np.asarray(filterbank, dtype=np.float64).T)  # [bins, mel]

    def forward(self, magnitude: Tensor) -> Tensor:
        return (magnitude @ self._const("fb", magnitude)).transpose(1, 2)


class KapreDB(nn.Module):
    """openl3's kapre-0.1.4 decibels of a window: (B, F, T) -> (B, F, T), 0 dB at the window's
    maximum, floored at ``-dynamic_range``: ``max(10 log10(max(S, amin) / ref) - max, -dynamic_range)``.

    Gradients (the module docstring): none below ``amin`` or at and below the floor; the maximum is
    ``torch.amax`` (the gradient reaches the maximal element, split evenly among ties).
    """

    def __init__(
        self,
        amin: float = _openl3.DB_AMIN,
        ref: float = _openl3.DB_REF,
        dynamic_range: float = _openl3.DB_DYNAMIC_RANGE,
    ) -> None:
        super().__init__()
        self.amin, self.ref, self.dynamic_range = float(amin), float(ref), float(dynamic_range)

    def forward(self, spec: Tensor) -> Tensor:
        if spec.ndim != 3:
            raise ValueError(f"expected spectrograms (batch, freq, time), got {tuple(spec.shape)}")
        s = torch.where(spec > self.amin, spec, torch.full_like(spec, self.amin))
        db = 10.0 * torch.log10(s / self.ref)
        db = db - torch.amax(db, dim=(1, 2), keepdim=True)
        floor = torch.full_like(db, -self.dynamic_range)
        return torch.where(db > floor, db, floor)


# --- the two frontends ---------------------------------------------------------------------


class VGGishFrontend(nn.Module):
    """Waveforms (B, T) at ``sample_rate`` Hz -> VGGish log-mel examples (B, N, 96, 64).

    As ``pqeval.vggish.VGGishFrontend.examples``: resample to 16 kHz (``resampler``), 25 ms
    periodic-Hann frames every 10 ms, |512-point DFT|, 64 HTK mel bands, ``log(mel + 0.01)``,
    non-overlapping 96-frame examples (N = frames // 96, one per 0.96 s; AudioError if N = 0,
    i.e. under 0.975 s).
    """

    def __init__(self, sample_rate: int = 16000, resampler: str = DEFAULT_FILTER) -> None:
        super().__init__()
        ref = _vggish.VGGishFrontend(resampler)
        self.sample_rate = int(sample_rate)
        self.resample = Resampler(self.sample_rate, _vggish.SAMPLE_RATE, resampler)
        self.stft = STFTMagnitude(ref.window_length, ref.hop_length, ref.fft_length, ref.window)
        self.log_mel = LogMel(ref.mel_matrix, _vggish.LOG_OFFSET)
        self.example_frames = ref.example_frames
        self.min_samples = ref.min_samples

    def n_examples(self, n_samples: int) -> int:
        """Examples of a clip of ``n_samples`` samples at ``sample_rate``."""
        n16 = self.resample.output_length(n_samples)
        return self.stft.n_frames(n16) // self.example_frames if n16 >= self.min_samples else 0

    def forward(self, x: Tensor) -> Tensor:
        x = _as_batch(x, "VGGish input")
        n = self.n_examples(x.shape[1])
        if n == 0:
            raise AudioError(
                f"too short for VGGish: {x.shape[1] / self.sample_rate:.3f} s, it needs at least "
                f"{_vggish.VGGISH.min_seconds} s"
            )
        x16 = self.resample(x)
        mel = self.log_mel(self.stft(x16, n * self.example_frames))  # [B, n * 96, 64]
        return mel.reshape(x.shape[0], n, self.example_frames, mel.shape[-1])


class OpenL3Frontend(nn.Module):
    """Waveforms (B, T) at ``sample_rate`` Hz -> OpenL3 dB spectrograms (B, N, F, frames).

    As ``pqeval.openl3.OpenL3Embedder``: resample to 48 kHz (resampy 0.2 kaiser_best), openl3's
    framing (``center``: 0.5 s of zeros first; 1 s windows every ``hop`` s (default: the hop
    ``pqeval score`` uses, registry.DEFAULT_HOP = 0.5 s), zero-padded at the
    end so every sample is in a window), then kapre's spectrogram per window (F x frames: 256 x 199
    for mel256, 128 x 199 mel128, 257 x 197 linear) in decibels (:class:`KapreDB`).

    round_windows: round each window to float32, as openl3 (and so pqeval's evaluator) feeds its
    model float32 windows; the value only, the gradient passes unchanged (straight through). It
    matters: on resampled input the band above the source's Nyquist holds nothing but that
    rounding noise, about -75 dB on kapre's ``10 log10(magnitude)`` scale, inside the 80 dB range
    (up to ~1 dB per bin without it). False gives the smooth function (finite-difference checks).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        input_repr: str = "mel256",
        hop: float = DEFAULT_HOP,
        center: bool = True,
        round_windows: bool = True,
    ) -> None:
        super().__init__()
        ref = _openl3.OpenL3Frontend(input_repr)  # checks input_repr
        if not hop > 0 or _openl3.hop_samples(hop) < 1:
            raise ValueError(f"hop must be a positive number of seconds (>= 1/48000), got {hop!r}")
        self.sample_rate, self.input_repr, self.hop, self.center = int(sample_rate), input_repr, float(hop), center
        self.round_windows = bool(round_windows)
        self.resample = Resampler(self.sample_rate, _openl3.SAMPLE_RATE, _openl3.RESAMPLER)
        self.stft = STFTMagnitude(ref.n_fft, _openl3.HOP_LENGTH, ref.n_fft, ref.window, ref.pad_end)
        self.mel: Mel | None = None
        if ref.n_mels:
            self.mel = Mel(_openl3.mel_filterbank(_openl3.SAMPLE_RATE, ref.n_fft, ref.n_mels))
        self.db = KapreDB()
        self.n_stft_frames = ref.n_frames

    def n_windows(self, n_samples: int) -> int:
        """1 s windows of a clip of ``n_samples`` samples at ``sample_rate`` (at least 1)."""
        return _openl3.num_windows(self.resample.output_length(n_samples), self.hop, self.center)

    def windows(self, x48: Tensor) -> Tensor:
        """48 kHz signals (B, n) -> openl3's windows (B, N, 48000), zero-padded as openl3 pads."""
        n = _openl3.num_windows(x48.shape[1], self.hop, self.center)
        hop = _openl3.hop_samples(self.hop)
        offset = _openl3.FRAME_LENGTH // 2 if self.center else 0
        total = (n - 1) * hop + _openl3.FRAME_LENGTH
        xp = F.pad(x48, (offset, max(0, total - offset - x48.shape[1])))[:, :total]
        w = xp.unfold(1, _openl3.FRAME_LENGTH, hop)
        if self.round_windows and w.dtype != torch.float32:  # the value rounded, the gradient passed through
            w = w + (w.to(torch.float32).to(w.dtype) - w).detach()
        return w

    def spectrogram(self, windows: Tensor) -> Tensor:
        """(M, 48000) windows -> (M, F, frames) dB spectrograms."""
        mag = self.stft(windows, self.n_stft_frames)  # [M, T, bins]
        spec = self.mel(mag) if self.mel is not None else mag.transpose(1, 2)
        return self.db(spec)

    def forward(self, x: Tensor) -> Tensor:
        x = _as_batch(x, "OpenL3 input")
        if x.shape[1] == 0:
            raise AudioError("OpenL3 got an empty signal")
        w = self.windows(self.resample(x))  # [B, N, 48000]
        spec = self.spectrogram(w.reshape(-1, w.shape[-1]))
        return spec.reshape(w.shape[0], w.shape[1], *spec.shape[1:])


def describe(frontend: Any) -> str:
    """One line naming a frontend's settings (for ``repr`` of the losses)."""
    if isinstance(frontend, VGGishFrontend):
        return f"VGGish frontend at {frontend.sample_rate} Hz, resampler {frontend.resample.filter}"
    return (
        f"OpenL3 {frontend.input_repr} frontend at {frontend.sample_rate} Hz, hop {frontend.hop} s, "
        f"center={frontend.center}"
    )
