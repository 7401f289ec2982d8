"""pqeval.resample against resampy's kaiser_best (the reference both torchvggish and openl3 use).

The installed resampy (0.2.2, pinned by the export extra for openl3) is compared live; both
filter versions are also compared with golden outputs that scripts/make_resample_golden.py wrote
with resampy 0.2.2 and 0.4.3.
"""

from pathlib import Path

import numpy as np
import pytest

from helpers import read
from pqeval.errors import AudioError
from pqeval.resample import FILTERS, half_window, output_length, polyphase_filter, resample

DATA = Path(__file__).parent / "data"
RATES_IN = [8000, 11025, 22050, 44100, 44101, 48000, 96000]  # 44101: coprime with both, the direct path
GOLDEN = {"kaiser_best_0.2": "resampy_0.2.2_kaiser_best.npz", "kaiser_best_0.3": "resampy_0.4.3_kaiser_best.npz"}


def installed_filter() -> str:
    import resampy

    major, minor = (int(v) for v in resampy.__version__.split(".")[:2])
    return "kaiser_best_0.2" if (major, minor) < (0, 3) else "kaiser_best_0.3"


@pytest.fixture(scope="module")
def signal():
    x, _ = read("speech_libri_198_f.wav")
    rng = np.random.default_rng(0)
    return np.concatenate([x[: 16000 * 2], 0.3 * rng.standard_normal(16000)])


@pytest.mark.parity  # resampy is part of the export stack
@pytest.mark.parametrize("sr_in", RATES_IN)
@pytest.mark.parametrize("sr_out", [16000, 48000])
def test_matches_installed_resampy(signal, sr_in, sr_out):
    import resampy  # the export stack, which the test command installs

    x = signal  # treated as if recorded at sr_in: the filter does not care what the content is
    if sr_in == sr_out:  # resampy 0.2 low-passes even here, but openl3 and torchvggish skip the call
        assert np.array_equal(resample(x, sr_in, sr_out), x)
        return
    want = resampy.resample(x, sr_in, sr_out, filter="kaiser_best")
    got = resample(x, sr_in, sr_out, filter=installed_filter())
    assert got.shape == want.shape
    # resampy 0.2 accumulates its float time register, which drifts by ~1e-12 samples per output
    # sample; over 3 s that moves high-frequency content by ~1e-7 of full scale. We keep exact
    # phases (and reproduce only the integer flips the drift causes), so allow it here.
    tol = 1e-6 if installed_filter() == "kaiser_best_0.2" else 1e-8
    assert np.abs(got - want).max() <= tol * np.abs(want).max()


@pytest.mark.parametrize("name", list(GOLDEN))
def test_matches_golden_of_both_resampy_versions(name):
    golden = np.load(DATA / GOLDEN[name])
    other = next(n for n in GOLDEN if n != name)
    for key in golden.files:
        a, b = (int(v) for v in key.split("_"))
        n = a // 10
        t = np.arange(n) / a
        x = 0.5 * np.sin(2 * np.pi * (100 + 0.4 * a * t) * t) + 0.1 * np.random.default_rng(a).standard_normal(n)
        want = golden[key]
        assert np.abs(resample(x, a, b, filter=name) - want).max() <= 1e-8 * np.abs(want).max(), key
        if a % b:  # the two filters really differ, so the test can tell them apart
            assert np.abs(resample(x, a, b, filter=other) - want).max() > 1e-4, key


def test_tables_regenerate_their_design():
    for name, f in FILTERS.items():
        w = half_window(name)
        assert len(w) == f.zeros * f.per_zero + 1 and w[0] == pytest.approx(f.rolloff)
        assert abs(w[-1]) < 1e-6


def test_multichannel_axis_and_length():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4410))
    y = resample(x, 44100, 16000, axis=-1)
    assert y.shape == (2, output_length(4410, 44100, 16000)) == (2, 1600)
    np.testing.assert_allclose(y[1], resample(x[1], 44100, 16000))


def test_identity_and_errors():
    x = np.arange(10.0)
    assert np.array_equal(resample(x, 16000, 16000), x)
    with pytest.raises(AudioError, match="too few"):
        resample(np.ones(2), 48000, 16000)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)
    with pytest.raises(ValueError, match="filter must be"):
        resample(x, 8000, 16000, filter="sinc")


@pytest.mark.parametrize("name", list(FILTERS))
def test_passband_and_stopband(name):
    """A 1 kHz tone survives 48k->16k; a 10 kHz tone (above the new Nyquist) is removed.

    (resampy 0.2's filter: +0.03 dB at 1 kHz, -71 dB at 10 kHz; 0.3's: +0.002 dB, -96 dB.)"""
    t = np.arange(48000) / 48000
    lo = resample(np.sin(2 * np.pi * 1000 * t), 48000, 16000, filter=name)
    hi = resample(np.sin(2 * np.pi * 10000 * t), 48000, 16000, filter=name)
    mid = slice(1000, -1000)
    assert abs(np.sqrt(2) * lo[mid].std() - 1) < 5e-3
    assert hi[mid].std() < 1e-3  # > 60 dB down


