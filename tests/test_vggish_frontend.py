"""The numpy VGGish frontend against torchvggish.vggish_input.waveform_to_examples.

The comparisons with torchvggish are in the parity tier (torchvggish imported inside them); the
shape checks need only numpy.
"""

import numpy as np
import pytest

from helpers import read
from pqeval.vggish import VGGishFrontend


def _vi():
    import torchvggish.vggish_input as vi

    return vi


@pytest.fixture(scope="module")
def fe():
    return VGGishFrontend()


@pytest.mark.parity
@pytest.mark.parametrize(
    "name", ["speech_libri_198_f.wav", "music_trumpet_sorohan.wav", "env_robin_inspectorj.wav", "pesq_speech.wav"]
)
def test_bit_identical_at_16k(fe, name):
    vi = _vi()
    x, sr = read(name)
    want = vi.waveform_to_examples(x, sr, return_tensor=False)
    got = fe.examples(x, sr)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.abs(got - want).max() == 0.0


@pytest.mark.parity
@pytest.mark.parametrize("n", [15600, 15601, 31000, 31200, 16000 * 3 + 7])
def test_bit_identical_synthetic_lengths(fe, n):
    vi = _vi()
    rng = np.random.default_rng(n)
    t = np.arange(n) / 16000
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(n)
    want = vi.waveform_to_examples(x, 16000, return_tensor=False)
    got = fe.examples(x, 16000)
    assert got.shape == want.shape
    assert np.array_equal(got, want)


@pytest.mark.parity
@pytest.mark.parametrize("name", ["music_brahms_hungarian5_44k_stereo.flac", "music_trumpet_sorohan_44k_stereo.flac"])
def test_close_after_resampling(fe, name):
    vi = _vi()
    x, sr = read(name)
    want = vi.waveform_to_examples(x, sr, return_tensor=False)  # averages channels, resampy to 16 kHz
    got = fe.examples(x.mean(axis=1), sr)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-6


def test_short_clips(fe):
    assert fe.min_samples == 15600  # 0.975 s at 16 kHz
    assert fe.examples(np.ones(15599) * 0.1, 16000).shape == (0, 96, 64)
    assert fe.examples(np.ones(15600) * 0.1, 16000).shape == (1, 96, 64)
    assert fe.examples(np.ones(100) * 0.1, 16000).shape == (0, 96, 64)


def test_mel_matrix_shape(fe):
    m = fe.mel_matrix
    assert m.shape == (257, 64) and (m[0] == 0).all() and (m.sum(axis=0) > 0).all()
