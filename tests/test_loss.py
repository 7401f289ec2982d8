"""pqeval.loss: the differentiable VGGish / OpenL3 losses against pqeval's own evaluator.

Parity tier (the module needs torch; it is imported inside the tests, so collecting this file
under ``-m "not parity"`` imports nothing heavy). The models are the real seeded exports
(``exported_models_dir``); the evaluator is ``pqeval.score`` on the same arrays.

* forward: ``1 - loss`` equals the embedding score within 1e-5 (same frames, same resampler);
* gradients: ``torch.autograd.gradcheck`` (float64) of every frontend stage, a finite-difference
  check of each whole loss w.r.t. the waveform, no NaN/inf on silence, clipping, the dB floor;
* the training example's quick mode runs and its objective decreases.

OpenL3 costs ~20 GFLOP per 1 s window, so its clips are 0.5-2.5 s.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from helpers import ENV_PATH, ROOT, read

pytestmark = pytest.mark.parity

SCORE_TOL = 1e-5  # |(1 - loss) - score|
FD_REL_TOL = 1e-4  # |analytic - finite difference| / |finite difference|
FD_STEP = 1e-6  # float64; larger steps cross ReLU / max-pool kinks of the CNNs


def _loss(cls_name: str, model, **kw):
    """A loss built without the (expected) seeded-weights warning reaching the test output."""
    import pqeval.loss as L

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", L.NotPerceptualWarning)
        return getattr(L, cls_name)(model, **kw)


@pytest.fixture(scope="module")
def vggish_path(exported_models_dir):
    return exported_models_dir / "vggish.onnx"


@pytest.fixture(scope="module")
def openl3_path(exported_models_dir):
    return exported_models_dir / "openl3-mel256-music-512.onnx"


@pytest.fixture(scope="module")
def vggish_loss(vggish_path):
    return _loss("EmbeddingLoss", vggish_path)


@pytest.fixture(scope="module")
def openl3_loss(openl3_path):
    return _loss("EmbeddingLoss", openl3_path)


def _noisy(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(x.shape)
    return x + n * np.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr_db / 10))


def _pairs(seconds: float) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Real recordings (clean, degraded, rate), ``seconds`` long: PESQ's speech with babble at 0 dB,
    a LibriSpeech sentence with white noise, and the 44.1 kHz stereo trumpet with noise."""
    speech, sr = read("pesq_speech.wav")
    babble, _ = read("pesq_speech_bab_0dB.wav")
    libri, _ = read("speech_libri_198_f.wav")
    trumpet, sr44 = read("music_trumpet_sorohan_44k_stereo.flac")
    n, n44 = int(seconds * sr), int(seconds * sr44)
    return {
        "speech+babble": (speech[:n], babble[:n], sr),
        "libri+noise": (libri[:n], _noisy(libri[:n], 10.0, 1), sr),
        "trumpet 44.1k stereo": (trumpet[:n44], _noisy(trumpet[:n44], 5.0, 2), sr44),
    }


def _tensor(x: np.ndarray, dtype=None):
    import torch

    mono = x.mean(axis=1) if x.ndim == 2 else x  # as pqeval mixes channels
    return torch.tensor(mono[None], dtype=dtype or torch.float32)


# --- the forward value is pqeval's score ------------------------------------------------------


@pytest.fixture(scope="module")
def vggish_losses(vggish_path):
    """EmbeddingLoss(reduction="none") per (sample rate, vggish_embedding), each built once."""
    made: dict = {}

    def get(sr: int, embedding: str):
        if (sr, embedding) not in made:
            made[sr, embedding] = _loss(
                "EmbeddingLoss", vggish_path, sample_rate=sr, vggish_embedding=embedding, reduction="none"
            )
        return made[sr, embedding]

    return get


@pytest.mark.parametrize("embedding", ["relu", "raw"])
def test_vggish_loss_is_one_minus_the_embedding_score(use_exported_models, vggish_losses, embedding):
    import pqeval

    output = {"relu": "embedding", "raw": "embedding_raw"}[embedding]
    for name, (clean, degraded, sr) in _pairs(3.0).items():
        loss = vggish_losses(sr, embedding)
        r = pqeval.score((clean, sr), (degraded, sr), metrics="vggish", vggish_output=output).metrics["vggish"]
        per_frame = 1.0 - loss(_tensor(degraded), _tensor(clean))[0].double().numpy()
        assert len(per_frame) == len(r.details["frames"]) == 3, name
        np.testing.assert_allclose(per_frame, r.details["frames"], atol=SCORE_TOL, rtol=0, err_msg=name)
        assert abs(per_frame.mean() - r.value) <= SCORE_TOL, name
        assert r.value < 0.999, name  # the degradations are visible: this compares real numbers


