"""STOI (Taal et al. 2011) and ESTOI (Jensen & Taal 2016) in bounded memory, equal to pystoi 0.4.

pystoi holds every 30-frame segment of the whole signal at once (several arrays of
[segments, 15, 30] float64, 3.6 kB per segment and 78 segments per second), so its memory grows
with length (bench/results/stoi_memory.md). This module computes the same numbers, step by step
as pystoi does, in chunks:

1. resample to 10 kHz with pystoi's own filter (``pystoi.utils.resample_oct``: scipy's
   ``resample_poly`` with an Octave-style Kaiser window), chunk by chunk through ``upfirdn``;
2. pass one: the energy of every 256-sample frame (50 % overlap, Hann window) of the clean signal,
   for the global maximum that decides which frames are silent (> 40 dB below it);
3. pass two: the non-silent frames, overlap-added as pystoi does, the STFT (512 points), and the
   15 third-octave bands; only these band envelopes ([15, frames], 2 × 0.56 MB per minute) are kept;
4. the 30-frame segments and their correlations, a chunk of segments at a time. ESTOI's tiny
   regularising noise is pystoi's: numpy's legacy generator seeded with ``seed``, drawn in
   pystoi's order (clean rows, clean columns, degraded rows, degraded columns), one stream position
   per quantity.

Working memory is a few chunks (``CHUNK_FRAMES``, ``CHUNK_SEGMENTS``) besides the two input signals
and the band envelopes.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FS = 10000  # pystoi's internal rate
N_FRAME = 256  # frame and window length
HOP = N_FRAME // 2
NFFT = 512
NUMBAND = 15
MINFREQ = 150
N_SEG = 30  # frames per segment (384 ms)
BETA = -15.0  # lower signal-to-distortion bound (STOI's clipping)
DYN_RANGE = 40  # dB below the loudest clean frame that counts as silence
EPS = np.finfo("float").eps
CHUNK_FRAMES = 4096  # frames (of HOP samples at 10 kHz, ~52 s) per chunk of the two passes
CHUNK_SEGMENTS = 2048  # segments per chunk of the correlation step


class TooShort(Exception):
    """Fewer than ``N_SEG`` STFT frames remain after removing silent frames (pystoi returns 1e-5)."""

    def __init__(self, frames: int, total: int):
        super().__init__(f"{frames} STFT frames of {total} non-silent")
        self.frames = frames
        self.total = total


def min_samples(sr: int) -> int:
    """Fewest samples at ``sr`` Hz that can give ``N_SEG`` STFT frames if nothing is silent."""
    # 31 frames over range(0, n10 - N_FRAME, HOP) (one is lost to the STFT): n10 > N_FRAME + N_SEG * HOP
    # samples at 10 kHz, and n10 = ceil(n * FS / sr)
    return (N_FRAME + N_SEG * HOP) * sr // FS + 1


@lru_cache(maxsize=8)
def _octave_bands() -> np.ndarray:
    from pystoi import utils

    obm, _ = utils.thirdoct(FS, NFFT, NUMBAND, MINFREQ)
    return obm


def _window() -> np.ndarray:
    return np.hanning(N_FRAME + 2)[1:-1]


class _Resampler:
    """``pystoi.utils.resample_oct(x, FS, sr)`` (= ``resample_poly``), any output range on demand.

    ``resample_poly`` runs ``upfirdn`` with a zero-padded filter over the whole signal and keeps
    ``[n_pre_remove, n_pre_remove + n_out)``. Output ``m`` of ``upfirdn`` is
    ``sum_n x[n] h[m*down - n*up]``, accumulated in ascending ``n``; ``upfirdn`` over a slice that
    starts at a multiple of ``down`` and holds every input a wanted output needs computes those
    outputs with the same products in the same order.
    """

    def __init__(self, x: np.ndarray, sr: int):
        from pystoi import utils
        from scipy.signal import upfirdn

        self.x = x
        self._upfirdn = upfirdn
        g = math.gcd(FS, sr)
        self.up, self.down = FS // g, sr // g
        n_in = len(x)
        self.identity = self.up == self.down == 1
        if self.identity:
            self.n_out = n_in
            return
        h = utils._resample_window_oct(FS, sr)
        h = h / np.sum(h)  # resample_oct's normalisation, then resample_poly's steps
        half_len = (len(h) - 1) // 2
        h = h * self.up
        n_out = n_in * self.up
        self.n_out = n_out // self.down + bool(n_out % self.down)
        n_pre_pad = self.down - half_len % self.down
        self.n_pre_remove = (half_len + n_pre_pad) // self.down
        self.h = np.concatenate((np.zeros(n_pre_pad), h))  # resample_poly's trailing zeros change nothing

    def block(self, a: int, b: int) -> np.ndarray:
        """Samples ``[a, b)`` of the 10 kHz signal (``0 <= a < b <= n_out``)."""
        if self.identity:
            return self.x[a:b]
        up, down, taps = self.up, self.down, len(self.h)
        m0, m1 = a + self.n_pre_remove, b + self.n_pre_remove  # in upfirdn's output
        n_lo = max(0, -((taps - 1 - m0 * down) // up))  # ceil((m0*down - taps + 1) / up)
        n_hi = min(len(self.x), (m1 - 1) * down // up + 1)
        s = (n_lo // down) * down
        y = self._upfirdn(self.h, self.x[s:n_hi], up, down)
        k0 = m0 - s * up // down
        out = y[k0 : k0 + (b - a)]
        if len(out) < b - a:  # the tail past the last input: upfirdn's own zero padding
            out = np.concatenate((out, np.zeros(b - a - len(out))))
        return out


def _frames(r: _Resampler, f0: int, f1: int, w: np.ndarray) -> np.ndarray:
    """Windowed frames ``[f0, f1)`` (``w * x[i*HOP : i*HOP + N_FRAME]``), as rows."""
    block = r.block(f0 * HOP, (f1 - 1) * HOP + N_FRAME)
    return sliding_window_view(block, N_FRAME)[::HOP] * w


def _silence_mask(rx: _Resampler) -> np.ndarray:
    """Pass one: True for each frame of x within ``DYN_RANGE`` dB of the loudest (pystoi's mask)."""
    n_frames = len(range(0, rx.n_out - N_FRAME, HOP))
    w = _window()
    energies = np.empty(n_frames)
    for f0 in range(0, n_frames, CHUNK_FRAMES):
        f1 = min(f0 + CHUNK_FRAMES, n_frames)
        energies[f0:f1] = 20 * np.log10(np.linalg.norm(_frames(rx, f0, f1, w), axis=1) + EPS)
    if n_frames == 0:
        return np.zeros(0, dtype=bool)
    return (np.max(energies) - DYN_RANGE - energies) < 0


def _band_envelope(r: _Resampler, mask: np.ndarray) -> np.ndarray:
    """Pass two: third-octave band magnitudes [15, kept - 1] of the kept frames (pystoi's x_tob).

    The kept frames are overlap-added (block m = first half of kept frame m + second half of kept
    frame m - 1) and STFT frame j is blocks j and j + 1, for j < kept - 1.
    """
    n_frames, kept = len(mask), int(mask.sum())
    w = _window()
    obm = _octave_bands()
    tob = np.empty((NUMBAND, kept - 1))
    carry = np.zeros(HOP)  # second half of the previous kept frame
    last: np.ndarray | None = None  # the previous chunk's last block
    j = 0
    for f0 in range(0, n_frames, CHUNK_FRAMES):
        f1 = min(f0 + CHUNK_FRAMES, n_frames)
        sel = mask[f0:f1]
        if not sel.any():
            continue
        fr = _frames(r, f0, f1, w)[sel]
        blocks = fr[:, :HOP].copy()
        blocks[0] += carry
        blocks[1:] += fr[:-1, HOP:]
        carry = fr[-1, HOP:].copy()
        if last is not None:
            blocks = np.concatenate((last[None], blocks))
        last = blocks[-1].copy()
        if len(blocks) < 2:
            continue
        frames = np.concatenate((blocks[:-1], blocks[1:]), axis=1) * w
        spec = np.fft.rfft(frames, n=NFFT, axis=1).T
        tob[:, j : j + frames.shape[0]] = np.sqrt(np.matmul(obm, np.square(np.abs(spec))))
        j += frames.shape[0]
    assert j == kept - 1
    return tob


def _stoi_sum(xs: np.ndarray, ys: np.ndarray) -> float:
    """Sum of pystoi's correlation components over segments xs, ys [n, 15, 30]."""
    norm = np.linalg.norm(xs, axis=2, keepdims=True) / (np.linalg.norm(ys, axis=2, keepdims=True) + EPS)
    y_norm = ys * norm
    y_primes = np.minimum(y_norm, xs * (1 + 10 ** (-BETA / 20)))
    y_primes = y_primes - np.mean(y_primes, axis=2, keepdims=True)
    xs = xs - np.mean(xs, axis=2, keepdims=True)
    y_primes /= np.linalg.norm(y_primes, axis=2, keepdims=True) + EPS
    xs /= np.linalg.norm(xs, axis=2, keepdims=True) + EPS
    return float(np.sum(y_primes * xs))


def _row_col_normalize(x: np.ndarray, noise_rows: np.ndarray, noise_cols: np.ndarray) -> np.ndarray:
    """pystoi.utils.row_col_normalize with its two draws of noise given (a diagonal matmul is a scaling)."""
    x = x + EPS * noise_rows
    x -= np.mean(x, axis=-1, keepdims=True)
    x = x * (1.0 / np.sqrt(np.sum(np.square(x), axis=-1, keepdims=True)))
    x += EPS * noise_cols
    x -= np.mean(x, axis=1, keepdims=True)
    return x * (1.0 / np.sqrt(np.sum(np.square(x), axis=1, keepdims=True)))


def _noise_streams(seed: int, block: int, count: int) -> list[np.random.RandomState]:
    """``count`` legacy generators at positions 0, block, 2*block, ... of the stream ``seed`` draws."""
    rs = np.random.RandomState(seed)
    streams = []
    for i in range(count):
        copy = np.random.RandomState()
        copy.set_state(rs.get_state())
        streams.append(copy)
        if i < count - 1:
            for k in range(0, block, CHUNK_SEGMENTS * NUMBAND * N_SEG):
                rs.standard_normal(min(CHUNK_SEGMENTS * NUMBAND * N_SEG, block - k))
    return streams


def stoi(x: np.ndarray, y: np.ndarray, fs: int, extended: bool = False, seed: int = 0) -> float:
    """pystoi.stoi(x, y, fs, extended) after ``np.random.seed(seed)``, in bounded memory.

    x, y: equal-length float64 [n] at ``fs`` Hz. Raises TooShort where pystoi returns 1e-5 (or
    fails on input shorter than one frame). Identical inputs score exactly 1 (pystoi: 1 - 1e-15).
    """
    identical = x is y or all(
        np.array_equal(x[i : i + CHUNK_FRAMES * HOP], y[i : i + CHUNK_FRAMES * HOP])
        for i in range(0, len(x), CHUNK_FRAMES * HOP)
    )  # chunk by chunk: no [n] temporary
    rx = _Resampler(x, fs)
    mask = _silence_mask(rx)
    kept = int(mask.sum())
    if kept - 1 < N_SEG:
        raise TooShort(max(kept - 1, 0), kept)
    if identical:
        return 1.0
    x_tob, y_tob = _band_envelope(rx, mask), _band_envelope(_Resampler(y, fs), mask)
    n_seg = x_tob.shape[1] - N_SEG + 1
    xw = sliding_window_view(x_tob, N_SEG, axis=1)  # [15, n_seg, 30]
    yw = sliding_window_view(y_tob, N_SEG, axis=1)
    total = []
    shape = (NUMBAND, N_SEG)
    streams = _noise_streams(seed, n_seg * NUMBAND * N_SEG, 4) if extended else []
    for j0 in range(0, n_seg, CHUNK_SEGMENTS):
        j1 = min(j0 + CHUNK_SEGMENTS, n_seg)
        xs = np.ascontiguousarray(xw[:, j0:j1].transpose(1, 0, 2))
        ys = np.ascontiguousarray(yw[:, j0:j1].transpose(1, 0, 2))
        if extended:
            size = (j1 - j0, *shape)
            noise = [s.standard_normal(size) for s in streams]
            xn = _row_col_normalize(xs, noise[0], noise[1])
            yn = _row_col_normalize(ys, noise[2], noise[3])
            total.append(float(np.sum(xn * yn / N_SEG)))
        else:
            total.append(_stoi_sum(xs, ys))
    s = math.fsum(total)
    return s / n_seg if extended else s / (n_seg * NUMBAND)
