"""Long recordings are read from disk window batch by window batch, with the same numbers.

``open_audio`` hands out LazySamples; the embedders and the scorer read ranges of them. These
tests check that (a) every value equals the whole-file path exactly, and (b) no read is larger
than a batch's worth of audio, however long the file: the memory bound of issue 5, checked by
counting samples read rather than by timing or RSS. The models are the tiny stand-ins
(conftest ``use_models``): what is checked is equality between two paths, whatever the model.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from helpers import read
from pqeval.audio import LazySamples, load_audio, open_audio
from pqeval.errors import AudioError
from pqeval.scoring import ScoreOptions, Scorer


def _long_file(path, seconds: float, sr: int, channels: int = 1, subtype: str = "PCM_16"):
    x, sr0 = read("speech_libri_3436_m.wav")
    reps = int(np.ceil(seconds * sr0 / len(x)))
    y = np.tile(x, reps)[: int(seconds * sr0)]
    if sr != sr0:
        from pqeval.resample import resample

        y = resample(y, sr0, sr)
    if channels > 1:
        y = np.stack([y * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)
    sf.write(str(path), y, sr, subtype=subtype)
    return path


class _Counting:
    """Wraps LazySamples and records the size of every read."""

    def __init__(self, lazy: LazySamples) -> None:
        self.lazy, self.sizes = lazy, []
        self.inner = LazySamples(len(lazy), self._read, lazy.name)

    def _read(self, lo: int, hi: int) -> np.ndarray:
        self.sizes.append(hi - lo)
        return self.lazy[lo:hi]


@pytest.mark.parametrize("subtype, ext, channels", [("PCM_16", "wav", 1), ("FLOAT", "wav", 2), ("PCM_24", "flac", 2)])
def test_open_audio_reads_what_load_audio_reads(tmp_path, subtype, ext, channels):
    p = _long_file(tmp_path / f"a.{ext}", 7.3, 44100, channels, subtype)
    lazy, whole = open_audio(p), load_audio(p)
    assert isinstance(lazy.samples, LazySamples)
    assert (lazy.sr, lazy.channels, len(lazy.samples)) == (whole.sr, whole.channels, len(whole.samples))
    assert np.array_equal(np.asarray(lazy.samples), whole.samples)
    for lo, hi in [(0, 1), (1000, 77777), (len(whole.samples) - 5, len(whole.samples) + 100)]:
        assert np.array_equal(lazy.samples[lo:hi], whole.samples[lo:hi])


def test_open_audio_refuses_what_load_audio_refuses(tmp_path):
    x = np.zeros((600000, 2))
    x[500001, 1] = np.inf
    bad = tmp_path / "inf.wav"
    sf.write(str(bad), x, 48000, subtype="FLOAT")
    with pytest.raises(AudioError) as lazy_err:
        open_audio(bad)
    with pytest.raises(AudioError) as whole_err:
        load_audio(bad)
    assert str(lazy_err.value) == str(whole_err.value)
    assert "the first at 10.417 s" in str(lazy_err.value)  # position in the file, not in a block
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        open_audio(empty)


def test_long_file_embeds_in_bounded_reads_with_whole_file_values(tmp_path, use_models):
    """A 30 s stereo 44.1 kHz file, small batches: each model reads at most a batch's worth at a
    time, and the embeddings equal those of the whole file in memory bit for bit."""
    from pqeval.openl3 import OpenL3Embedder
    from pqeval.vggish import VGGishEmbedder

    p = _long_file(tmp_path / "long.wav", 30.0, 44100, channels=2)
    whole = load_audio(p)
    scorer = Scorer(ScoreOptions(metrics=("vggish", "openl3")))
    embedders = {
        "vggish": VGGishEmbedder(scorer.embedder("vggish").model, batch_size=8),  # 7.7 s per batch
        "openl3": OpenL3Embedder(scorer.embedder("openl3").model, hop=2.0, batch_size=4),  # 7 s per batch
    }
    for name, emb in embedders.items():
        counting = _Counting(open_audio(p).samples)
        streamed = emb.embed(counting.inner, whole.sr)
        reference = emb.embed(whole.samples, whole.sr)
        assert np.array_equal(streamed.frames, reference.frames), name
        assert np.array_equal(streamed.times, reference.times), name
        # a batch's span plus up to two of the resampler's fixed chunks (2.04 s of 16 kHz output,
        # 0.68 s of 48 kHz) and its filter margins
        limit = {"vggish": 8 * 0.96 + 5.0, "openl3": 7.0 + 2.0}[name] * whole.sr
        assert max(counting.sizes) < limit, (name, max(counting.sizes) / whole.sr)
        assert len(counting.sizes) >= 3, name


def test_scores_from_disk_equal_scores_from_memory(tmp_path, use_models):
    """Rate mismatch (degraded at 22.05 kHz) and trimming are applied lazily with the same numbers."""
    clean = _long_file(tmp_path / "clean.wav", 12.0, 16000)
    x, sr = sf.read(str(clean), dtype="float64")
    noisy = x + 0.01 * np.random.default_rng(0).standard_normal(len(x))
    from pqeval.resample import resample

    deg = tmp_path / "deg.wav"
    sf.write(str(deg), resample(noisy, sr, 22050)[:-3000], 22050, subtype="FLOAT")
    opts = ScoreOptions(metrics=("vggish", "openl3", "pesq_wb", "stoi"))
    lazy = Scorer(opts).score(open_audio(clean), open_audio(deg))
    eager = Scorer(opts).score(load_audio(clean), load_audio(deg))
    assert lazy.notes == eager.notes and any("resampled" in n for n in lazy.notes)
    assert any("trimmed" in n for n in lazy.notes)
    for m in opts.metrics:
        a, b = lazy.metrics[m], eager.metrics[m]
        assert a.ok and b.ok, (m, a.reason, b.reason)
        assert a.value == b.value, m
