"""Band-limited sinc resampling that reproduces resampy's ``kaiser_best`` filter (both versions).

Reference: ``resampy.resample(x, sr_orig, sr_new, filter='kaiser_best')`` (B. McFee), which
implements J. O. Smith's bandlimited interpolation ("Digital Audio Resampling Home Page",
ccrma.stanford.edu/~jos/resample/): a Kaiser-windowed sinc stored as a table of its right wing,
read with linear interpolation. torchvggish and openl3 both resample with it, and the resampler
decides embedding parity (scipy's default ``resample_poly`` filter costs OpenL3 a cosine of 0.91).

resampy changed the filter in 0.3, so there are two (``FILTERS``):

- ``kaiser_best_0.2`` (resampy 0.2.x; openl3 0.4.2 requires resampy<0.3, so this is what an
  environment with openl3 and torchvggish runs; our default): 64 zero crossings, 2**9 table
  entries per crossing, beta 14.769656459379492, roll-off 0.9475937167399596 (published in
  resampy 0.2's filters.py; the table regenerates to 2e-16).
- ``kaiser_best_0.3`` (resampy >= 0.3): 50 zero crossings, 2**13 entries per crossing; resampy
  documents beta = 12.9846 and roll-off = 0.917347; the full-precision roll-off is the one its
  filter file records and beta is refined to the value that regenerates its table to 3e-11.

The tables are regenerated from these parameters, not copied. The time-varying interpolation is
rewritten as a polyphase FIR filter (one set of taps per output phase, with resampy's integer
table stepping and linear interpolation between entries), i.e. what
``scipy.signal.resample_poly(x, up, down, window=taps / up)`` computes. We run it as matrix
products instead: the outputs repeat their taps every ``up`` samples while the input advances by
``down``, so rows of ``up`` outputs are one GEMM of strided input rows with a fixed, banded
[span, up] tap matrix (float64 BLAS: 4.9-9.3x faster than resample_poly's scalar loop, equal to
it up to summation order, ~4e-15; bench/resampler.py). The signal is cut into fixed chunks of rows, always the
same ones whatever range is asked for, so any range of outputs is bit-identical to the
whole-signal result (BLAS may round a row differently in a matrix of another shape).

One quirk is reproduced on top: resampy keeps the output time in a float (0.2 accumulates
``time_register += 1/ratio``; 0.3 computes ``t / ratio``), so where the exact time is an integer
it can land just below it, and resampy then reads the previous input sample at phase ~1 with its
truncated table step, not the exact one at phase 0 (up to 1e-3 of full scale for 44.1 -> 16 kHz
with 0.2). Those few outputs are recomputed the way resampy computes them. Which outputs they are
depends only on the rate pair, so it is found once per block of outputs and kept.

:class:`RangeResampler` serves a sequence of ranges of one signal (overlapping windows, batches)
computing each chunk once.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from math import gcd

import numpy as np

from .audio import LazySamples
from .errors import AudioError


@dataclass(frozen=True)
class KaiserSinc:
    """Design parameters of a resampy-style interpolation filter table."""

    zeros: int
    per_zero: int
    beta: float
    rolloff: float


FILTERS = {
    "kaiser_best_0.2": KaiserSinc(zeros=64, per_zero=2**9, beta=14.769656459379492, rolloff=0.9475937167399596),
    "kaiser_best_0.3": KaiserSinc(zeros=50, per_zero=2**13, beta=12.984585301434324, rolloff=0.9173473712608761),
}
DEFAULT_FILTER = "kaiser_best_0.2"


@functools.lru_cache(maxsize=len(FILTERS))
def half_window(name: str) -> np.ndarray:
    """Right wing of the interpolation filter ``name``, shape (zeros * per_zero + 1,)."""
    f = FILTERS[name]
    n = f.per_zero * f.zeros
    sinc = f.rolloff * np.sinc(f.rolloff * np.linspace(0, f.zeros, num=n + 1, endpoint=True))
    return sinc * np.kaiser(2 * n + 1, f.beta)[n:]


def _wing(frac: np.ndarray, scale: float, per_zero: int, win: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Taps [phases, K] of one wing, read as resampy's loop reads its table; frac in [0, scale]."""
    step = int(scale * per_zero)
    index_frac = frac * per_zero
    offset = index_frac.astype(np.int64)
    eta = index_frac - offset
    count = (len(win) - offset) // step
    k = np.arange(int(count.max()))
    valid = k[None, :] < count[:, None]
    idx = np.where(valid, offset[:, None] + k[None, :] * step, 0)
    return np.where(valid, win[idx] + eta[:, None] * delta[idx], 0.0)


