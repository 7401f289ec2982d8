"""Reference copy of the resampling and frontend code of commit 395b361 (frozen; do not edit).

The bitwise tests in test_frontend_exact.py check the current ``pqeval.resample``,
``pqeval.vggish`` and ``pqeval.openl3`` against these functions: any speed-up of the runtime
must give the same bits as this code. Copied verbatim from ``git show 395b361:runtime/pqeval/...``
(docstrings shortened), except that the embedders' loops are written as functions that return
the float32 arrays the model is fed instead of running a model. Only the filter design
(``FILTERS``, ``polyphase_filter``, ``_scaled_table``, ``output_length``, ``_check``) is imported
from the runtime: it is not part of what is being sped up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from math import gcd

import numpy as np

from pqeval.resample import FILTERS, _check, _scaled_table, output_length, polyphase_filter

# --- pqeval/resample.py ------------------------------------------------------------------------

DEFAULT_FILTER = "kaiser_best_0.2"
_ACCUMULATE_BLOCK = 1 << 20
_register_marks: dict[tuple[int, int], list[float]] = {}


def time_register(start: int, stop: int, sr_in: int, sr_out: int, filter: str = DEFAULT_FILTER) -> np.ndarray:
    inc = 1.0 / (float(sr_out) / sr_in)
    if filter != "kaiser_best_0.2":
        return np.arange(start, stop) * inc
    marks = _register_marks.setdefault((sr_in, sr_out), [0.0])  # value at k * _ACCUMULATE_BLOCK
    k = min(start // _ACCUMULATE_BLOCK, len(marks) - 1)
    value, t = marks[k], k * _ACCUMULATE_BLOCK
    while t < start:  # skip ahead, carrying the running sum exactly
        m = min(_ACCUMULATE_BLOCK, start - t)
        value = float(np.add.accumulate(np.concatenate(([value], np.full(m, inc))))[-1])
        t += m
        if m == _ACCUMULATE_BLOCK and t // _ACCUMULATE_BLOCK == len(marks):
            marks.append(value)
    return np.add.accumulate(np.concatenate(([value], np.full(stop - start - 1, inc))))[: stop - start]


def _needs_flip_fix(sr_in: int, sr_out: int, filter: str) -> bool:
    scale = min(1.0, float(sr_out) / sr_in)
    return scale * FILTERS[filter].per_zero != int(scale * FILTERS[filter].per_zero)


def _fix_flips(
    y: np.ndarray, xs: np.ndarray, offset: int, n_in: int, start: int, sr_in: int, sr_out: int, filter: str
) -> None:
    if not _needs_flip_fix(sr_in, sr_out, filter):
        return
    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    stop = start + y.shape[-1]
    tr = time_register(start, stop, sr_in, sr_out, filter)
    exact = (np.arange(start, stop, dtype=np.int64) * down) // up
    flipped = np.flatnonzero(tr.astype(np.int64) != exact)
    if flipped.size:
        y[flipped] = _direct(xs, offset, n_in, tr[flipped], sr_in, sr_out, filter)


def _direct(xs: np.ndarray, offset: int, n_in: int, tr: np.ndarray, sr_in: int, sr_out: int, filter: str) -> np.ndarray:
    scale = min(1.0, float(sr_out) / sr_in)
    per_zero = FILTERS[filter].per_zero
    win, delta = _scaled_table(sr_in, sr_out, filter)
    step = int(scale * per_zero)
    i = np.arange(_wing_width(sr_in, sr_out, filter))
    out = np.zeros(len(tr))
    for b in range(0, len(tr), _DIRECT_BLOCK):
        t = tr[b : b + _DIRECT_BLOCK]
        n = t.astype(np.int64)
        frac = scale * (t - n)
        for side in (0, 1):  # left wing reads x[n - i], right wing x[n + 1 + i]
            index_frac = frac * per_zero
            pos = index_frac.astype(np.int64)
            eta = index_frac - pos
            limit = n + 1 if side == 0 else n_in - n - 1
            count = np.maximum(0, np.minimum(limit, (len(win) - pos) // step))
            valid = i[None, :] < count[:, None]
            src = (n[:, None] - i if side == 0 else n[:, None] + 1 + i) - offset
            if ((src < 0) | (src >= len(xs)))[valid].any():
                raise AssertionError("resampler input slice does not cover the filter support")  # a bug
            tab = np.where(valid, pos[:, None] + i * step, 0)
            taps = np.where(valid, xs[np.where(valid, src, 0)], 0.0)
            out[b : b + len(t)] += (taps * win[tab]).sum(axis=1) + eta * (taps * delta[tab]).sum(axis=1)
            frac = scale - frac
    return out


def _wing_width(sr_in: int, sr_out: int, filter: str) -> int:
    step = int(min(1.0, float(sr_out) / sr_in) * FILTERS[filter].per_zero)
    return len(_scaled_table(sr_in, sr_out, filter)[0]) // step + 1


_CHUNK_OUTPUTS = 1 << 15
_MIN_ROW_OUTPUTS = 64
_BAND_MIN_COLUMNS = 32


@dataclass(frozen=True)
class _Plan:
    U: int
    D: int
    first: int
    span: int
    bands: tuple
    rows: int


def _bands(H: np.ndarray) -> tuple:
    nz = H != 0

    def split(n: int) -> tuple:
        edges = np.linspace(0, H.shape[1], n + 1).round().astype(int)
        bands = []
        for c0, c1 in zip(edges[:-1], edges[1:], strict=True):
            used = np.flatnonzero(nz[:, c0:c1].any(axis=1))
            band = np.ascontiguousarray(H[used[0] : used[-1] + 1, c0:c1])
            band.setflags(write=False)
            bands.append((int(c0), int(c1), int(used[0]), band))
        return tuple(bands)

    whole = split(1)
    options = [split(n) for n in range(2, H.shape[1] // _BAND_MIN_COLUMNS + 1)]
    best = min(options, key=lambda b: sum(band.size for *_, band in b), default=whole)
    return best if sum(band.size for *_, band in best) <= 0.75 * whole[0][3].size else whole


@functools.lru_cache(maxsize=16)
def _plan(sr_in: int, sr_out: int, name: str) -> _Plan:
    up, down, taps = polyphase_filter(sr_in, sr_out, name)
    half = (len(taps) - 1) // 2
    group = max(1, -(-_MIN_ROW_OUTPUTS // up))
    U, D = group * up, group * down
    m = np.arange(-((len(taps) - 1 - half) // up) - 1, ((U - 1) * down + half) // up + 2)
    idx = np.arange(U)[None, :] * down + half - m[:, None] * up
    ok = (idx >= 0) & (idx < len(taps))
    H = np.where(ok, taps[np.clip(idx, 0, len(taps) - 1)], 0.0)
    used = np.flatnonzero(ok.any(axis=1))
    H = H[used[0] : used[-1] + 1]
    return _Plan(U, D, int(m[used[0]]), H.shape[0], _bands(H), max(1, _CHUNK_OUTPUTS // U))


def _input_span(plan: _Plan, start: int, stop: int, n_out: int, n_in: int) -> tuple[int, int]:
    c0, c1 = start // (plan.rows * plan.U), -(-stop // (plan.rows * plan.U))
    r0, r1 = c0 * plan.rows, min(c1 * plan.rows, -(-n_out // plan.U))
    lo = r0 * plan.D + plan.first - 2
    hi = (r1 - 1) * plan.D + plan.first + plan.span + 2
    return max(0, lo), min(n_in, hi)


def _outputs(plan: _Plan, xs: np.ndarray, offset: int, n_in: int, n_out: int, start: int, stop: int) -> np.ndarray:
    per_chunk = plan.rows * plan.U
    n_rows = -(-n_out // plan.U)
    span = plan.span
    parts = []
    for c in range(start // per_chunk, -(-stop // per_chunk)):
        r0, r1 = c * plan.rows, min((c + 1) * plan.rows, n_rows)
        lo = r0 * plan.D + plan.first  # first input sample of the chunk (may be < 0: zeros)
        seg = np.zeros((r1 - r0 - 1) * plan.D + span)
        a, b = max(lo, 0), min(lo + len(seg), n_in)
        if b > a:
            if a < offset or b > offset + len(xs):
                raise AssertionError("resampler input slice does not cover the chunk")  # a bug, not bad input
            seg[a - lo : b - lo] = xs[a - offset : b - offset]
        rows = np.lib.stride_tricks.as_strided(
            seg, (r1 - r0, span), (plan.D * seg.itemsize, seg.itemsize), writeable=False
        )
        out = np.empty((r1 - r0, plan.U))
        for c0, c1, b0, band in plan.bands:
            out[:, c0:c1] = rows[:, b0 : b0 + band.shape[0]] @ band
        parts.append(out.reshape(-1))
    y = np.concatenate(parts)
    first = (start // per_chunk) * per_chunk
    return y[start - first : stop - first]


_MAX_PLAN_ELEMENTS = 1 << 23
_DIRECT_BLOCK = 2048


def _plan_elements(sr_in: int, sr_out: int, name: str) -> int:
    up, down, taps = polyphase_filter(sr_in, sr_out, name)
    group = max(1, -(-_MIN_ROW_OUTPUTS // up))
    U = group * up
    return ((U - 1) * down + len(taps)) // up * U


def _direct_range(x, n_in: int, start: int, stop: int, sr_in: int, sr_out: int, filter: str) -> np.ndarray:
    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    num = np.arange(start, stop, dtype=np.int64) * down
    whole = num // up
    tr = whole + (num - whole * up) / up  # exact phases, as the GEMM path uses
    if _needs_flip_fix(sr_in, sr_out, filter):  # and resampy's float time where its integer part flips
        reg = time_register(start, stop, sr_in, sr_out, filter)
        tr = np.where(reg.astype(np.int64) == whole, tr, reg)
    width = _wing_width(sr_in, sr_out, filter)
    lo = max(0, int(tr[0]) - width - 1)
    hi = min(n_in, int(tr[-1]) + width + 2)
    return _direct(np.asarray(x[lo:hi], dtype=np.float64), lo, n_in, tr, sr_in, sr_out, filter)


def resample(x: np.ndarray, sr_in: int, sr_out: int, axis: int = -1, filter: str = DEFAULT_FILTER) -> np.ndarray:
    sr_in, sr_out = _check(sr_in, sr_out, filter)
    x = np.asarray(x, dtype=np.float64)
    if sr_in == sr_out:
        return x
    n_out = output_length(x.shape[axis], sr_in, sr_out, filter)
    rows = np.moveaxis(x, axis, -1)
    y = np.empty(rows.shape[:-1] + (n_out,))
    for i in np.ndindex(rows.shape[:-1]):
        y[i] = resample_range(rows[i], sr_in, sr_out, 0, n_out, filter)
    return np.moveaxis(y, -1, axis)


def resample_range(x, sr_in: int, sr_out: int, start: int, stop: int, filter: str = DEFAULT_FILTER) -> np.ndarray:
    sr_in, sr_out = _check(sr_in, sr_out, filter)
    n_in = len(x)
    n_out = output_length(n_in, sr_in, sr_out, filter)
    start, stop = max(0, int(start)), min(int(stop), n_out)
    if start >= stop:
        return np.zeros(0)
    if sr_in == sr_out:
        return np.array(x[start:stop], dtype=np.float64)
    if _plan_elements(sr_in, sr_out, filter) > _MAX_PLAN_ELEMENTS:
        return _direct_range(x, n_in, start, stop, sr_in, sr_out, filter)
    plan = _plan(sr_in, sr_out, filter)
    lo, hi = _input_span(plan, start, stop, n_out, n_in)
    xs = np.asarray(x[lo:hi], dtype=np.float64)
    y = _outputs(plan, xs, lo, n_in, n_out, start, stop)
    _fix_flips(y, xs, lo, n_in, start, sr_in, sr_out, filter)
    return y


# --- pqeval/vggish.py ----------------------------------------------------------------------------


def _frame(data: np.ndarray, length: int, hop: int) -> np.ndarray:
    n = 1 + (data.shape[0] - length) // hop
    shape = (n, length) + data.shape[1:]
    strides = (data.strides[0] * hop,) + data.strides
    return np.lib.stride_tricks.as_strided(data, shape=shape, strides=strides, writeable=False)


class VGGishReference:
    """VGGishFrontend and the loop of VGGishEmbedder.embed (16 kHz, 25 ms / 10 ms, 512-point FFT)."""

    def __init__(self, resampler: str = DEFAULT_FILTER) -> None:
        from pqeval.vggish import VGGishFrontend

        self.resampler = resampler
        self.window_length = 400
        self.hop_length = 160
        self.fft_length = 512
        self.window = 0.5 - (0.5 * np.cos(2 * np.pi / self.window_length * np.arange(self.window_length)))
        self.mel_matrix = VGGishFrontend._mel_matrix(self.fft_length // 2 + 1)  # not sped up
        self.example_frames = 96
        self.min_samples = self.window_length + (self.example_frames - 1) * self.hop_length

    def log_mel(self, x16k: np.ndarray) -> np.ndarray:
        """16 kHz signal (n,) -> [frames, 64] float64."""
        frames = _frame(x16k, self.window_length, self.hop_length)
        spec = np.abs(np.fft.rfft(frames * self.window, self.fft_length))
        return np.log(np.dot(spec, self.mel_matrix) + 0.01)

    def examples(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Mono signal at ``sr`` Hz -> [N, 96, 64] float64."""
        x = np.asarray(audio, dtype=np.float64)
        if sr != 16000:
            x = resample(x, sr, 16000, filter=self.resampler)
        if len(x) < self.min_samples:
            return np.zeros((0, self.example_frames, 64))
        return _frame(self.log_mel(x), self.example_frames, self.example_frames)

    def model_inputs(self, audio: np.ndarray, sr: int, batch_size: int = 16) -> list[np.ndarray]:
        """The ``examples`` arrays ([B, 1, 96, 64] float32) VGGishEmbedder.embed feeds the model, in order."""
        x = np.asarray(audio)
        n16 = output_length(len(x), sr, 16000, self.resampler)
        n_examples = (1 + (n16 - self.window_length) // self.hop_length) // self.example_frames
        example_samples = self.example_frames * self.hop_length
        feeds = []
        for first in range(0, n_examples, batch_size):
            count = min(batch_size, n_examples - first)
            lo = first * example_samples
            hi = lo + (count * self.example_frames - 1) * self.hop_length + self.window_length
            block = resample_range(x, sr, 16000, lo, hi, self.resampler)
            ex = _frame(self.log_mel(block), self.example_frames, self.example_frames)
            x32 = ex[:, None, :, :].astype(np.float32)
            feeds += [x32[i : i + batch_size] for i in range(0, len(x32), batch_size)]
        return feeds


# --- pqeval/openl3.py ----------------------------------------------------------------------------

FRAME_LENGTH = 48000
HOP_LENGTH = 242


class OpenL3Reference:
    """OpenL3Frontend (magnitude, __call__) and the loop of OpenL3Embedder.embed."""

    def __init__(self, input_repr: str = "mel256") -> None:
        from pqeval.openl3 import mel_filterbank  # the filterbank design is not sped up

        self.n_fft = {"linear": 512, "mel128": 2048, "mel256": 2048}[input_repr]
        self.n_mels = {"linear": None, "mel128": 128, "mel256": 256}[input_repr]
        self.pad_end = input_repr != "linear"
        if self.pad_end:
            self.n_frames = -(-FRAME_LENGTH // HOP_LENGTH)
        else:
            self.n_frames = 1 + (FRAME_LENGTH - self.n_fft) // HOP_LENGTH
        n = np.arange(self.n_fft)
        self.window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.n_fft)
        self._mel_sparse = None
        if self.n_mels:
            fb = mel_filterbank(48000, self.n_fft, self.n_mels).astype(np.float64)
            band, bins = np.nonzero(fb)
            starts = np.flatnonzero(np.r_[True, band[1:] != band[:-1]])
            self._mel_sparse = (bins, fb[band, bins][None, :, None], starts)

    def magnitude(self, windows: np.ndarray) -> np.ndarray:
        """[B, 48000] -> |STFT| [B, T, n_fft//2 + 1] float64."""
        x = np.asarray(windows, dtype=np.float64)
        if self.pad_end:
            need = (self.n_frames - 1) * HOP_LENGTH + self.n_fft
            x = np.pad(x, ((0, 0), (0, need - x.shape[1])))
        b, n = x.shape
        frames = np.lib.stride_tricks.as_strided(
            x,
            shape=(b, self.n_frames, self.n_fft),
            strides=(x.strides[0], x.strides[1] * HOP_LENGTH, x.strides[1]),
            writeable=False,
        )
        return np.abs(np.fft.rfft(frames * self.window, n=self.n_fft, axis=-1))

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """[B, 48000] -> [B, F, T, 1] float32 dB spectrograms."""
        spec = np.ascontiguousarray(self.magnitude(windows).transpose(0, 2, 1))
        if self._mel_sparse is not None:
            bins, weights, starts = self._mel_sparse
            spec = np.add.reduceat(spec[:, bins] * weights, starts, axis=1)
        log_spec = 10.0 * np.log10(np.maximum(spec, 1e-10) / 1.0)
        log_spec -= log_spec.max(axis=(1, 2), keepdims=True)
        np.maximum(log_spec, -80.0, out=log_spec)
        return np.ascontiguousarray(log_spec[..., None], dtype=np.float32)

    def model_inputs(self, audio: np.ndarray, sr: int, hop: float, batch_size: int = 1, center: bool = True):
        """The ``spectrogram`` arrays ([B, F, T, 1] float32) OpenL3Embedder.embed feeds the model, in order."""
        from pqeval.openl3 import num_windows, window_span  # window arithmetic, not sped up

        x = np.asarray(audio)
        n48 = output_length(len(x), sr, 48000, "kaiser_best_0.2")
        n = num_windows(n48, hop, center)
        feeds = []
        for first in range(0, n, batch_size):
            count = min(batch_size, n - first)
            a, b = window_span(first, count, hop, center)
            a, b = max(a, 0), min(b, n48)
            block = resample_range(x, sr, 48000, a, b, "kaiser_best_0.2")
            feeds.append(self(cut_windows(block, first, count, hop, center, base=a, total=n48)))
        return feeds


def cut_windows(x48, first, count, hop_size, center=True, base=0, total=None) -> np.ndarray:
    """Windows first..first+count-1 of a 48 kHz signal (block starting at ``base``): [count, 48000] float32."""
    hop_len = int(hop_size * 48000)
    offset = FRAME_LENGTH // 2 if center else 0
    total = len(x48) if total is None else total
    out = np.zeros((count, FRAME_LENGTH), dtype=np.float32)
    for k in range(count):
        start = (first + k) * hop_len - offset
        lo, hi = max(start, 0), min(start + FRAME_LENGTH, total)
        if hi > lo:
            out[k, lo - start : hi - start] = x48[lo - base : hi - base]
    return out
