"""PESQ (ITU-T P.862 via the ``pesq`` package) and STOI/ESTOI (``pystoi``) that never crash a run.

Every known failure of those packages becomes a NaN with a reason:
- pesq raises NoUtterancesError on speech-free input, BufferTooShortError under 0.25 s, and a
  bare ValueError on an all-zero or NaN degraded signal; it prints usage text on a bad rate (we
  only ever call it at 8 or 16 kHz);
- pystoi raises on mismatched lengths and *returns* 1e-5 (with a RuntimeWarning) when fewer than
  30 non-silent frames remain: that 1e-5 is not a score and is reported as NaN. STOI/ESTOI are
  computed by ``pqeval.stoi``, equal to pystoi (to 1e-10; identical inputs score exactly 1) in
  memory that does not grow with length (pystoi's does: bench/results/stoi_memory.md);
- near-silence (RMS below ``SILENCE_DBFS``, e.g. denormals or -120 dBFS noise) is treated like
  all-zero input: a silent degraded signal for PESQ, a silent clean reference for STOI/ESTOI;
- pesq's C code overflows a fixed table of utterances on long speech and kills the process with
  a segmentation fault on a few minutes of speech (docs/measurements.md). Pairs longer than
  ``PESQ_ISOLATE_SECONDS`` are therefore scored in a forked child process, and a crash there is
  a NaN with its reason.
PESQ's C code carries an ITU/OPTICOM licence restricting commercial use; the ``pesq`` package is
optional and, without it, the PESQ columns are NaN with that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .resample import resample

PESQ_MIN_SECONDS = 0.25
PESQ_ISOLATE_SECONDS = 20.0  # P.862 is specified for 8-20 s; longer input runs in a child process
PESQ_MAX_SECONDS = 300.0  # beyond this pesq crashes on speech after minutes of work: not attempted
ESTOI_SEED = 0  # pystoi's ESTOI draws numpy's legacy RNG; pqeval.stoi draws the same stream from this seed
SILENCE_DBFS = -100.0  # RMS (re full scale 1.0) below which a signal counts as silent


@dataclass
class MetricResult:
    """One metric of one pair: ``value`` is NaN when ``reason`` says why it could not be computed."""

    name: str
    value: float
    reason: str | None = None
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not math.isnan(self.value)


def failed(name: str, reason: str) -> MetricResult:
    return MetricResult(name, float("nan"), reason)


def is_silent(x: np.ndarray) -> bool:
    """RMS below ``SILENCE_DBFS`` (all zero, denormals, faint noise); no copy of ``x`` is made."""
    if len(x) == 0:
        return True
    x = np.asarray(x, dtype=np.float64)
    energy = float(np.dot(x, x))  # squares of denormals underflow to 0
    return energy <= len(x) * 10.0 ** (SILENCE_DBFS / 10)


SILENT = f"all zero, or RMS below {SILENCE_DBFS:g} dBFS"


def pesq_score(ref: np.ndarray, deg: np.ndarray, sr: int, mode: str = "wb") -> MetricResult:
    """PESQ MOS-LQO of equal-length mono signals at ``sr`` Hz.

    mode "wb" (P.862.2) runs at 16 kHz; "nb" (P.862.1) at 8 kHz for 8 kHz input and at 16 kHz
    otherwise (as python-pesq allows). Other rates are resampled first (resampy kaiser_best).
    """
    name = f"pesq_{mode}"
    try:
        import pesq as _pesq
    except ImportError:
        return failed(name, "the optional 'pesq' package is not installed (pip install pesq)")
    target = 8000 if (mode == "nb" and sr == 8000) else 16000
    if len(ref) / sr < PESQ_MIN_SECONDS:
        return failed(name, f"too short for PESQ: {len(ref) / sr:.3f} s < {PESQ_MIN_SECONDS} s")
    if len(ref) / sr > PESQ_MAX_SECONDS:
        return failed(
            name,
            f"too long for PESQ: {len(ref) / sr:.0f} s > {PESQ_MAX_SECONDS:.0f} s "
            "(the pesq package crashes on long speech); score shorter segments",
        )
    if is_silent(deg):  # pesq raises a bare ValueError on all zero, and scores denormals/faint noise ~1.1
        return failed(name, f"degraded signal is silent ({SILENT})")
    r, d = (resample(ref, sr, target), resample(deg, sr, target)) if sr != target else (ref, deg)
    try:
        if len(r) / target > PESQ_ISOLATE_SECONDS:
            value = _pesq_in_child(target, r, d, mode)
        else:
            value = _pesq.pesq(target, r, d, mode, on_error=_pesq.PesqError.RAISE_EXCEPTION)
    except _PesqCrashed as e:
        return failed(
            name,
            f"PESQ crashed on this {len(r) / target:.0f} s input ({e}); "
            "the pesq package fails on long speech: score shorter segments",
        )
    except _pesq.NoUtterancesError:
        return failed(name, "PESQ detected no utterances in the clean reference (it needs speech)")
    except _pesq.BufferTooShortError:
        return failed(name, "too short for PESQ after its voice-activity alignment")
    except (_pesq.PesqError, ValueError, MemoryError) as e:
        return failed(name, f"PESQ failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    return MetricResult(name, float(value), details={"rate": target})


class _PesqCrashed(Exception):
    pass


def _pesq_child(conn, fs: int, ref: np.ndarray, deg: np.ndarray, mode: str) -> None:
    import faulthandler

    import pesq as _pesq

    faulthandler.disable()  # an expected crash here is reported by the parent, not dumped on stderr

    try:
        conn.send(("ok", _pesq.pesq(fs, ref, deg, mode, on_error=_pesq.PesqError.RAISE_EXCEPTION)))
    except BaseException as e:  # sent back and re-raised as the same type in the parent
        conn.send(("error", e))
    finally:
        conn.close()


def _pesq_in_child(fs: int, ref: np.ndarray, deg: np.ndarray, mode: str) -> float:
    """pesq.pesq in a forked process, so that a crash of its C code cannot take the run down."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_pesq_child, args=(send, fs, ref, deg, mode), daemon=True)
    proc.start()
    send.close()
    try:
        kind, payload = recv.recv()
    except EOFError:
        proc.join()
        raise _PesqCrashed(f"its process ended with code {proc.exitcode}") from None
    finally:
        recv.close()
    proc.join()
    if kind == "error":
        raise payload
    return float(payload)