def test_vggish_batch_gives_each_pair_its_own_score(vggish_loss):
    import torch

    pairs = [p for p in _pairs(2.0).values() if p[2] == 16000]
    est = torch.cat([_tensor(d) for _, d, _ in pairs])
    ref = torch.cat([_tensor(c) for c, _, _ in pairs])
    per_pair = torch.stack([vggish_loss(est[i : i + 1], ref[i : i + 1]) for i in range(len(pairs))])
    assert torch.allclose(vggish_loss(est, ref), per_pair.mean(), atol=1e-6)
    frames = vggish_loss.frame_distances(est, ref)
    assert frames.shape == (len(pairs), 2)
    assert torch.allclose(frames.mean(dim=1), per_pair, atol=1e-6)


@pytest.mark.parametrize(("pair", "hop"), [("speech+babble", None), ("trumpet 44.1k stereo", 1.0)])
def test_openl3_loss_is_one_minus_the_score(use_exported_models, openl3_path, pair, hop):
    import pqeval

    clean, degraded, sr = _pairs(2.0)[pair]
    kw = {} if hop is None else {"hop": hop}
    loss = _loss("EmbeddingLoss", "openl3", sample_rate=sr, reduction="none", **kw)
    assert loss.model_path == openl3_path
    opts = {} if hop is None else {"openl3_hop": hop}
    r = pqeval.score((clean, sr), (degraded, sr), metrics="openl3", **opts).metrics["openl3"]
    per_frame = 1.0 - loss(_tensor(degraded), _tensor(clean))[0].double().numpy()
    assert len(per_frame) == len(r.details["frames"]) == (4 if hop is None else 3)
    np.testing.assert_allclose(per_frame, r.details["frames"], atol=SCORE_TOL, rtol=0)
    assert abs(per_frame.mean() - r.value) <= SCORE_TOL
    assert r.value < 0.99999


def test_the_embeddings_are_the_evaluators_frames(vggish_loss, openl3_loss):
    from pqeval.openl3 import OpenL3Embedder
    from pqeval.session import OnnxModel
    from pqeval.vggish import VGGishEmbedder

    clean, _, sr = _pairs(2.5)["speech+babble"]
    want = VGGishEmbedder(OnnxModel(vggish_loss.model_path), output="embedding").embed(clean, sr).frames
    got = vggish_loss.embed(_tensor(clean))[0].numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    want = OpenL3Embedder(OnnxModel(openl3_loss.model_path), hop=0.5).embed(clean, sr).frames
    got = openl3_loss.embed(_tensor(clean))[0].numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


# --- the module: weights, provenance, refusals --------------------------------------------------


def test_provenance_and_the_seeded_warning_travel_with_the_module(use_exported_models, vggish_path):
    import pqeval.loss as L

    with pytest.warns(L.NotPerceptualWarning, match="seeded.*not perceptual"):
        loss = L.EmbeddingLoss("vggish")
    assert loss.model_path == vggish_path  # pqeval.session.find_model: the file the score uses
    assert loss.provenance.kind == "seeded" and not loss.perceptual
    assert loss.weights == "seeded:0" and "seeded:0" in repr(loss)
    assert all(not p.requires_grad for p in loss.parameters())


def test_a_graph_of_another_architecture_is_refused_in_one_line(models_dir, openl3_path, tmp_path):
    import onnx

    from pqeval.errors import ModelError
    from pqeval_export.common import write_onnx

    for tiny in ("vggish.onnx", "openl3-mel256-music-512.onnx"):  # tests/tiny_models.py: same I/O, other graph
        with pytest.raises(ModelError, match="not the (VGGish|OpenL3) graph") as e:
            _loss("EmbeddingLoss", models_dir / tiny)
        assert "\n" not in str(e.value) and tiny in str(e.value)
    proto = onnx.load(str(openl3_path))
    pool = next(n for n in proto.graph.node if n.op_type == "MaxPool")
    for a in pool.attribute:
        if a.name == "kernel_shape":
            a.ints[:] = [3, 3]
    meta = {p.key: p.value for p in proto.metadata_props}
    write_onnx(proto, tmp_path / "openl3-mel256-music-512.onnx", meta)
    with pytest.raises(ModelError, match=r"node \d+ .*kernel_shape = \[3, 3\], expected \[2, 2\]") as e:
        _loss("EmbeddingLoss", tmp_path / "openl3-mel256-music-512.onnx")
    assert "\n" not in str(e.value)


