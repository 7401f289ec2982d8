"""pqeval.delay: estimating and compensating a constant delay between clean and degraded signals.

Real recordings from the shared folder, at their native rates and resampled (pqeval.resample),
delayed by whole samples (zero-padded at the start; a negative delay cuts the start and pads the
end) and kept at the clean length. Accuracy: ±1 ms, and ±1 sample where a sample is longer.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from helpers import read
from pqeval.audio import LazySamples
from pqeval.delay import (
    NOTE_MIN_SECONDS,
    RELIABLE_CONFIDENCE,
    DelayEstimate,
    compensate,
    delay_note,
    estimate_delay,
)
from pqeval.errors import AudioError
from pqeval.metrics import stoi_score
from pqeval.resample import resample
from pqeval.study.degrade import LEVELS, STUDY_KINDS, degrade

DELAYS_MS = (-500, -100, -10, 0, 10, 100, 500)
SNR_DB = 10.0
CLIP_SECONDS = 5.0  # the tests use the first 5 s of each recording (enough for 500 ms delays)


@cache
def clip(name: str, sr: int | None = None) -> tuple[np.ndarray, int]:
    """The first CLIP_SECONDS of a shared recording, mono, at ``sr`` (None: its native rate)."""
    x, native = read(name)
    x = x.mean(axis=1) if x.ndim == 2 else x
    x = x[: int(CLIP_SECONDS * native)]
    if sr is None or sr == native:
        return x, native
    return resample(x, native, sr), sr


def delayed(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` delayed by k samples (k < 0: advanced), same length, zeros in the gap."""
    if k >= 0:
        return np.concatenate([np.zeros(k), x[: len(x) - k]])
    return np.concatenate([x[-k:], np.zeros(-k)])


def noise_like(x: np.ndarray, n: int, snr_db: float = SNR_DB, seed: int = 1) -> np.ndarray:
    """White Gaussian noise (n,) ``snr_db`` below the variance of ``x`` (its power without DC)."""
    return np.random.default_rng(seed).standard_normal(n) * np.sqrt(np.var(x) / 10 ** (snr_db / 10))


