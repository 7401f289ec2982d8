"""Band-limited sinc resampling that reproduces resampy's ``kaiser_best`` filter.

Reference: ``resampy.resample(x, sr_orig, sr_new, filter='kaiser_best')`` (B. McFee, resampy
0.2.2 – 0.4.3), which implements J. O. Smith's bandlimited interpolation ("Digital Audio
Resampling Home Page", ccrma.stanford.edu/~jos/resample/): a Kaiser-windowed sinc stored as a
table of its right wing, read with linear interpolation. Both torchvggish and openl3 resample
with it, so embedding parity depends on reproducing it (scipy's default ``resample_poly`` filter
costs OpenL3 a cosine of 0.91).

The table is regenerated here from its design parameters (resampy documents
beta = 12.9846, roll-off = 0.917347, 50 zero crossings, 2**13 entries per crossing); the full-
precision roll-off is the one resampy's filter file records, and beta is refined to the value
that regenerates the table to 3e-11. The time-varying interpolation is then rewritten as a
polyphase FIR filter (one set of taps per output phase, with resampy's own integer table
stepping and linear interpolation between table entries) and run by
``scipy.signal.resample_poly``, which is exact and several times faster than a per-sample loop.
"""

from __future__ import annotations

import functools
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from .errors import AudioError

NUM_ZEROS = 50
TABLE_PER_ZERO = 2**13
ROLLOFF = 0.9173473712608761
KAISER_BETA = 12.984585301434324


@functools.lru_cache(maxsize=1)
def _half_window() -> tuple[np.ndarray, np.ndarray]:
    """Right wing of the interpolation filter and its forward differences, shape (409601,)."""
    n = TABLE_PER_ZERO * NUM_ZEROS
    sinc = ROLLOFF * np.sinc(ROLLOFF * np.linspace(0, NUM_ZEROS, num=n + 1, endpoint=True))
    win = sinc * np.kaiser(2 * n + 1, KAISER_BETA)[n:]
    return win, np.diff(win, append=win[-1])


def _wing(frac: np.ndarray, scale: float, win: np.ndarray, delta: np.ndarray):
    """Taps of one wing for each phase; frac in [0, scale]. Returns (taps [phases, K], valid mask)."""
    step = int(scale * TABLE_PER_ZERO)
    index_frac = frac * TABLE_PER_ZERO
    offset = index_frac.astype(np.int64)
    eta = index_frac - offset
    count = (len(win) - offset) // step
    k = np.arange(int(count.max()))
    valid = k[None, :] < count[:, None]
    idx = np.where(valid, offset[:, None] + k[None, :] * step, 0)
    taps = np.where(valid, win[idx] + eta[:, None] * delta[idx], 0.0)
    return taps


@functools.lru_cache(maxsize=16)
def polyphase_filter(sr_in: int, sr_out: int) -> tuple[int, int, np.ndarray]:
    """(up, down, taps) such that ``resample_poly(x, up, down, window=taps)`` equals resampy."""
    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    ratio = float(sr_out) / sr_in
    scale = min(1.0, ratio)
    win, delta = _half_window()
    if ratio < 1:
        win, delta = ratio * win, np.diff(ratio * win, append=ratio * win[-1])
    r = np.arange(up)
    frac = scale * (r / up)
    left = _wing(frac, scale, win, delta)  # left[r, i] multiplies x[n - i]
    right = _wing(scale - frac, scale, win, delta)  # right[r, k] multiplies x[n + 1 + k]
    half = up * (max(left.shape[1], right.shape[1]) + 1)
    taps = np.zeros(2 * half + 1)
    # Input sample j reaches output t through taps[t*down + half - j*up]; with t*down = n*up + r
    # that index is half + r + i*up for j = n - i and half - (up - r) - k*up for j = n + 1 + k.
    i = np.arange(left.shape[1])
    taps[half + r[:, None] + i[None, :] * up] = left
    k = np.arange(right.shape[1])
    taps[half - (up - r)[:, None] - k[None, :] * up] = right
    return up, down, taps


def output_length(n: int, sr_in: int, sr_out: int) -> int:
    """Number of output samples resampy produces for n input samples."""
    return int(n * float(sr_out) / float(sr_in))


def resample(x: np.ndarray, sr_in: int, sr_out: int, axis: int = -1) -> np.ndarray:
    """Resample ``x`` (float, any shape) along ``axis`` from sr_in to sr_out Hz, as resampy's kaiser_best.

    Returns float64 with ``int(n * sr_out / sr_in)`` samples along ``axis``. Raises AudioError if
    the input is too short to give a single output sample, ValueError for a non-positive rate.
    """
    sr_in, sr_out = int(sr_in), int(sr_out)
    x = np.asarray(x, dtype=np.float64)
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if sr_in == sr_out:
        return x
    n_out = output_length(x.shape[axis], sr_in, sr_out)
    if n_out < 1:
        raise AudioError(
            f"{x.shape[axis]} samples are too few to resample from {sr_in} Hz to {sr_out} Hz"
        )
    up, down, taps = polyphase_filter(sr_in, sr_out)
    # resample_poly multiplies the taps by ``up`` (the gain of zero-insertion); undo it.
    y = resample_poly(x, up, down, axis=axis, window=taps / up)
    return np.take(y, np.arange(n_out), axis=axis)
