"""pqeval.resample against resampy's kaiser_best (the reference both torchvggish and openl3 use)."""

import numpy as np
import pytest

from conftest import read
from pqeval.errors import AudioError
from pqeval.resample import output_length, polyphase_filter, resample

RATES_IN = [8000, 11025, 22050, 44100, 48000, 96000]


@pytest.fixture(scope="module")
def signal():
    x, _ = read("speech_libri_198_f.wav")
    rng = np.random.default_rng(0)
    return np.concatenate([x[: 16000 * 2], 0.3 * rng.standard_normal(16000)])


@pytest.mark.parametrize("sr_in", RATES_IN)
@pytest.mark.parametrize("sr_out", [16000, 48000])
def test_matches_resampy(signal, sr_in, sr_out):
    import resampy  # the export stack, which the test command installs
    x = signal  # treated as if recorded at sr_in: the filter does not care what the content is
    want = resampy.resample(x, sr_in, sr_out, filter="kaiser_best")
    got = resample(x, sr_in, sr_out)
    assert got.shape == want.shape
    # resampy's table is regenerated, not copied: agreement to ~1e-9 of full scale.
    assert np.abs(got - want).max() <= 1e-8 * np.abs(want).max()


def test_multichannel_axis_and_length():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4410))
    y = resample(x, 44100, 16000, axis=-1)
    assert y.shape == (2, output_length(4410, 44100, 16000)) == (2, 1600)
    np.testing.assert_allclose(y[1], resample(x[1], 44100, 16000))


def test_identity_and_errors():
    x = np.arange(10.0)
    assert resample(x, 16000, 16000) is not None and np.array_equal(resample(x, 16000, 16000), x)
    with pytest.raises(AudioError, match="too few"):
        resample(np.ones(2), 48000, 16000)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)


def test_passband_and_stopband():
    """A 1 kHz tone survives 48k->16k; a 10 kHz tone (above the new Nyquist) is removed."""
    t = np.arange(48000) / 48000
    lo = resample(np.sin(2 * np.pi * 1000 * t), 48000, 16000)
    hi = resample(np.sin(2 * np.pi * 10000 * t), 48000, 16000)
    mid = slice(1000, -1000)
    assert abs(np.sqrt(2) * lo[mid].std() - 1) < 1e-3
    assert hi[mid].std() < 1e-4  # > 80 dB down


def test_filter_is_cached_and_rational():
    up, down, taps = polyphase_filter(44100, 16000)
    assert (up, down) == (160, 441)
    assert taps.ndim == 1 and len(taps) % 2 == 1
    assert polyphase_filter(44100, 16000)[2] is taps