def tolerance(sr: int) -> int:
    """±1 ms in samples, at least one sample."""
    return max(1, int(sr // 1000))


def samples_of(ms: int, sr: int) -> int:
    return int(round(ms * sr / 1000))


# --------------------------------------------------------------------------------------------
# accuracy on real recordings

COPY_CASES = [
    ("speech_libri_198_f.wav", 8000),
    ("speech_libri_198_f.wav", 16000),
    ("speech_libri_198_f.wav", 44100),
    ("speech_libri_198_f.wav", 48000),
    ("music_brahms_hungarian5_44k_stereo.flac", None),
    ("music_trumpet_sorohan.wav", 8000),
    ("env_robin_inspectorj.wav", None),
    ("env_humpback_glacierbay.wav", None),
    ("speech_cmu_goforward.wav", 96000),
]


@pytest.mark.parametrize(("name", "rate"), COPY_CASES)
@pytest.mark.parametrize("noisy", [False, True], ids=["copy", "noise10dB"])
def test_delayed_copy_found_to_a_millisecond(name, rate, noisy):
    x, sr = clip(name, rate)
    for ms in DELAYS_MS:
        k = samples_of(ms, sr)
        y = delayed(x, k)
        if noisy:
            y = y + noise_like(x, len(y))
        est = estimate_delay(x, y, sr)
        assert abs(est.samples - k) <= tolerance(sr), (ms, est)
        assert est.seconds == est.samples / sr
        assert est.reliable and est.confidence >= RELIABLE_CONFIDENCE, (ms, est)
        if not noisy and k == 0:
            assert est.samples == 0 and est.confidence == pytest.approx(1.0)


STUDY_CASES = [
    ("speech_libri_198_f.wav", 8000),
    ("speech_libri_3436_m.wav", 16000),
    ("speech_libri_5703_m.wav", 48000),
    ("music_brahms_hungarian5_44k_stereo.flac", None),
    ("env_robin_inspectorj.wav", None),
]


@pytest.mark.parametrize(("name", "rate"), STUDY_CASES)
@pytest.mark.parametrize("kind", STUDY_KINDS)
def test_delay_found_after_the_study_degradations(name, rate, kind):
    """Each level of a study degradation applied to the delayed clean; without delay -> 0.

    The degradation runs once on ``[zeros(pad), x, zeros(pad)]`` and a delay of k samples is the
    slice starting at ``pad - k``: the same as degrading the delayed signal, since these kinds act
    sample by sample (noise, bitdepth) or as a time-invariant filter (bitrate).
    """
    x, sr = clip(name, rate)
    pad = samples_of(500, sr)
    padded = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    for level in LEVELS:
        y_all = degrade(padded, sr, kind, level, seed=0)
        for ms in DELAYS_MS:
            k = samples_of(ms, sr)
            y = y_all[pad - k : pad - k + len(x)]
            est = estimate_delay(x, y, sr)
            assert abs(est.samples - k) <= tolerance(sr), (level, ms, est)
            # the robin call is 99.99 % above 2 kHz: bitrate high/extreme at 16 kHz keep almost none
            # of it, so the (correct) peak is rightly not called reliable
            if not (name.startswith("env_robin") and kind == "bitrate" and level != "low"):
                assert est.reliable, (level, ms, est)


def test_study_degradations_without_delay_give_zero_on_the_real_degraded_files():
    """degrade() of the clean itself (not padded) at every kind and level: delay 0."""
    x, sr = clip("pesq_speech.wav")
    for kind in STUDY_KINDS:
        for level in LEVELS:
            est = estimate_delay(x, degrade(x, sr, kind, level), sr)
            assert abs(est.samples) <= tolerance(sr) and est.reliable, (kind, level, est)


def test_published_noisy_pair_has_no_delay():
    x, sr = clip("pesq_speech.wav")
    y, _ = clip("pesq_speech_bab_0dB.wav")
    est = estimate_delay(x, y, sr)
    assert abs(est.samples) <= tolerance(sr) and est.reliable


@pytest.mark.parametrize(("name", "rate"), [("speech_libri_198_f.wav", 16000), ("speech_cmu_goforward.wav", 8000)])
@pytest.mark.parametrize("ms", [100, -100, 500, -500, 10])
def test_compensation_restores_stoi(name, rate, ms):
    """STOI after compensation equals the undelayed pair's over the same span (the compensated pair
    lacks the |delay| samples the shift pushed out). Against the whole undelayed pair only for
    the clean copy: for the noisy one, cutting 100 ms from the start or end of these clips moves
    STOI by up to 0.03 by itself (measured), whatever the alignment."""
    x, sr = clip(name, rate)
    k = samples_of(ms, sr)
    for deg in (x, degrade(x, sr, "noise", "high")):
        y = delayed(deg, k)
        est = estimate_delay(x, y, sr)
        ref2, deg2 = compensate(x, y, est.samples)
        after = stoi_score(np.asarray(ref2), np.asarray(deg2), sr).value
        span = slice(max(0, -k), len(x) - max(0, k))
        assert after == pytest.approx(stoi_score(x[span], deg[span], sr).value, abs=0.01), (ms, est)
        undelayed = stoi_score(x, deg, sr).value
        if deg is x:
            assert after == pytest.approx(undelayed, abs=0.01), (ms, est)
        if abs(ms) >= 100:
            assert stoi_score(x, y, sr).value < undelayed - 0.3  # the problem being fixed


# --------------------------------------------------------------------------------------------
# edge cases


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 96000])
def test_silence_is_unreliable_zero(sr):
    z = np.zeros(2 * sr)
    x, _ = clip("speech_libri_198_f.wav", sr)
    x = x[: 2 * sr]
    for a, b in ((z, z), (x, z), (z, x), (z[:0], x), (x, z[:0])):
        est = estimate_delay(a, b, sr)
        assert est == DelayEstimate(0, 0.0, 0.0, False)
        assert delay_note(est, sr) is None


def test_unrelated_recordings_are_unreliable():
    a, sr = clip("speech_libri_198_f.wav")
    for other in ("music_brahms_hungarian5.wav", "speech_libri_3436_m.wav", "env_humpback_glacierbay.wav"):
        b, _ = clip(other)
        assert not estimate_delay(a, b, sr).reliable
    noise = np.random.default_rng(0).standard_normal(len(a))
    assert not estimate_delay(a, noise, sr).reliable


def test_lengths_may_differ():
    x, sr = clip("speech_libri_3436_m.wav", 16000)
    k = samples_of(100, sr)
    longer = np.concatenate([np.zeros(k), x])  # padded, not trimmed
    assert estimate_delay(x, longer, sr).samples == k
    shorter = x[k : len(x) - sr]  # degraded leads and ends a second early
    assert estimate_delay(x, shorter, sr).samples == -k
    assert estimate_delay(x[: 3 * sr], longer, sr).samples == k