def test_bad_arguments_and_inputs_are_refused(vggish_loss, vggish_path):
    import torch

    from pqeval.errors import AudioError, UsageError

    x = torch.zeros(1, 16000)
    with pytest.raises(ValueError, match="differ in shape"):
        vggish_loss(x, torch.zeros(1, 16001))
    with pytest.raises(AudioError, match="too short for VGGish"):
        vggish_loss(torch.zeros(1, 15000), torch.zeros(1, 15000))
    for kw in ({"distance": "cos"}, {"hop": 0.5}, {"resampler": "scipy"}, {"vggish_embedding": "pca"}):
        with pytest.raises(UsageError):
            _loss("EmbeddingLoss", vggish_path, **kw)
    with pytest.raises(UsageError, match="layers"):
        _loss("FeatureLoss", vggish_path, layers=["conv9"])
    with pytest.raises(UsageError, match="sample_rate"):
        _loss("EmbeddingLoss", vggish_path, sample_rate=0)
    from pqeval.loss import Resampler

    with pytest.raises(UsageError, match="16001/16000"):  # a 258 M-tap filter: refused before it is built
        Resampler(16000, 16001)
    assert vggish_loss(x[0], x[0]).ndim == 0  # (T,) is a batch of one


def test_import_without_torch_names_the_extra():
    code = (
        "import sys\nsys.modules['torch'] = None\nimport pqeval\n"
        "try:\n    import pqeval.loss\nexcept ImportError as e:\n    print(e)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": ENV_PATH})
    assert p.returncode == 0, p.stderr
    assert "pip install 'pqeval[torch]'" in p.stdout


# --- gradients ------------------------------------------------------------------------------


def test_gradcheck_resampler():
    import torch
    from torch.autograd import gradcheck

    from pqeval.loss import Resampler

    torch.manual_seed(0)
    assert gradcheck(Resampler(16000, 48000), (torch.randn(1, 40, dtype=torch.float64, requires_grad=True),))
    assert gradcheck(
        Resampler(8000, 16000, "kaiser_best_0.3"), (torch.randn(1, 50, dtype=torch.float64, requires_grad=True),)
    )
    down = Resampler(44100, 16000)  # resampy's float-time quirk: some outputs recomputed tap by tap
    assert down._flip_fix(1400) is not None
    x = torch.randn(2, 1400, dtype=torch.float64, requires_grad=True)
    assert gradcheck(down, (x,), fast_mode=True)


def test_gradcheck_framing_and_stft():
    import torch
    from torch.autograd import gradcheck

    from pqeval.loss import STFTMagnitude
    from pqeval.openl3 import OpenL3Frontend as NumpyOpenL3
    from pqeval.vggish import VGGishFrontend as NumpyVGGish

    torch.manual_seed(1)
    v = NumpyVGGish()
    small = STFTMagnitude(40, 16, 64, np.hanning(40))  # the same code at a size a full Jacobian affords
    assert gradcheck(small, (torch.randn(2, 90, dtype=torch.float64, requires_grad=True),))
    vggish = STFTMagnitude(v.window_length, v.hop_length, v.fft_length, v.window)
    assert gradcheck(vggish, (torch.randn(1, 720, dtype=torch.float64, requires_grad=True),), fast_mode=True)
    o = NumpyOpenL3("mel256")
    openl3 = STFTMagnitude(o.n_fft, 242, o.n_fft, o.window, pad_end=True)
    assert gradcheck(openl3, (torch.randn(1, 2600, dtype=torch.float64, requires_grad=True),), fast_mode=True)


