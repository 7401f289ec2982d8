"""The resampler and both frontends give the same bits as the reference copy of commit 395b361.

tests/frontend_reference.py freezes the resampling and frontend code as it was before it was
sped up; every output here (resampled samples, VGGish's float64 log-mel examples, OpenL3's
float64 magnitudes and float32 dB spectrograms, the float32 arrays the embedders feed the model,
and the embeddings of the tiny ONNX stand-ins) must equal it bit for bit: ``same`` compares the
raw bytes, so even -0.0 against 0.0 fails. numpy + ONNX Runtime only (not parity tier).
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from scipy.signal import resample_poly

import frontend_reference as ref
from helpers import read
from pqeval.errors import AudioError
from pqeval.openl3 import OpenL3Embedder, OpenL3Frontend, cut_windows, frontend_params
from pqeval.resample import FILTERS, output_length, resample, resample_range
from pqeval.vggish import VGGishEmbedder, VGGishFrontend

RATES = [8000, 16000, 22050, 44100, 48000]
RESAMPLERS = list(FILTERS)  # kaiser_best_0.2, kaiser_best_0.3


def same(got, want) -> None:
    """Equal dtype, shape and bytes (bit-identical, signed zeros included)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if not np.array_equal(np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(want).view(np.uint8)):
        bad = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
        raise AssertionError(
            f"{bad.size} values differ (first at flat index {bad[:5]}), max |diff| "
            f"{np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))}"
        )


# --- signals -----------------------------------------------------------------------------------------


@functools.cache
def _recording(sr: int) -> np.ndarray:
    """Speech then music (../shared/audio), ~17.6 s at ``sr`` Hz (read-only)."""
    speech = read("speech_libri_3436_m.wav")[0]
    music, music_sr = read("music_brahms_hungarian5_44k_stereo.flac")
    assert music_sr == 44100
    x = np.concatenate([speech, resample_poly(music.mean(axis=1), 160, 441)])  # 16 kHz
    if sr != 16000:
        x = resample_poly(x, sr, 16000)
    x.setflags(write=False)
    return x