def stoi_score(ref: np.ndarray, deg: np.ndarray, sr: int, extended: bool = False) -> MetricResult:
    """STOI (Taal et al. 2011) or ESTOI (Jensen & Taal 2016) of equal-length signals at ``sr`` Hz.

    Identical inputs score exactly 1.
    """
    name = "estoi" if extended else "stoi"
    try:
        import pystoi  # noqa: F401  (its filter and band matrix; pqeval.stoi computes the rest)
    except ImportError:
        return failed(name, "the 'pystoi' package is not installed")
    from . import stoi as _stoi

    if len(ref) != len(deg):
        return failed(name, f"lengths differ ({len(ref)} vs {len(deg)} samples)")
    if len(ref) < _stoi.min_samples(sr):
        return failed(
            name,
            f"too short for {name.upper()}: {len(ref)} samples "
            f"(it needs at least {_stoi.min_samples(sr)} at {sr} Hz, 30 frames ≈ 0.4 s)",
        )
    if is_silent(ref):
        return failed(name, f"clean reference is silent ({SILENT})")
    try:
        value = _stoi.stoi(np.asarray(ref, np.float64), np.asarray(deg, np.float64), sr, extended, seed=ESTOI_SEED)
    except _stoi.TooShort:
        return failed(
            name, f"too little non-silent audio for {name.upper()} (needs 30 frames ≈ 0.4 s after removing silence)"
        )
    except Exception as e:  # never crash a run
        return failed(name, f"{name.upper()} failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    if not math.isfinite(value):
        return failed(name, f"{name.upper()} is not finite (silent or constant input)")
    return MetricResult(name, value)
