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
with 0.2). Those few outputs are recomputed the way resampy computes them.
"""

from __future__ import annotations

import functools
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


_ACCUMULATE_BLOCK = 1 << 20


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


_register_marks: dict[tuple[int, int], list[float]] = {}


def _needs_flip_fix(sr_in: int, sr_out: int, filter: str) -> bool:
    """Flips matter only when resampy's table step ``int(scale * per_zero)`` is not exact (downsampling)."""
    scale = min(1.0, float(sr_out) / sr_in)
    return scale * FILTERS[filter].per_zero != int(scale * FILTERS[filter].per_zero)


def _fix_flips(
    y: np.ndarray, xs: np.ndarray, offset: int, n_in: int, start: int, sr_in: int, sr_out: int, filter: str
) -> None:
    """Recompute, in place, outputs y[k] (global index start + k) whose float time fell below an integer.

    ``xs`` holds input samples [offset, offset + len(xs)) of a signal n_in samples long.
    """
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
    """Outputs at input times ``tr`` (shape (F,)) read tap by tap from the table, as resampy's loop.

    ``xs`` holds input samples [offset, offset + len(xs)) of a signal n_in samples long. Each
    output is summed over the same padded number of taps in blocks of _DIRECT_BLOCK, so its
    value does not depend on which other outputs are computed with it.
    """
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


def resampled(
    x: np.ndarray | LazySamples, sr_in: int, sr_out: int, filter: str = DEFAULT_FILTER
) -> np.ndarray | LazySamples:
    """``resample(x, sr_in, sr_out)`` of a 1-D signal; for LazySamples the result is lazy too.

    The lazy result computes each range with ``resample_range`` when it is read (bit-identical
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
    return LazySamples(n_out, lambda lo, hi: resample_range(x, sr_in, sr_out, lo, hi, filter), x.name)