def test_gradcheck_mel_log_and_db():
    import torch
    from torch.autograd import gradcheck

    from pqeval.loss import KapreDB, LogMel, Mel
    from pqeval.openl3 import mel_filterbank
    from pqeval.vggish import VGGishFrontend as NumpyVGGish

    torch.manual_seed(2)
    mag = (torch.rand(1, 2, 257, dtype=torch.float64) + 0.01).requires_grad_()
    assert gradcheck(LogMel(NumpyVGGish().mel_matrix), (mag,), fast_mode=True)
    mag = (torch.rand(1, 2, 1025, dtype=torch.float64) + 0.01).requires_grad_()
    assert gradcheck(Mel(mel_filterbank(48000, 2048, 256)), (mag,), fast_mode=True)
    small = torch.rand(8, 5, dtype=torch.float64)  # the same code at a size a full Jacobian affords
    assert gradcheck(LogMel(small.numpy()), ((torch.rand(1, 3, 8, dtype=torch.float64) + 0.01).requires_grad_(),))
    assert gradcheck(Mel(small.numpy().T), ((torch.rand(1, 3, 8, dtype=torch.float64) + 0.01).requires_grad_(),))
    # away from the kinks (unique maximum, floored values >5 dB below the floor, zeros under amin)
    s = torch.rand(2, 6, 5, dtype=torch.float64) * 1e2 + 1e-2
    s[:, 0, 0] = 1e4
    s[:, 1, :2] = 3e-5
    s[:, 2, 0] = 0.0
    s[:, 2, 1] = 1e-11
    db = KapreDB()
    out = db(s)
    assert (out[:, 1, :2] == -80).all() and (out[:, 2, :2] == -80).all() and (out[:, 0, 0] == 0).all()
    assert gradcheck(db, (s.requires_grad_(),))


def test_db_gradient_at_the_maximum_and_the_floor_is_the_documented_one():
    import torch

    from pqeval.loss import KapreDB

    s = torch.tensor([[[1e4, 1e4, 1.0], [1e-4, 0.0, 10.0]]], dtype=torch.float64, requires_grad=True)
    # dB: 40 (x2, tied maximum), 0, -40 (exactly the floor), -100 (amin), 10 -> relative to 40
    out = KapreDB()(s)
    assert out.tolist() == [[[0.0, 0.0, -40.0], [-80.0, -80.0, -30.0]]]
    w = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]], dtype=torch.float64)
    (out * w).sum().backward()
    c = 10.0 / math.log(10.0)
    live = [1.0, 2.0, 3.0, 6.0]  # weights of the elements above the floor
    want = torch.tensor(
        [[[c / 1e4 * (1.0 - sum(live) / 2), c / 1e4 * (2.0 - sum(live) / 2), c * 3.0], [0.0, 0.0, c / 10 * 6.0]]],
        dtype=torch.float64,
    )
    assert torch.allclose(s.grad, want, rtol=1e-12, atol=0)


def test_gradcheck_whole_frontends():
    import torch
    from torch.autograd import gradcheck

    from pqeval.loss import OpenL3Frontend, VGGishFrontend

    torch.manual_seed(3)
    for fe, n in (
        (VGGishFrontend(16000), 15600),
        (VGGishFrontend(44100), 43000),
        (OpenL3Frontend(16000, round_windows=False), 4000),
    ):
        x = (0.1 * torch.randn(1, n, dtype=torch.float64)).requires_grad_()
        assert gradcheck(fe, (x,), fast_mode=True), fe