def test_search_is_bounded_by_max_seconds():
    x, sr = clip("speech_libri_198_f.wav", 16000)
    y = delayed(x, samples_of(300, sr))
    assert estimate_delay(x, y, sr, max_seconds=0.5).samples == samples_of(300, sr)
    est = estimate_delay(x, y, sr, max_seconds=0.1)
    assert abs(est.samples) <= samples_of(100, sr)
    assert not est.reliable or est.confidence < 0.9


def test_bad_arguments():
    x = np.ones(100)
    with pytest.raises(ValueError):
        estimate_delay(x, x, 0)
    with pytest.raises(ValueError):
        estimate_delay(x, x, 16000, max_seconds=-1)


# --------------------------------------------------------------------------------------------
# long, lazily read signals


class Counting:
    """A duck-typed lazy signal: ``base`` tiled, delayed by ``k``; counts the samples read."""

    def __init__(self, base: np.ndarray, n: int, k: int = 0) -> None:
        self.base, self.n, self.k, self.read = base, n, k, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: slice) -> np.ndarray:
        lo, hi, _ = key.indices(self.n)
        self.read += hi - lo
        i = np.arange(lo, hi) - self.k
        return np.where(i >= 0, self.base[i % len(self.base)], 0.0)


@pytest.mark.parametrize("ms", [250, -40])
def test_ten_minutes_at_48k_read_only_excerpts(ms):
    base, sr = clip("speech_libri_198_f.wav", 48000)
    n = 10 * 60 * sr
    k = samples_of(ms, sr)
    ref, deg = Counting(base, n), Counting(base, n, k)
    est = estimate_delay(ref, deg, sr)
    assert est.samples == k and est.reliable
    # probes 8 x 4 s of the reference, 3 x (4 + 2) s of the degraded: 50 s of the 1200 s
    assert ref.read + deg.read <= 50 * sr


def test_lazysamples_are_read_in_bounded_ranges():
    base, sr = clip("music_trumpet_sorohan.wav", 44100)
    n = 5 * 60 * sr
    k = samples_of(120, sr)
    ranges: list[tuple[int, int]] = []

    def reader(delay):
        def read(lo, hi):
            ranges.append((lo, hi))
            i = np.arange(lo, hi) - delay
            return np.where(i >= 0, base[i % len(base)], 0.0)

        return read

    ref, deg = LazySamples(n, reader(0), "ref"), LazySamples(n, reader(k), "deg")
    est = estimate_delay(ref, deg, sr)
    assert est.samples == k
    assert max(hi - lo for lo, hi in ranges) <= 7 * sr  # an excerpt widened by ±1 s, never the file
    ref2, deg2 = compensate(ref, deg, est.samples)
    assert isinstance(ref2, LazySamples) and isinstance(deg2, LazySamples)
    assert len(ref2) == len(deg2) == n - k
    ranges.clear()
    np.testing.assert_array_equal(ref2[1000:2000], deg2[1000:2000])
    assert sum(hi - lo for lo, hi in ranges) == 2000


# --------------------------------------------------------------------------------------------
# compensate, notes


def test_compensate_arrays():
    ref = np.arange(10.0)
    deg = np.concatenate([np.zeros(3), ref])[:12]
    r2, d2 = compensate(ref, deg, 3)
    np.testing.assert_array_equal(r2, ref[:9])
    np.testing.assert_array_equal(d2, ref[:9])
    r2, d2 = compensate(ref, ref[4:], -4)
    np.testing.assert_array_equal(r2, ref[4:])
    np.testing.assert_array_equal(d2, ref[4:])
    r2, d2 = compensate(ref, ref[:7], 0)
    assert len(r2) == len(d2) == 7
    with pytest.raises(AudioError):
        compensate(ref, deg, 12)
    with pytest.raises(AudioError):
        compensate(ref, deg, -10)


def test_estimate_record_and_note():
    est = DelayEstimate(1600, 0.1, 0.987654321, True)
    with pytest.raises(AttributeError):
        est.samples = 0  # type: ignore[misc]
    assert est.as_dict() == {"samples": 1600, "seconds": 0.1, "confidence": 0.987654, "reliable": True}
    note = delay_note(est, 16000)
    assert note is not None and "lags" in note and "100.0 ms" in note and "1600 samples" in note
    lead = delay_note(DelayEstimate(-80, -0.005, 0.9, True), 16000)
    assert lead is not None and "leads" in lead and "5.0 ms" in lead
    assert delay_note(DelayEstimate(1600, 0.1, 0.1, False), 16000) is None
    tiny = int(NOTE_MIN_SECONDS * 16000) - 1
    assert delay_note(DelayEstimate(tiny, tiny / 16000, 0.99, True), 16000) is None