def test_filter_is_cached_and_rational():
    up, down, taps = polyphase_filter(44100, 16000)
    assert (up, down) == (160, 441)
    assert taps.ndim == 1 and len(taps) % 2 == 1
    assert polyphase_filter(44100, 16000)[2] is taps


@pytest.mark.parametrize("name", list(FILTERS))
@pytest.mark.parametrize("sr_in, sr_out", [(16000, 48000), (44100, 16000), (88200, 48000), (22050, 16000)])
def test_range_equals_whole_signal(name, sr_in, sr_out):
    """Block-by-block resampling (bounded memory on long clips) gives exactly the whole-signal values."""
    from pqeval.resample import resample_range

    x = np.random.default_rng(sr_in).standard_normal(3 * sr_in)
    full = resample(x, sr_in, sr_out, filter=name)
    n = len(full)
    for a, b in [(0, 1000), (1000, 5000), (n // 2, n // 2 + 777), (n - 500, n + 10), (12345, n)]:
        assert np.array_equal(resample_range(x, sr_in, sr_out, a, b, filter=name), full[a : min(b, n)])


@pytest.mark.parametrize("sr_in, sr_out", [(16000, 48000), (44100, 48000), (8000, 16000), (48000, 16000)])
def test_gemm_form_equals_polyphase_filter(sr_in, sr_out):
    """The chunked GEMM computes the polyphase filter scipy's resample_poly runs (up to summation order).

    Rates without resampy's float time-register flips, so the two must agree everywhere."""
    from scipy.signal import resample_poly

    x = np.random.default_rng(7).standard_normal(2 * sr_in + 123)
    up, down, taps = polyphase_filter(sr_in, sr_out)
    want = resample_poly(x, up, down, window=taps / up)
    got = resample(x, sr_in, sr_out)
    assert np.abs(got - want[: len(got)]).max() <= 1e-12


def test_range_reads_only_what_it_needs():
    """resample_range takes any sliceable signal and reads a bounded neighbourhood of the range."""
    from pqeval.resample import resample_range

    x = np.random.default_rng(3).standard_normal(30 * 44100)
    reads = []

    class Lazy:
        def __len__(self):
            return len(x)

        def __getitem__(self, s):
            reads.append((s.start, s.stop))
            return x[s]

    full = resample(x, 44100, 16000)
    got = resample_range(Lazy(), 44100, 16000, 200000, 210000)
    assert np.array_equal(got, full[200000:210000])
    ((lo, hi),) = reads
    assert hi - lo < 3 * 44100  # a few chunks of input, not the 30 s signal


@pytest.mark.parametrize("name", list(FILTERS))
@pytest.mark.parametrize("sr_in, sr_out", [(44100, 16000), (16000, 48000), (48000, 16000)])
def test_direct_path_equals_gemm_path(name, sr_in, sr_out, monkeypatch):
    """Coprime rates take the direct path (the GEMM plan would need tens of GB); on rates both paths
    can run, they agree to float rounding."""
    import pqeval.resample as R

    x = np.random.default_rng(7).standard_normal(sr_in)
    gemm = R.resample(x, sr_in, sr_out, filter=name)
    monkeypatch.setattr(R, "_MAX_PLAN_ELEMENTS", 0)
    direct = R.resample(x, sr_in, sr_out, filter=name)
    np.testing.assert_allclose(direct, gemm, rtol=0, atol=1e-10)  # measured 4e-12: same products, other order


@pytest.mark.parametrize("sr_in, sr_out", [(44101, 16000), (16000, 2667), (2667, 16000), (44101, 48000)])
def test_coprime_rates_stay_small_and_stream_identically(sr_in, sr_out):
    """44101 Hz input or the 2667 Hz inside a 6x bit-rate reduction once built a tap matrix of
    2-25 GB; now they take the direct path, and ranges still equal the whole signal."""
    import pqeval.resample as R

    assert R._plan_elements(sr_in, sr_out, R.DEFAULT_FILTER) > R._MAX_PLAN_ELEMENTS
    x = np.random.default_rng(8).standard_normal(2 * sr_in)
    whole = resample(x, sr_in, sr_out)
    assert whole.shape == (output_length(len(x), sr_in, sr_out),) and np.isfinite(whole).all()
    parts = [R.resample_range(x, sr_in, sr_out, a, a + 777) for a in range(0, len(whole), 777)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
