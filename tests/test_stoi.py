"""pqeval.stoi: the chunked STOI/ESTOI equals pystoi on real recordings, in memory that does not grow with length."""

import tracemalloc

import numpy as np
import pytest

from helpers import read
from pqeval import stoi as S
from pqeval.metrics import stoi_score
from pqeval.resample import resample


def _pystoi(x, y, sr, extended):
    from pystoi import stoi

    state = np.random.get_state()
    try:
        np.random.seed(0)  # pqeval's ESTOI_SEED
        return float(stoi(x, y, sr, extended=extended))
    finally:
        np.random.set_state(state)


def _noisy(x, snr_db, seed):
    n = np.random.default_rng(seed).standard_normal(len(x))
    return x + n * np.sqrt(np.mean(x**2) / np.mean(n**2)) * 10 ** (-snr_db / 20)


def _mono(name):
    x, sr = read(name)
    return (x.mean(axis=1) if x.ndim == 2 else x), sr


def _case(name):
    """(clean, degraded, rate) pairs from the shared recordings."""
    if name == "pesq_babble":
        ref, sr = read("pesq_speech.wav")
        return ref, read("pesq_speech_bab_0dB.wav")[0], sr
    if name == "libri_f_noise":
        ref, sr = read("speech_libri_198_f.wav")
        return ref, _noisy(ref, 5, 1), sr
    if name == "libri_m_8k":
        ref, sr = read("speech_libri_3436_m.wav")
        ref = resample(ref, sr, 8000)
        return ref, _noisy(ref, 0, 2), 8000
    if name == "brahms_44k":
        ref, sr = _mono("music_brahms_hungarian5_44k_stereo.flac")
        return ref, _noisy(ref, 10, 3), sr
    if name == "goforward_gaps_48k":  # silent stretches in the clean and a dropout in the degraded
        ref, sr = read("speech_cmu_goforward.wav")
        ref, deg = ref.copy(), _noisy(ref, 3, 4)
        ref[8000:14000] = 0
        deg[20000:30000] = 0
        return resample(ref, sr, 48000), resample(deg, sr, 48000), 48000
    if name == "libri_10k":
        ref, sr = read("speech_libri_5703_m.wav")
        ref = resample(ref, sr, 10000)
        return ref, _noisy(ref, -3, 5), 10000
    raise KeyError(name)


CASES = ["pesq_babble", "libri_f_noise", "libri_m_8k", "brahms_44k", "goforward_gaps_48k", "libri_10k"]


@pytest.mark.parametrize("extended", [False, True], ids=["stoi", "estoi"])
@pytest.mark.parametrize("name", CASES)
def test_equals_pystoi_on_recordings(name, extended):
    ref, deg, sr = _case(name)
    assert S.stoi(ref, deg, sr, extended) == pytest.approx(_pystoi(ref, deg, sr, extended), abs=1e-10)


@pytest.mark.parametrize("extended", [False, True], ids=["stoi", "estoi"])
@pytest.mark.parametrize("name", ["pesq_babble", "brahms_44k", "goforward_gaps_48k"])
def test_equals_pystoi_with_tiny_chunks(monkeypatch, name, extended):
    """Chunks of 37 frames / 13 segments: every boundary case (silent chunks, carries) on short clips."""
    monkeypatch.setattr(S, "CHUNK_FRAMES", 37)
    monkeypatch.setattr(S, "CHUNK_SEGMENTS", 13)
    ref, deg, sr = _case(name)
    assert S.stoi(ref, deg, sr, extended) == pytest.approx(_pystoi(ref, deg, sr, extended), abs=1e-10)


@pytest.mark.parametrize("extended", [False, True], ids=["stoi", "estoi"])
@pytest.mark.parametrize("name, seconds", [("pesq_babble", 70), ("goforward_gaps_48k", 61)])
def test_equals_pystoi_longer_than_a_chunk(name, seconds, extended):
    ref, deg, sr = _case(name)
    n = seconds * sr
    assert n * S.FS // sr > 1.1 * S.CHUNK_FRAMES * S.HOP  # more than one chunk in both passes
    ref, deg = np.resize(ref, n), np.resize(deg, n)
    assert S.stoi(ref, deg, sr, extended) == pytest.approx(_pystoi(ref, deg, sr, extended), abs=1e-10)


@pytest.mark.parametrize("sr", [8000, 10000, 16000, 22050, 44100, 48000])
def test_resampler_blocks_are_pystoi_bitwise(sr):
    """Any range of the 10 kHz signal, from upfirdn over a slice, is bit for bit pystoi's resample_oct."""
    from pystoi.utils import resample_oct

    ref, _ = read("speech_libri_198_f.wav")
    x = resample(ref, 16000, sr)
    full = resample_oct(x, S.FS, sr)
    r = S._Resampler(x, sr)
    assert r.n_out == len(full)
    for a, b in [
        (0, 1),
        (0, len(full)),
        (1234, 40001),
        (len(full) - 777, len(full)),
        (len(full) // 2, len(full) // 2 + 5),
    ]:
        assert np.array_equal(r.block(a, b), full[a:b])


def test_too_short_where_pystoi_returns_its_placeholder():
    """min_samples is exact: one sample fewer and pystoi returns 1e-5 (here TooShort), at that length a score."""
    rng = np.random.default_rng(0)
    for sr in (8000, 16000, 44100):
        m = S.min_samples(sr)
        x = rng.standard_normal(m)
        y = x + rng.standard_normal(m)
        with pytest.warns(RuntimeWarning, match="Not enough STFT frames"):
            assert _pystoi(x[:-1], y[:-1], sr, False) == 1e-5
        with pytest.raises(S.TooShort):
            S.stoi(x[:-1], y[:-1], sr)
        assert S.stoi(x, y, sr) == pytest.approx(_pystoi(x, y, sr, False), abs=1e-10)


@pytest.mark.parametrize("extended", [False, True], ids=["stoi", "estoi"])
def test_memory_does_not_grow_with_length(extended):
    """6 minutes: pystoi allocates ~1 GB (150-250 MB per minute); pqeval a few chunks (< 150 MB) besides the input."""
    ref, deg, sr = _case("pesq_babble")
    n = 6 * 60 * sr
    ref, deg = np.resize(ref, n), np.resize(deg, n)
    tracemalloc.start()
    try:
        res = stoi_score(ref, deg, sr, extended=extended)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.ok and 0.3 < res.value < 0.7
    assert peak < 150e6, f"{peak / 1e6:.0f} MB"