@functools.lru_cache(maxsize=16)
def _scaled_table(sr_in: int, sr_out: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(win, delta): the filter table scaled by the ratio when downsampling, and its differences."""
    ratio = float(sr_out) / sr_in
    win = half_window(name) * (ratio if ratio < 1 else 1.0)
    return win, np.diff(win, append=win[-1])


@functools.lru_cache(maxsize=16)
def polyphase_filter(sr_in: int, sr_out: int, name: str = DEFAULT_FILTER) -> tuple[int, int, np.ndarray]:
    """(up, down, taps) such that ``resample_poly(x, up, down, window=taps / up)`` equals resampy."""
    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    ratio = float(sr_out) / sr_in
    scale = min(1.0, ratio)
    win, delta = _scaled_table(sr_in, sr_out, name)
    per_zero = FILTERS[name].per_zero
    r = np.arange(up)
    frac = scale * (r / up)
    left = _wing(frac, scale, per_zero, win, delta)  # left[r, i] multiplies x[n - i]
    right = _wing(scale - frac, scale, per_zero, win, delta)  # right[r, k] multiplies x[n + 1 + k]
    half = up * (max(left.shape[1], right.shape[1]) + 1)
    taps = np.zeros(2 * half + 1)
    # Input sample j reaches output t through taps[t*down + half - j*up]; with t*down = n*up + r
    # that index is half + r + i*up for j = n - i and half - (up - r) - k*up for j = n + 1 + k.
    i = np.arange(left.shape[1])
    taps[half + r[:, None] + i[None, :] * up] = left
    k = np.arange(right.shape[1])
    taps[half - (up - r)[:, None] - k[None, :] * up] = right
    return up, down, taps


def output_length(n: int, sr_in: int, sr_out: int, filter: str = DEFAULT_FILTER) -> int:
    """Number of output samples resampy produces for n input samples (its own float expression)."""
    if filter == "kaiser_best_0.2":
        return int(n * (float(sr_out) / sr_in))
    return int(n * float(sr_out) / float(sr_in))


_ACCUMULATE_BLOCK = 1 << 15


def time_register(start: int, stop: int, sr_in: int, sr_out: int, filter: str = DEFAULT_FILTER) -> np.ndarray:
    """Times of outputs [start, stop) in input samples, as resampy's float arithmetic gives them.

    resampy 0.2 accumulates ``time_register += 1/ratio`` sequentially, so its value at ``start``
    is found by accumulating from 0 in blocks of _ACCUMULATE_BLOCK. The sums at block boundaries
    are kept per rate pair, so walking a long signal range by range costs O(length), not
    O(length^2); the additions, and so the values, are the same.
    """
    inc = 1.0 / (float(sr_out) / sr_in)
    if filter != "kaiser_best_0.2":
        return np.arange(start, stop) * inc
    if stop <= start:
        return np.zeros(0)
    with _register_lock:
        marks = _register_marks.setdefault((sr_in, sr_out), [0.0])  # value at k * _ACCUMULATE_BLOCK
        k = min(start // _ACCUMULATE_BLOCK, len(marks) - 1)
        value, t = marks[k], k * _ACCUMULATE_BLOCK
        buf = np.full(min(_ACCUMULATE_BLOCK, start - t) + 1, inc)
        while t < start:  # skip ahead, carrying the running sum exactly
            m = min(_ACCUMULATE_BLOCK, start - t)
            buf[0] = value
            value = float(np.add.accumulate(buf[: m + 1])[-1])
            t += m
            if m == _ACCUMULATE_BLOCK and t // _ACCUMULATE_BLOCK == len(marks):
                marks.append(value)
    out = np.full(stop - start, inc)
    out[0] = value
    np.add.accumulate(out, out=out)
    with _register_lock:  # the block boundaries this range passed: later ranges start there
        k = len(marks)
        while start <= k * _ACCUMULATE_BLOCK < stop:
            marks.append(float(out[k * _ACCUMULATE_BLOCK - start]))
            k += 1
    return out


_register_marks: dict[tuple[int, int], list[float]] = {}
_register_lock = threading.Lock()


def _needs_flip_fix(sr_in: int, sr_out: int, filter: str) -> bool:
    """Flips matter only when resampy's table step ``int(scale * per_zero)`` is not exact (downsampling)."""
    scale = min(1.0, float(sr_out) / sr_in)
    return scale * FILTERS[filter].per_zero != int(scale * FILTERS[filter].per_zero)


# Where resampy's float time falls below an integer depends only on the rate pair and the output
# index, not on the signal: it is found once per block of _ACCUMULATE_BLOCK outputs and kept
# (blocks with at most _FLIP_CACHE_MAX_PER_BLOCK flips, _FLIP_CACHE_BLOCKS of them, least recently
# used dropped first), so a second signal at the same rates skips the time register.
_FLIP_CACHE_BLOCKS = 512
_FLIP_CACHE_MAX_PER_BLOCK = 2048
_flip_cache: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()


def _flip_block(k: int, sr_in: int, sr_out: int, filter: str) -> tuple[np.ndarray, np.ndarray]:
    """(index, time) of the outputs in block k (outputs [k, k + 1) * _ACCUMULATE_BLOCK) whose float
    time register falls below the integer part of their exact time: index relative to the block
    start (int64), time in input samples (float64, as resampy computes it)."""
    key = (sr_in, sr_out, filter, k)
    with _register_lock:
        hit = _flip_cache.get(key)
        if hit is not None:
            _flip_cache.move_to_end(key)
            return hit
    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    start = k * _ACCUMULATE_BLOCK
    tr = time_register(start, start + _ACCUMULATE_BLOCK, sr_in, sr_out, filter)
    exact = np.arange(start, start + _ACCUMULATE_BLOCK, dtype=np.int64)
    exact *= down
    exact //= up
    index = np.flatnonzero(tr.astype(np.int64) != exact)
    hit = (index, tr[index])
    for a in hit:
        a.setflags(write=False)
    if len(index) <= _FLIP_CACHE_MAX_PER_BLOCK:
        with _register_lock:
            _flip_cache[key] = hit
            while len(_flip_cache) > _FLIP_CACHE_BLOCKS:
                _flip_cache.popitem(last=False)
    return hit


def _flips(start: int, stop: int, sr_in: int, sr_out: int, filter: str) -> tuple[np.ndarray, np.ndarray]:
    """(index, time) of the flipped outputs in [start, stop): global output index, float time."""
    index, times = [], []
    for k in range(start // _ACCUMULATE_BLOCK, -(-stop // _ACCUMULATE_BLOCK)):
        i, t = _flip_block(k, sr_in, sr_out, filter)
        i = i + k * _ACCUMULATE_BLOCK
        keep = (i >= start) & (i < stop)
        index.append(i[keep])
        times.append(t[keep])
    return np.concatenate(index), np.concatenate(times)


def _fix_flips(
    y: np.ndarray, xs: np.ndarray, offset: int, n_in: int, start: int, sr_in: int, sr_out: int, filter: str
) -> None:
    """Recompute, in place, outputs y[k] (global index start + k) whose float time fell below an integer.

    ``xs`` holds input samples [offset, offset + len(xs)) of a signal n_in samples long.
    """
    if not _needs_flip_fix(sr_in, sr_out, filter):
        return
    index, tr = _flips(start, start + y.shape[-1], sr_in, sr_out, filter)
    if index.size:
        y[index - start] = _direct(xs, offset, n_in, tr, sr_in, sr_out, filter)


def _direct(xs: np.ndarray, offset: int, n_in: int, tr: np.ndarray, sr_in: int, sr_out: int, filter: str) -> np.ndarray:
    """Outputs at input times ``tr`` (shape (F,)) read tap by tap from the table, as resampy's loop.

    ``xs`` holds input samples [offset, offset + len(xs)) of a signal n_in samples long. Each
    output is summed over the same padded number of taps (the wing width), its products in the
    same places, so its value does not depend on which other outputs are computed with it.
    Outputs away from the signal's ends that share their table phases (resampy's flips mostly do)
    are computed together, reading the table once (:func:`_direct_group`); the rest in blocks of
    _DIRECT_BLOCK (:func:`_direct_loop`).
    """
    scale = min(1.0, float(sr_out) / sr_in)
    per_zero = FILTERS[filter].per_zero
    n = tr.astype(np.int64)
    frac = scale * (tr - n)
    left = (frac * per_zero).astype(np.int64)  # table entry each wing starts at
    right = ((scale - frac) * per_zero).astype(np.int64)
    key = left * (1 << 32) + right
    out = np.empty(len(tr))
    rest = np.ones(len(tr), bool)
    phases, group, sizes = np.unique(key, return_inverse=True, return_counts=True)
    for g in np.flatnonzero(sizes >= _DIRECT_GROUP_MIN):
        p_left, p_right = int(phases[g]) >> 32, int(phases[g]) & 0xFFFFFFFF
        counts = _wing_counts(p_left, p_right, sr_in, sr_out, filter)
        sel = np.flatnonzero(group.reshape(-1) == g)
        sel = sel[(n[sel] + 1 >= counts[0]) & (n_in - n[sel] - 1 >= counts[1])]  # whole wings inside the signal
        if len(sel) >= _DIRECT_GROUP_MIN:
            out[sel] = _direct_group(xs, offset, n[sel], frac[sel], (p_left, p_right), sr_in, sr_out, filter)
            rest[sel] = False
    rest = np.flatnonzero(rest)
    if rest.size:
        out[rest] = _direct_loop(xs, offset, n_in, tr[rest], sr_in, sr_out, filter)
    return out


_DIRECT_GROUP_MIN = 4  # outputs sharing their table phases worth computing together


def _wing_counts(p_left: int, p_right: int, sr_in: int, sr_out: int, filter: str) -> tuple[int, int]:
    """Taps the left and right wing read from table entries p_left, p_right when the signal does not end."""
    step = int(min(1.0, float(sr_out) / sr_in) * FILTERS[filter].per_zero)
    size = len(_scaled_table(sr_in, sr_out, filter)[0])
    return (size - p_left) // step, (size - p_right) // step


def _windows(x: np.ndarray, length: int) -> np.ndarray:
    """Read-only view [len(x) - length + 1, length] of every ``length`` consecutive samples of x."""
    return np.lib.stride_tricks.as_strided(
        x, (len(x) - length + 1, length), (x.strides[0], x.strides[0]), writeable=False
    )


@functools.lru_cache(maxsize=64)
def _wing_rows(pos: int, sr_in: int, sr_out: int, filter: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(win, delta) at the table entries a wing starting at ``pos`` reads, and the products
    ``0.0 * win[0]``, ``0.0 * delta[0]`` that :func:`_direct_loop` puts past a wing's end."""
    win, delta = _scaled_table(sr_in, sr_out, filter)
    step = int(min(1.0, float(sr_out) / sr_in) * FILTERS[filter].per_zero)
    tab = pos + np.arange((len(win) - pos) // step) * step
    w, d = win[tab], delta[tab]
    w.setflags(write=False)
    d.setflags(write=False)
    return w, d, 0.0 * win[0], 0.0 * delta[0]


def _direct_group(
    xs: np.ndarray,
    offset: int,
    n: np.ndarray,
    frac: np.ndarray,
    phase: tuple[int, int],
    sr_in: int,
    sr_out: int,
    filter: str,
) -> np.ndarray:
    """:func:`_direct_loop`'s values for outputs at times n + frac / scale (n int64 (G,), frac (G,))
    whose wings start at table entries ``phase`` = (left, right) and lie wholly inside the signal.

    The same products in the same places of each row (taps past a wing's end are 0.0 times the
    table's first entry, as the loop pads them) and the same row sums, in the same order."""
    scale = min(1.0, float(sr_out) / sr_in)
    per_zero = FILTERS[filter].per_zero
    width = _wing_width(sr_in, sr_out, filter)
    out = np.zeros(len(n))
    total = np.empty((len(n), width))
    for side in (0, 1):  # left wing reads x[n - i], right wing x[n + 1 + i]
        w, d, w_pad, d_pad = _wing_rows(phase[side], sr_in, sr_out, filter)
        index_frac = frac * per_zero
        eta = index_frac - index_frac.astype(np.int64)
        count = len(w)
        first = n - offset - (count - 1) if side == 0 else n + 1 - offset  # taps [first, first + count)
        if first.min() < 0 or first.max() + count > len(xs):
            raise AssertionError("resampler input slice does not cover the filter support")  # a bug
        taps = _windows(xs if side else xs[::-1], count)[first if side else len(xs) - 1 - (n - offset)]
        total[:, count:] = w_pad
        np.multiply(taps, w, out=total[:, :count])
        weighted = total.sum(axis=1)
        total[:, count:] = d_pad
        np.multiply(taps, d, out=total[:, :count])
        out += weighted + eta * total.sum(axis=1)
        frac = scale - frac
    return out


def _direct_loop(
    xs: np.ndarray, offset: int, n_in: int, tr: np.ndarray, sr_in: int, sr_out: int, filter: str
) -> np.ndarray:
    """:func:`_direct` for any times, in blocks of _DIRECT_BLOCK outputs."""
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
    """Most taps one wing of the filter reads for this rate pair."""
    step = int(min(1.0, float(sr_out) / sr_in) * FILTERS[filter].per_zero)
    return len(_scaled_table(sr_in, sr_out, filter)[0]) // step + 1


# Outputs per GEMM chunk. Fixed, so that every output is always computed in the same matrix
# product (same rows, same shape) whichever range of the signal is asked for.
_CHUNK_OUTPUTS = 1 << 15
_MIN_ROW_OUTPUTS = 64  # outputs per row at least (small ``up`` groups several periods per row)
_BAND_MIN_COLUMNS = 32  # narrowest column band worth its own GEMM


@dataclass(frozen=True)
class _Plan:
    """The polyphase filter as a GEMM: outputs [r*U, (r+1)*U) = x[r*D + first : ... + span] @ H.

    H is banded (each output reads ~2 * zeros / scale inputs of the span), so its columns are
    split into ``bands`` (c0, c1, first row, H[rows, c0:c1]) that skip the all-zero rows.
    """

    U: int  # outputs per row
    D: int  # input samples the row start advances by
    first: int  # input index (relative to r*D) of the first sample a row reads; <= 0
    span: int  # input samples a row reads
    bands: tuple  # ((c0, c1, r0, H[r0:r1, c0:c1] float64), ...)
    rows: int  # rows per chunk


def _bands(H: np.ndarray) -> tuple:
    """Column bands of H with their nonzero row ranges: the split with the fewest multiply-adds,
    if it saves a quarter of them (why a quarter: docs/measurements.md)."""
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
    # Input j = r*D + m reaches output r*U + p through taps[p*down + half - m*up] (see polyphase_filter).
    m = np.arange(-((len(taps) - 1 - half) // up) - 1, ((U - 1) * down + half) // up + 2)
    idx = np.arange(U)[None, :] * down + half - m[:, None] * up
    ok = (idx >= 0) & (idx < len(taps))
    H = np.where(ok, taps[np.clip(idx, 0, len(taps) - 1)], 0.0)
    used = np.flatnonzero(ok.any(axis=1))
    H = H[used[0] : used[-1] + 1]
    return _Plan(U, D, int(m[used[0]]), H.shape[0], _bands(H), max(1, _CHUNK_OUTPUTS // U))


def _input_span(plan: _Plan, start: int, stop: int, n_out: int, n_in: int) -> tuple[int, int]:
    """Input samples [lo, hi) needed for outputs [start, stop): their whole chunks, plus 2 for the flip fix."""
    c0, c1 = start // (plan.rows * plan.U), -(-stop // (plan.rows * plan.U))
    r0, r1 = c0 * plan.rows, min(c1 * plan.rows, -(-n_out // plan.U))
    lo = r0 * plan.D + plan.first - 2
    hi = (r1 - 1) * plan.D + plan.first + plan.span + 2
    return max(0, lo), min(n_in, hi)


def _outputs(plan: _Plan, xs: np.ndarray, offset: int, n_in: int, n_out: int, start: int, stop: int) -> np.ndarray:
    """Outputs [start, stop) (before the flip fix) from xs = input samples [offset, offset + len(xs))."""
    per_chunk = plan.rows * plan.U
    n_rows = -(-n_out // plan.U)
    c_first, c_last = start // per_chunk, -(-stop // per_chunk)
    r_first = c_first * plan.rows
    y = np.empty((min(c_last * plan.rows, n_rows) - r_first) * plan.U)
    for c in range(c_first, c_last):
        r0, r1 = c * plan.rows, min((c + 1) * plan.rows, n_rows)
        _chunk(plan, xs, offset, n_in, r0, r1, y[(r0 - r_first) * plan.U : (r1 - r_first) * plan.U])
    first = c_first * per_chunk
    return y[start - first : stop - first]


def _chunk(plan: _Plan, xs: np.ndarray, offset: int, n_in: int, r0: int, r1: int, y: np.ndarray) -> None:
    """Rows [r0, r1) of one chunk into y (shape ((r1 - r0) * U,)): one GEMM per column band."""
    lo = r0 * plan.D + plan.first  # first input sample of the chunk (may be < 0: zeros)
    length = (r1 - r0 - 1) * plan.D + plan.span
    if lo >= offset and lo + length <= offset + len(xs) and lo + length <= n_in and xs.strides[0] == xs.itemsize:
        seg = xs[lo - offset : lo - offset + length]  # all inside the signal: read in place
    else:
        seg = np.zeros(length)
        a, b = max(lo, 0), min(lo + length, n_in)
        if b > a:
            if a < offset or b > offset + len(xs):
                raise AssertionError("resampler input slice does not cover the chunk")  # a bug, not bad input
            seg[a - lo : b - lo] = xs[a - offset : b - offset]
    rows = np.lib.stride_tricks.as_strided(
        seg, (r1 - r0, plan.span), (plan.D * seg.itemsize, seg.itemsize), writeable=False
    )
    out = y.reshape(r1 - r0, plan.U)
    for c0, c1, b0, band in plan.bands:
        np.matmul(rows[:, b0 : b0 + band.shape[0]], band, out=out[:, c0:c1])


# Largest GEMM plan (elements of its tap matrix) worth building. Rates whose reduced ratio has a
# large ``up`` (coprime rates such as 44101 -> 16000 Hz, or the 2667 Hz of a 6x bit-rate
# reduction) would need a matrix of tens of GB; they take the direct path instead.
_MAX_PLAN_ELEMENTS = 1 << 23
_DIRECT_BLOCK = 2048  # outputs per vectorised block on the direct path


def _plan_elements(sr_in: int, sr_out: int, name: str) -> int:
    """Size of the tap matrix :func:`_plan` would build (rows x outputs per row), without building it."""
    up, down, taps = polyphase_filter(sr_in, sr_out, name)
    group = max(1, -(-_MIN_ROW_OUTPUTS // up))
    U = group * up
    return ((U - 1) * down + len(taps)) // up * U


def _direct_range(x, n_in: int, start: int, stop: int, sr_in: int, sr_out: int, filter: str) -> np.ndarray:
    """Outputs [start, stop) by :func:`_direct`, at the times the GEMM path uses (exact phases;
    resampy's float time where its integer part flips). Equal to the GEMM path up to summation
    order (measured 4e-12 of unit-variance noise); memory O(_DIRECT_BLOCK x taps per output)."""
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


def _check(sr_in: int, sr_out: int, filter: str) -> tuple[int, int]:
    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {', '.join(FILTERS)}, got {filter!r}")
    return sr_in, sr_out


def resample(x: np.ndarray, sr_in: int, sr_out: int, axis: int = -1, filter: str = DEFAULT_FILTER) -> np.ndarray:
    """Resample ``x`` (float, any shape) along ``axis`` from sr_in to sr_out Hz, as resampy's kaiser_best.

    filter: "kaiser_best_0.2" (resampy 0.2.x, default) or "kaiser_best_0.3" (resampy >= 0.3).
    Returns float64 with ``int(n * sr_out / sr_in)`` samples along ``axis``. Raises AudioError if
    the input is too short to give a single output sample, ValueError for a non-positive rate.
    """
    sr_in, sr_out = _check(sr_in, sr_out, filter)
    x = np.asarray(x, dtype=np.float64)
    if sr_in == sr_out:
        return x
    n_out = output_length(x.shape[axis], sr_in, sr_out, filter)
    if n_out < 1:
        raise AudioError(f"{x.shape[axis]} samples are too few to resample from {sr_in} Hz to {sr_out} Hz")
    rows = np.moveaxis(x, axis, -1)
    y = np.empty(rows.shape[:-1] + (n_out,))
    for i in np.ndindex(rows.shape[:-1]):
        y[i] = resample_range(rows[i], sr_in, sr_out, 0, n_out, filter)
    return np.moveaxis(y, -1, axis)


def resample_range(x, sr_in: int, sr_out: int, start: int, stop: int, filter: str = DEFAULT_FILTER) -> np.ndarray:
    """Outputs [start, stop) of ``resample(x, sr_in, sr_out)`` for a 1-D signal ``x``.

    ``x`` is an array or anything with ``len()`` whose ``x[lo:hi]`` gives float samples (e.g. a
    file read on demand, :class:`pqeval.audio.FileSamples`): only the input this range needs is
    read, so memory is bounded by the range however long the signal. The values are bit-identical
    to ``resample``'s. ``stop`` is clipped to the output length.
    """
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


class RangeResampler:
    """``resample_range`` of one signal for a sequence of ranges, reusing the chunks they share.

    The resampler computes outputs in fixed chunks (_CHUNK_OUTPUTS), so a range usually needs a
    chunk the previous range already computed (OpenL3's 1 s windows overlap by 1 s - hop; VGGish
    batches share the chunk at their boundary). The last _KEEP_CHUNKS chunks of the last range
    are kept (about 1 MB) and reused, so ranges that move forward through the signal compute
    each chunk once; any order is allowed, just with less reuse. Every range is bit-identical to
    ``resample_range(x, sr_in, sr_out, start, stop, filter)``: :meth:`range` returns it as a new
    array, :meth:`view` read-only and without copying when the kept chunks already hold it.

    ``x`` is a 1-D signal at ``sr_in`` Hz, as for ``resample_range`` (an array or LazySamples).
    """

    def __init__(self, x, sr_in: int, sr_out: int, filter: str = DEFAULT_FILTER) -> None:
        self.sr_in, self.sr_out = _check(sr_in, sr_out, filter)
        self.x, self.filter = x, filter
        self.n_out = output_length(len(x), self.sr_in, self.sr_out, filter)
        self._per_chunk = 0  # 0: no chunks to share (same rate, or the direct path)
        if self.sr_in != self.sr_out and _plan_elements(self.sr_in, self.sr_out, filter) <= _MAX_PLAN_ELEMENTS:
            plan = _plan(self.sr_in, self.sr_out, filter)
            self._per_chunk = plan.rows * plan.U
        self._chunks: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.n_out

    def range(self, start: int, stop: int) -> np.ndarray:
        """Outputs [start, stop) of the resampled signal (stop clipped to its length), float64 (n,):
        a new array of the caller's own."""
        y, shared = self._get(start, stop)
        return y.copy() if shared else y

    def view(self, start: int, stop: int) -> np.ndarray:
        """:meth:`range`'s values, read-only, possibly sharing memory with the kept chunks (no copy)."""
        y = self._get(start, stop)[0].view()
        y.setflags(write=False)
        return y

    def _get(self, start: int, stop: int) -> tuple[np.ndarray, bool]:
        """(outputs [start, stop), whether the array may share memory with the kept chunks)."""
        start, stop = max(0, int(start)), min(int(stop), self.n_out)
        per = self._per_chunk
        if not per or start >= stop:
            return resample_range(self.x, self.sr_in, self.sr_out, start, stop, self.filter), False
        c0, c1 = start // per, -(-stop // per)
        with self._lock:
            have = {c: self._chunks[c] for c in range(c0, c1) if c in self._chunks}
            missing = [c for c in range(c0, c1) if c not in have]
            computed = None
            if missing:  # whole chunks: the same GEMMs and fix-ups as any range that covers them
                a, b = missing[0], missing[-1] + 1
                computed = resample_range(self.x, self.sr_in, self.sr_out, a * per, b * per, self.filter)
                for c in range(a, b):
                    have[c] = computed[(c - a) * per : (c + 1 - a) * per]
                if (a, b) != (c0, c1):
                    computed = None
            # the kept chunks are views of the array computed for them: copied if that one is long
            keep = range(max(c0, c1 - _KEEP_CHUNKS), c1)
            self._chunks = {c: have[c] if _owner(have[c]).size <= _KEEP_BASE else have[c].copy() for c in keep}
        if computed is not None:  # one array holds the whole range
            return computed[start - c0 * per : stop - c0 * per], _owner(computed).size <= _KEEP_BASE
        if c1 == c0 + 1:
            return have[c0][start - c0 * per : stop - c0 * per], True
        return np.concatenate([have[c] for c in range(c0, c1)])[start - c0 * per : stop - c0 * per], False


def _owner(a: np.ndarray) -> np.ndarray:
    """The array whose memory ``a`` views (``a`` itself if it owns its memory)."""
    return a if a.base is None else a.base


_KEEP_CHUNKS = 4
_KEEP_BASE = 16 * _CHUNK_OUTPUTS  # largest array kept alive by views of its chunks (4 MB)


def resampled(
    x: np.ndarray | LazySamples, sr_in: int, sr_out: int, filter: str = DEFAULT_FILTER
) -> np.ndarray | LazySamples:
    """``resample(x, sr_in, sr_out)`` of a 1-D signal; for LazySamples the result is lazy too.

    The lazy result computes each range when it is read (:class:`RangeResampler`: bit-identical
    to resampling the whole signal), so a long file is never resampled, or held, whole.
    """
    if not isinstance(x, LazySamples):
        return resample(x, sr_in, sr_out, filter=filter)
    sr_in, sr_out = _check(sr_in, sr_out, filter)
    if sr_in == sr_out:
        return x
    n_out = output_length(len(x), sr_in, sr_out, filter)
    if n_out < 1:
        raise AudioError(f"{len(x)} samples are too few to resample from {sr_in} Hz to {sr_out} Hz")
    ranges = RangeResampler(x, sr_in, sr_out, filter)
    return LazySamples(n_out, ranges.range, x.name)
