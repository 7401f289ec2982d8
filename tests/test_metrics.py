"""PESQ and STOI wrappers: published values, and failures as NaN with a reason."""

import math

import numpy as np
import pytest

from helpers import read
from pqeval.metrics import SILENCE_DBFS, pesq_score, stoi_score


@pytest.fixture(scope="module")
def pair():
    ref, sr = read("pesq_speech.wav")
    deg, _ = read("pesq_speech_bab_0dB.wav")
    return ref, deg, sr


def test_published_values(pair):
    """python-pesq's README/tests and pystoi (agreeing with the MATLAB reference): ../shared/audio/README.md."""
    ref, deg, sr = pair
    assert pesq_score(ref, deg, sr, "wb").value == pytest.approx(1.0832337141036987, abs=1e-9)
    assert pesq_score(ref, deg, sr, "nb").value == pytest.approx(1.6072081327438354, abs=1e-9)
    assert stoi_score(ref, deg, sr).value == pytest.approx(0.6739177895331301, abs=1e-9)
    assert stoi_score(ref, deg, sr, extended=True).value == pytest.approx(0.3904499910335536, abs=1e-9)


def test_other_rates_are_resampled_for_pesq(pair):
    from pqeval.resample import resample

    ref, deg, sr = pair
    r = pesq_score(resample(ref, sr, 48000), resample(deg, sr, 48000), 48000, "wb")
    assert r.ok and r.details["rate"] == 16000 and abs(r.value - 1.083) < 0.05


@pytest.mark.parametrize(
    "make, metric, reason",
    [
        (lambda r, d: (r, np.zeros_like(d)), "pesq_wb", "degraded signal is silent (all zero, or RMS below -100 dBFS)"),
        (lambda r, d: (np.zeros_like(r), d), "pesq_wb", "no utterances"),
        (lambda r, d: (r[:3000], d[:3000]), "pesq_wb", "too short for PESQ"),
        (lambda r, d: (r[:8000], d[:8000] * 0 + 1e-3 * np.random.default_rng(0).standard_normal(8000)), "stoi", None),
        (lambda r, d: (np.r_[r[5000:8000], np.zeros(13000)], d[:16000]), "stoi", "too little non-silent audio"),
        (lambda r, d: (r[:4000], d[:4000]), "stoi", "too short for STOI: 4000 samples"),
        (lambda r, d: (np.zeros_like(r), d), "stoi", "clean reference is silent (all zero, or RMS below -100 dBFS)"),
        (lambda r, d: (r, d[:-10]), "stoi", "lengths differ"),
    ],
)
def test_failures_are_nan_with_reason(pair, make, metric, reason):
    ref, deg, sr = pair
    r, d = make(ref, deg)
    res = pesq_score(r, d, sr, metric.split("_")[1]) if metric.startswith("pesq") else stoi_score(r, d, sr)
    if reason is None:  # a valid (if low) score: not the 1e-5 placeholder
        assert res.ok and res.value != 1e-5
    else:
        assert math.isnan(res.value) and reason in res.reason


def test_estoi_deterministic_and_global_rng_untouched(pair):
    ref, deg, sr = pair
    ref = ref.copy()
    ref[10000:20000] = 0
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = stoi_score(ref, deg, sr, extended=True).value
    assert np.array_equal(np.random.get_state()[1], before)
    assert stoi_score(ref, deg, sr, extended=True).value == a


def test_long_input_crash_is_contained(pair):
    """pesq's C code segfaults on ~180 s of speech; pqeval runs long input in a child process."""
    from pqeval.metrics import PESQ_MAX_SECONDS

    ref, deg, sr = pair
    n = 200 * sr
    r = np.tile(ref, n // len(ref) + 1)[:n]
    d = np.tile(deg, n // len(deg) + 1)[:n]
    res = pesq_score(r, d, sr)
    assert not res.ok and "PESQ crashed" in res.reason and "code -11" in res.reason
    ok = pesq_score(r[: 30 * sr], d[: 30 * sr], sr)  # isolated too, and it scores
    assert ok.ok and 1 < ok.value < 2
    n = int((PESQ_MAX_SECONDS + 1) * sr)
    res = pesq_score(np.resize(ref, n), np.resize(deg, n), sr)
    assert not res.ok and "too long for PESQ" in res.reason


def _faint(n: int, kind: str) -> np.ndarray:
    if kind == "denormal":
        return 1e-310 * np.sign(np.random.default_rng(1).standard_normal(n))
    return 10 ** (-120 / 20) * np.random.default_rng(1).standard_normal(n)  # -120 dBFS RMS noise


@pytest.mark.parametrize("kind", ["denormal", "noise_-120dBFS"])
def test_near_silence_is_silent_not_a_score(pair, kind):
    """Denormals and -120 dBFS noise were scored (STOI 0.0, PESQ ~1.1) because only exact zeros were caught."""
    ref, deg, sr = pair
    faint = _faint(len(ref), kind)
    for mode in ("wb", "nb"):
        res = pesq_score(ref, faint, sr, mode)
        assert math.isnan(res.value) and res.reason == "degraded signal is silent (all zero, or RMS below -100 dBFS)"
    for extended in (False, True):
        res = stoi_score(faint, deg, sr, extended=extended)
        assert math.isnan(res.value) and res.reason == "clean reference is silent (all zero, or RMS below -100 dBFS)"


def test_quiet_but_audible_input_is_scored(pair):
    """The silence threshold is on RMS: speech at -80 dBFS RMS (20 dB above it) is still scored."""
    ref, deg, sr = pair
    gain = 10 ** (-80 / 20) / np.sqrt(np.mean(ref**2))
    assert 20 * np.log10(np.sqrt(np.mean((ref * gain) ** 2))) > SILENCE_DBFS + 19
    assert pesq_score(ref, deg * gain, sr).ok
    assert stoi_score(ref * gain, deg, sr).value == pytest.approx(0.6739177895331301, abs=1e-9)  # STOI is scale-free


@pytest.mark.parametrize("n", [0, 1, 2, 255, 1000, 6553])
def test_very_short_stoi_has_a_clean_reason(pair, n):
    """A 1-sample clip used to give numpy's "axis 1 is out of bounds" as the STOI reason."""
    ref, deg, sr = pair
    for extended, name in ((False, "STOI"), (True, "ESTOI")):
        res = stoi_score(ref[20000 : 20000 + n], deg[20000 : 20000 + n], sr, extended=extended)
        assert math.isnan(res.value) and res.reason.startswith(
            f"too short for {name}: {n} samples (it needs at least 6554"
        )


def test_identical_inputs_score_exactly_one(pair):
    """pystoi gives 0.9999999999999994 (STOI) for a file against itself; pqeval gives exactly 1."""
    ref, deg, sr = pair
    for x in (ref, deg, np.resize(ref, 70 * sr)):
        assert stoi_score(x, x.copy(), sr).value == 1.0
        assert stoi_score(x, x.copy(), sr, extended=True).value == 1.0
    # identical but too short / silent still say why
    assert stoi_score(ref[:100], ref[:100].copy(), sr).reason.startswith("too short for STOI")
    assert not stoi_score(ref * 0, ref * 0, sr).ok
