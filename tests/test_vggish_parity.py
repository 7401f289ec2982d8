"""VGGish: ONNX Runtime vs torchvggish on seeded weights, and end to end from audio.

Parity tier: the real seeded export (``exported_models_dir``) against torchvggish; torch and
torchvggish are imported inside the tests so that collecting this file needs neither.
"""

import numpy as np
import pytest

from helpers import read
from pqeval.resample import resample
from pqeval.session import OnnxModel
from pqeval.vggish import VGGishEmbedder
from pqeval_export.vggish import QUANT_MAX, QUANT_MIN, synthetic_examples

STEP = 255.0 / (QUANT_MAX - QUANT_MIN)
# An 8-bit output may flip by one where torch's pre-rounding value lies this close (in
# quantisation steps) to a rounding boundary: float32 GEMMs in torch and ORT sum in different
# orders (~2e-5 absolute on embeddings of magnitude ~10), so a value within ~1e-3 steps of x.5
# can round either way. Any other difference is a bug.
BOUNDARY_TOL = 0.01

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def embedder(exported_models_dir):
    return VGGishEmbedder(OnnxModel(exported_models_dir / "vggish.onnx"))


def pre_round(emb: np.ndarray, pca: dict) -> np.ndarray:
    """torchvggish's value just before torch.round, computed as its Postprocessor does (float32)."""
    import torch

    m = torch.as_tensor(pca["pca_eigen_vectors"]).float()
    mu = torch.as_tensor(pca["pca_means"].reshape(-1, 1)).float()
    x = torch.mm(m, torch.as_tensor(emb).t() - mu).t()
    return ((torch.clamp(x, QUANT_MIN, QUANT_MAX) - QUANT_MIN) * STEP).numpy()


def assert_8bit_equal(ref_model, pca, examples, got):
    import torch

    with torch.no_grad():
        x = torch.as_tensor(np.array(examples[:, None])).float()  # a copy: framed views are read-only
        want = ref_model(x).reshape(len(x), -1).numpy()
        ref_model.postprocess = False
        emb = ref_model(x).numpy()
        ref_model.postprocess = True
    diff = got != want
    if diff.any():
        v = pre_round(emb, pca)[diff]
        assert np.all(np.abs(got[diff] - want[diff]) == 1), "8-bit outputs differ by more than one step"
        assert np.all(np.abs(v - np.floor(v) - 0.5) < BOUNDARY_TOL), (
            f"{diff.sum()} 8-bit outputs differ away from a rounding boundary"
        )
    assert diff.mean() < 0.005
    return int(diff.sum())


def test_onnx_vs_torch_on_seeded_weights(embedder, vggish_reference):
    import torch

    ref, pca = vggish_reference
    ex = synthetic_examples(7, 12)
    x = torch.as_tensor(np.array(ex[:, None])).float()  # a copy: the framed view is read-only
    ref.postprocess = False
    with torch.no_grad():
        want = ref(x).numpy()
    ref.postprocess = True
    got = embedder.model.run({"examples": ex[:, None].astype(np.float32)}, ["embedding"])[0]
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert np.abs(want).max() > 1.0  # seeded weights give embeddings of a realistic scale
    assert np.abs(got - want).max() <= 1e-4
    assert cos.min() >= 0.99999
    post = embedder.run_examples(ex)
    assert_8bit_equal(ref, pca, ex, post)


def test_raw_embedding_is_pre_relu(embedder):
    ex = synthetic_examples(3, 4)[:, None].astype(np.float32)
    raw, emb = embedder.model.run({"examples": ex}, ["embedding_raw", "embedding"])
    assert (raw < 0).any()
    np.testing.assert_array_equal(emb, np.maximum(raw, 0))


def test_dynamic_batch(embedder):
    ex = synthetic_examples(5, 3)
    one = np.concatenate([embedder.run_examples(ex[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(embedder.run_examples(ex), one, atol=1e-6)


def _cases():
    x16, _ = read("speech_libri_3436_m.wav")
    t = np.arange(int(2.5 * 48000)) / 48000
    chirp48 = 0.4 * np.sin(2 * np.pi * (100 + 3000 * t) * t) + 0.02 * np.random.default_rng(0).standard_normal(len(t))
    stereo, sr = read("music_brahms_hungarian5_44k_stereo.flac")
    return {
        "speech@16k": (x16, 16000),
        "speech@8k": (resample(x16, 16000, 8000), 8000),
        "speech@22.05k": (resample(x16, 16000, 22050), 22050),
        "speech@48k": (resample(x16, 16000, 48000), 48000),
        "music@44.1k-stereo": (stereo, sr),
        "chirp@48k": (chirp48, 48000),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_end_to_end_8bit_vs_torchvggish(embedder, vggish_reference, case):
    import torchvggish.vggish_input as vi

    x, sr = _cases()[case]
    ref, pca = vggish_reference
    ex = vi.waveform_to_examples(x, sr, return_tensor=False)  # torchvggish's own frontend (resampy)
    mono = x.mean(axis=1) if x.ndim == 2 else x
    got = embedder.embed(mono, sr)
    assert got.frames.shape == (len(ex), 128)
    np.testing.assert_allclose(got.times, np.arange(len(ex)) * 0.96)
    assert got.weights == "seeded:0" and got.provenance.kind == "seeded" and not got.provenance.perceptual
    assert_8bit_equal(ref, pca, ex, got.frames)