def _finite_difference(loss, est, ref, seed: int) -> tuple[float, float]:
    """(analytic, central finite difference) directional derivative of loss(est, ref) along a
    random unit direction, float64."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = est.clone().requires_grad_()
    loss(x, ref).backward()
    v = torch.randn(est.shape, generator=g, dtype=est.dtype)
    v /= v.norm()
    with torch.no_grad():
        fd = (loss(est + FD_STEP * v, ref) - loss(est - FD_STEP * v, ref)) / (2 * FD_STEP)
    return float((x.grad * v).sum()), float(fd)


@pytest.mark.parametrize(
    ("cls_name", "model", "seconds", "kw"),
    [
        ("EmbeddingLoss", "vggish", 1.0, {}),
        ("EmbeddingLoss", "vggish", 1.0, {"distance": "l2", "vggish_embedding": "raw"}),
        ("FeatureLoss", "vggish", 1.0, {}),
        ("EmbeddingLoss", "openl3", 0.5, {"round_windows": False}),  # one window; rounding is not smooth
    ],
)
def test_whole_loss_matches_finite_differences(exported_models_dir, cls_name, model, seconds, kw):
    import torch

    path = exported_models_dir / ("vggish.onnx" if model == "vggish" else "openl3-mel256-music-512.onnx")
    loss = _loss(cls_name, path, **kw).double()
    speech, sr = read("pesq_speech.wav")
    babble, _ = read("pesq_speech_bab_0dB.wav")
    a, b = int(0.5 * sr), int((0.5 + seconds) * sr)
    ref, est = (torch.tensor(v[None, a:b], dtype=torch.float64) for v in (speech, babble))
    analytic, fd = _finite_difference(loss, est, ref, seed=4)
    assert abs(fd) > 1e-8  # a real slope, not two zeros
    assert abs(analytic - fd) <= FD_REL_TOL * abs(fd), (analytic, fd)


@pytest.mark.parametrize(
    ("cls_name", "model", "kw"),
    [
        ("EmbeddingLoss", "vggish", {}),
        ("FeatureLoss", "vggish", {"layers": ["conv1", "conv6", "embedding"]}),
        ("EmbeddingLoss", "openl3", {}),
        ("FeatureLoss", "openl3", {"layers": ["conv1", "embedding_conv"]}),
    ],
)
def test_no_nan_or_inf_gradient_on_silence_clipping_and_the_db_floor(exported_models_dir, cls_name, model, kw):
    import torch

    path = exported_models_dir / ("vggish.onnx" if model == "vggish" else "openl3-mel256-music-512.onnx")
    loss = _loss(cls_name, path, **kw)
    sr = 16000
    n = sr if model == "vggish" else sr // 2  # one example / window
    speech = torch.tensor(read("pesq_speech.wav")[0][None, sr : sr + n], dtype=torch.float32)
    t = torch.arange(n) / sr
    tone = 1e-3 * torch.sin(2 * math.pi * 1000 * t)[None]  # a pure tone: most bins sit at the -80 dB floor
    zeros = torch.zeros(1, n)
    cases = {
        "silent estimate": (zeros, speech),
        "silent both": (zeros, zeros),
        "silent reference": (speech, zeros),
        "clipped": ((4 * speech).clamp(-1, 1), speech),
        "square wave at full scale": (torch.sign(torch.sin(2 * math.pi * 200 * t))[None], speech),
        "tone at the floor": (tone, speech),
    }
    if model == "openl3":  # ~20 GFLOP per window: the cases the other model does not already cover
        keep = {"silent estimate", "tone at the floor"} | ({"clipped"} if cls_name == "EmbeddingLoss" else set())
        cases = {k: v for k, v in cases.items() if k in keep}
    if model == "openl3":
        floor = (loss.features(tone) == -80).float().mean()
        assert floor > 0.3, float(floor)  # the case really exercises the floor
    for name, (est, ref) in cases.items():
        x = est.clone().requires_grad_()
        value = loss(x, ref)
        value.backward()
        assert torch.isfinite(value), name
        assert torch.isfinite(x.grad).all(), name


def test_cosine_distance_follows_pqevals_zero_conventions():
    import torch

    from pqeval.loss import cosine_distance

    a = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [1.0, 0.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [-1.0, 0.0]])
    d = cosine_distance(a, b)
    assert torch.allclose(d, torch.tensor([0.0, 1.0, 0.0, 2.0]), atol=1e-7)
    d.sum().backward()
    assert torch.isfinite(a.grad).all() and (a.grad[:2] == 0).all()


# --- the example ------------------------------------------------------------------------------


def test_train_enhancer_quick_mode_runs_and_its_loss_decreases(use_exported_models, capsys):
    import pqeval.loss as L

    spec = importlib.util.spec_from_file_location("train_enhancer", ROOT / "examples" / "train_enhancer.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", L.NotPerceptualWarning)
        result = example.main(["--quick"])
    out = capsys.readouterr().out
    assert "demonstrates the machinery only" in out
    assert set(result["runs"]) == {"L1", "L1+vggish"}
    for name, run in result["runs"].items():
        assert len(run["history"]) == result["steps"] >= 10
        assert all(math.isfinite(v) for v in run["history"]), name
        assert run["check_after"] < run["check_before"], name  # the objective on a fixed held-out batch
    for clip, rows in result["scores"].items():
        assert set(rows) == {"noisy input", "L1", "L1+vggish"}
        for cond, vals in rows.items():
            assert all(vals[m] is not None for m in ("vggish", "openl3", "stoi")), (clip, cond, vals)