def real(sr: int, seconds: float) -> np.ndarray:
    """A real recording (speech, then music) at ``sr`` Hz, ``seconds`` long (tiled if needed)."""
    x = _recording(sr)
    n = int(round(seconds * sr))
    return np.tile(x, -(-n // len(x)))[:n]


def synthetic(kind: str, n: int, sr: int = 48000) -> np.ndarray:
    if kind == "silence":
        return np.zeros(n)
    if kind == "square":  # full scale, 1 kHz
        return np.where((np.arange(n) * 2000 // sr) % 2 == 0, 1.0, -1.0)
    if kind == "noise":
        return np.random.default_rng(n).uniform(-1, 1, n)
    raise ValueError(kind)


def one_example_length(sr: int, resampler: str) -> int:
    """Fewest samples at ``sr`` that give one VGGish example (15600 samples at 16 kHz)."""
    n = int(15600 * sr / 16000) - 2
    while output_length(n, sr, 16000, resampler) < 15600:
        n += 1
    return n


class Recorder:
    """A stand-in model that records every feed and returns zeros (the embedders' ``model``)."""

    def __init__(self, metadata: dict | None = None, width: int = 128) -> None:
        self.metadata, self.width, self.feeds = metadata or {}, width, []
        self.weights, self.path, self.key = "seeded:recorder", "recorder.onnx", "recorder"

    def run(self, feed: dict, outputs=None) -> list[np.ndarray]:
        (x,) = feed.values()
        self.feeds.append(np.array(x, copy=True))
        return [np.zeros((len(x), self.width), np.float32)]


def openl3_recorder(input_repr: str) -> Recorder:
    return Recorder({"pqeval.frontend": json.dumps(frontend_params(input_repr))}, width=512)


# --- resampler ---------------------------------------------------------------------------------------

PAIRS = [
    (44100, 16000),  # downsampling with resampy's float-time flips
    (22050, 16000),
    (48000, 16000),
    (8000, 16000),  # upsampling
    (44100, 48000),
    (16000, 48000),
    (22050, 48000),
    (8000, 48000),
    (44101, 16000),  # a large reduced ratio: the direct path
]


@pytest.mark.parametrize("resampler", RESAMPLERS)
@pytest.mark.parametrize("sr_in, sr_out", PAIRS)
def test_resample_range_bitwise(sr_in, sr_out, resampler):
    x = real(sr_in, 3.7) + 1e-3 * synthetic("noise", int(round(3.7 * sr_in)))
    n_out = output_length(len(x), sr_in, sr_out, resampler)
    same(resample(x, sr_in, sr_out, filter=resampler), ref.resample(x, sr_in, sr_out, filter=resampler))
    rng = np.random.default_rng(sr_in + sr_out)
    ranges = [(0, 1), (0, n_out), (n_out - 1, n_out), (n_out - 7, n_out + 50), (32767, 32769), (32640, 65280)]
    ranges += [tuple(sorted(rng.integers(0, n_out + 1, 2))) for _ in range(12)]
    for start, stop in ranges:
        same(
            resample_range(x, sr_in, sr_out, start, stop, resampler),
            ref.resample_range(x, sr_in, sr_out, start, stop, resampler),
        )


@pytest.mark.parametrize("resampler", RESAMPLERS)
@pytest.mark.parametrize("sr_in, sr_out", [(44100, 16000), (22050, 16000), (44100, 48000), (16000, 48000)])
def test_resample_lengths_bitwise(sr_in, sr_out, resampler):
    """Every short length (edge chunks, padding at both ends) and a spread of odd ones."""
    base = synthetic("noise", 40000, sr_in)
    lengths = [n for n in range(1, 400) if output_length(n, sr_in, sr_out, resampler) >= 1]
    lengths += [1001, 4097, 9999, 15601, 33333, 39999]
    for n in lengths:
        x = base[:n]
        same(resample(x, sr_in, sr_out, filter=resampler), ref.resample(x, sr_in, sr_out, filter=resampler))


@pytest.mark.parametrize(
    "sr_in, sr_out", [(44100, 16000), (22050, 16000), (44100, 48000), (16000, 48000), (16000, 16000)]
)
def test_range_resampler_bitwise(sr_in, sr_out):
    """Overlapping windows, batches, a range spanning many chunks, a step back, any order; lazily too."""
    from pqeval.audio import LazySamples
    from pqeval.resample import RangeResampler, resampled

    x = real(sr_in, 12.3)
    n_out = output_length(len(x), sr_in, sr_out)
    ranges = [(max(0, k * 4800 - 24000), k * 4800 + 24000) for k in range(12)]  # OpenL3 at hop 0.1 s
    ranges += [(60000, 60001), (0, n_out), (50000, 290000), (40000, 41000), (n_out - 3, n_out + 10)]
    ranges += [tuple(sorted(r)) for r in np.random.default_rng(0).integers(0, n_out, (10, 2))]
    r, v = RangeResampler(x, sr_in, sr_out), RangeResampler(x, sr_in, sr_out)
    lazy = resampled(LazySamples(len(x), lambda lo, hi: x[lo:hi]), sr_in, sr_out)
    for start, stop in ranges:
        want = ref.resample_range(x, sr_in, sr_out, start, stop)
        got = r.range(start, stop)
        same(got, want)
        got[:] = 7.0  # the caller's own array: the kept chunks must not change
        same(v.view(start, stop), want)
        same(lazy[start:stop], want)
    assert len(r) == n_out


@pytest.mark.parametrize("sr_in", [44100, 22050, 48000])
def test_resample_far_ranges_bitwise(sr_in):
    """Ranges millions of outputs in (resampy 0.2's accumulated float time), asked for in any order."""
    n_in = int(7.3e6 * sr_in / 16000)  # 7.3 M outputs: several of the time register's 2**20 blocks
    x = np.cos(np.arange(n_in) * 0.001) * 0.5
    starts = [6_000_000, 1_048_570, 3_145_720, 2_100_000, 5_000_000, 7_299_000]
    for start in starts:
        same(
            resample_range(x, sr_in, 16000, start, start + 20000),
            ref.resample_range(x, sr_in, 16000, start, start + 20000),
        )


# --- VGGish ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resampler", RESAMPLERS)
@pytest.mark.parametrize("sr", RATES)
def test_vggish_examples_and_model_inputs_bitwise(sr, resampler):
    fe, want_fe = VGGishFrontend(resampler), ref.VGGishReference(resampler)
    one = one_example_length(sr, resampler)
    for n in [one, one + 1, 2 * one + 37, int(3.3 * sr) + 1, int(10 * sr)]:
        x = real(sr, n / sr)[:n]
        same(fe.examples(x, sr), want_fe.examples(x, sr))
        for batch_size in (16, 3):
            model = Recorder()
            VGGishEmbedder(model, batch_size=batch_size, resampler=resampler).embed(x, sr)
            want = want_fe.model_inputs(x, sr, batch_size)
            assert len(model.feeds) == len(want)
            for got_feed, want_feed in zip(model.feeds, want, strict=True):
                same(got_feed, want_feed)
    short = real(sr, one / sr)[: one - 1]
    same(fe.examples(short, sr), want_fe.examples(short, sr))  # no example
    with pytest.raises(AudioError):
        VGGishEmbedder(Recorder(), resampler=resampler).embed(short, sr)


@pytest.mark.parametrize("kind", ["silence", "square", "noise", "real"])
def test_vggish_log_mel_bitwise(kind):
    fe, want_fe = VGGishFrontend(), ref.VGGishReference()
    for n in [400, 401, 559, 560, 15600, 15601, 16000 * 3 + 7, 16000 * 17 + 159]:
        x = real(16000, n / 16000)[:n] if kind == "real" else synthetic(kind, n, 16000)
        same(fe.log_mel(x), want_fe.log_mel(x))
        same(fe.log_mel(x[1:]), want_fe.log_mel(x[1:]))  # an unaligned start
        same(fe.log_mel(x[::-1]), want_fe.log_mel(x[::-1]))  # a negative stride


# --- OpenL3 ------------------------------------------------------------------------------------------

INPUT_REPRS = ["linear", "mel128", "mel256"]


def _windows(kind: str, count: int) -> np.ndarray:
    """``count`` 1 s windows at 48 kHz, float32, hop 0.5 s (the first and last half-empty, as at clip edges)."""
    n = (count + 1) * 24000
    x48 = ref.resample(real(44100, n / 48000 + 0.1), 44100, 48000)[:n] if kind == "real" else synthetic(kind, n)
    return ref.cut_windows(x48, 0, count + 1, 0.5)[:count] if count else np.zeros((0, 48000), np.float32)


@pytest.mark.parametrize("kind", ["real", "silence", "square", "noise"])
@pytest.mark.parametrize("input_repr", INPUT_REPRS)
def test_openl3_frontend_bitwise(input_repr, kind):
    fe, want_fe = OpenL3Frontend(input_repr), ref.OpenL3Reference(input_repr)
    windows = _windows(kind, 4)
    for batch in (windows[:1], windows[1:2], windows[:3], windows, windows[2:4].astype(np.float64)):
        same(fe.magnitude(batch), want_fe.magnitude(batch))
        same(fe(batch), want_fe(batch))


def test_openl3_frontend_unusual_inputs_bitwise():
    fe, want_fe = OpenL3Frontend("mel256"), ref.OpenL3Reference("mel256")
    w = _windows("real", 3)
    for batch in (w[:, ::-1], np.asfortranarray(w), w * np.float32(1e-30), w * np.float32(3e4), w[:0]):
        same(fe.magnitude(batch), want_fe.magnitude(batch))
        same(fe(batch), want_fe(batch))


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("input_repr", INPUT_REPRS)
def test_openl3_model_inputs_bitwise(input_repr, sr):
    want_fe = ref.OpenL3Reference(input_repr)
    lengths = (
        [int(0.3 * sr) + 1, int(2.7 * sr) + 3] if input_repr != "mel256" else [int(0.3 * sr) + 1, int(4.1 * sr) + 3]
    )
    for n in lengths:
        x = real(sr, n / sr)[:n]
        for hop, batch_size in [(0.5, 1), (0.1, 3), (1.0, 2)] if input_repr == "mel256" else [(0.5, 1), (0.25, 3)]:
            model = openl3_recorder(input_repr)
            OpenL3Embedder(model, hop=hop, batch_size=batch_size).embed(x, sr)
            want = want_fe.model_inputs(x, sr, hop, batch_size)
            assert len(model.feeds) == len(want)
            for got_feed, want_feed in zip(model.feeds, want, strict=True):
                same(got_feed, want_feed)


def test_openl3_cut_windows_bitwise():
    x48 = ref.resample(real(44100, 3.3), 44100, 48000)
    for first, count, hop in [(0, 1, 0.5), (0, 7, 0.5), (3, 4, 0.1), (5, 2, 1.0)]:
        same(cut_windows(x48, first, count, hop), ref.cut_windows(x48, first, count, hop))
    for first, count, hop in [(5, 2, 1.0), (10, 3, 0.5)]:  # from a block of the signal
        block = x48[5000:]
        same(
            cut_windows(block, first, count, hop, base=5000, total=len(x48)),
            ref.cut_windows(block, first, count, hop, base=5000, total=len(x48)),
        )


# --- end to end: embeddings of the tiny ONNX stand-ins -----------------------------------------------


@pytest.mark.parametrize("sr", [16000, 44100])
def test_embeddings_bitwise(models_dir, sr):
    from pqeval.session import OnnxModel

    x = real(sr, 4.2)
    vggish = OnnxModel(models_dir / "vggish.onnx", threads=1)
    got = VGGishEmbedder(vggish, batch_size=2).embed(x, sr).frames
    want = np.concatenate(
        [vggish.run({"examples": f}, ["postprocessed"])[0] for f in ref.VGGishReference().model_inputs(x, sr, 2)]
    )
    same(got, want)
    openl3 = OnnxModel(models_dir / "openl3-mel256-music-512.onnx", threads=1)
    got = OpenL3Embedder(openl3, hop=0.5).embed(x, sr).frames
    want = np.concatenate(
        [openl3.run({"spectrogram": f})[0] for f in ref.OpenL3Reference("mel256").model_inputs(x, sr, 0.5)]
    )
    same(got, want)
