"""pqeval.compat: drop-in openl3 / torchvggish calls on numpy + ONNX Runtime.

Runtime tier (no mark): on the tiny models (``use_models``): signatures, shapes, dtypes, lists,
timestamps, errors, warnings, and that every compat call equals pqeval's own embedder exactly on
the same input. Nothing here imports torch or TensorFlow.

Parity tier (``@pytest.mark.parity``): the study's two snippets run once with the original
libraries and once with ``pqeval.compat``, only the import changed, on real recordings, with the
same seeded weights on both sides (the exported seeded models against openl3 with the same
seeded ``.h5`` and torchvggish with the same seeded state dict).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from helpers import ENV_PATH, HEAVY, read
from pqeval.compat import NotPerceptualWarning, notes
from pqeval.compat import openl3 as c_openl3
from pqeval.compat import torchvggish as c_torchvggish
from pqeval.compat.openl3 import OpenL3Error, OpenL3Warning
from pqeval.errors import AudioError, ModelError, PqevalError, UsageError
from pqeval.openl3 import OpenL3Embedder
from pqeval.provenance import SEEDED_NOTE
from pqeval.session import open_model
from pqeval.vggish import VGGishEmbedder, VGGishFrontend

OPENL3_KEY = "openl3-mel256-music-512"
# openl3 0.4.2's get_audio_embedding, parameter by parameter (checked against openl3 itself in the parity tier)
OPENL3_PARAMS = [
    ("audio", inspect.Parameter.empty),
    ("sr", inspect.Parameter.empty),
    ("model", None),
    ("input_repr", None),
    ("content_type", "music"),
    ("embedding_size", 6144),
    ("center", True),
    ("hop_size", 0.1),
    ("batch_size", 32),
    ("frontend", "kapre"),
    ("verbose", True),
]


def params(func, kinds=(inspect.Parameter.POSITIONAL_OR_KEYWORD,)) -> list[tuple[str, object]]:
    """(name, default) of a function's parameters of the given kinds (None: all), in order."""
    ps = inspect.signature(func).parameters.values()
    return [(p.name, p.default) for p in ps if kinds is None or p.kind in kinds]


def excerpt(name: str, start: float, dur: float) -> tuple[np.ndarray, int]:
    x, sr = read(name)
    return x[int(start * sr) : int((start + dur) * sr)], sr


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(autouse=True)
def _fresh_warnings():
    """Each test starts with no model having warned (the warning is once per model and process)."""
    notes.reset()
    yield
    notes.reset()


@pytest.fixture(scope="module")
def speech():
    return excerpt("speech_libri_198_f.wav", 1.0, 1.5)  # 16 kHz mono


@pytest.fixture(scope="module")
def stereo():
    return excerpt("music_trumpet_sorohan_44k_stereo.flac", 0.5, 1.2)  # 44.1 kHz, 2 channels


def ol3(*args, **kwargs):
    """compat get_audio_embedding with the study's model arguments, the seeded warning silenced."""
    kwargs = {"input_repr": "mel256", "content_type": "music", "embedding_size": 512, "batch_size": 4, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotPerceptualWarning)
        return c_openl3.get_audio_embedding(*args, **kwargs)


def quiet_vggish(**kwargs):
    """compat vggish() whose calls do not warn (seeded tiny model)."""
    model = c_torchvggish.vggish(**kwargs)

    def run(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotPerceptualWarning)
            return model(*args)

    return model, run


# --- OpenL3, runtime tier ---------------------------------------------------------------------


def test_openl3_signatures_are_openl3s():
    assert params(c_openl3.get_audio_embedding) == OPENL3_PARAMS
    assert params(c_openl3.models.load_audio_embedding_model) == [
        ("input_repr", inspect.Parameter.empty),
        ("content_type", inspect.Parameter.empty),
        ("embedding_size", inspect.Parameter.empty),
        ("frontend", "kapre"),
    ]
    assert c_openl3.load_audio_embedding_model is c_openl3.models.load_audio_embedding_model
    assert issubclass(OpenL3Error, UsageError) and issubclass(OpenL3Error, PqevalError)


def test_openl3_equals_pqeval_embedder_exactly(use_models, speech):
    x, sr = speech
    emb, ts = ol3(x, sr, hop_size=0.1)
    want = OpenL3Embedder(open_model(OPENL3_KEY), hop=0.1, batch_size=4).embed(x, sr)
    assert emb.dtype == np.float32 and emb.shape == (11, 512)  # 1.5 s, centred, hop 0.1 s
    np.testing.assert_array_equal(emb, want.frames)
    assert ts.dtype == np.float64
    np.testing.assert_array_equal(ts, want.times)


def test_openl3_mixes_channels_to_mono_as_openl3(use_models, stereo):
    x, sr = stereo
    assert x.ndim == 2 and x.shape[1] == 2
    emb, ts = ol3(x, sr, hop_size=0.5)
    want = OpenL3Embedder(open_model(OPENL3_KEY), hop=0.5, batch_size=4).embed(x.mean(axis=1), sr)
    np.testing.assert_array_equal(emb, want.frames)
    np.testing.assert_array_equal(ts, want.times)


def test_openl3_lists_in_lists_out(use_models, speech, stereo):
    (a, sr_a), (b, sr_b) = speech, stereo
    embs, tss = ol3([a, b], [sr_a, sr_b], hop_size=0.5)
    assert isinstance(embs, list) and isinstance(tss, list) and len(embs) == len(tss) == 2
    for got, ts, (x, sr) in zip(embs, tss, (speech, stereo), strict=True):
        one, one_ts = ol3(x, sr, hop_size=0.5)
        np.testing.assert_array_equal(got, one)
        np.testing.assert_array_equal(ts, one_ts)
    # one rate for every clip
    same, _ = ol3([a, a[::-1].copy()], sr_a, hop_size=0.5)
    np.testing.assert_array_equal(same[0], embs[0])
    assert same[1].shape == same[0].shape and not np.array_equal(same[1], same[0])


@pytest.mark.parametrize(
    "center, want",
    [(True, [0.0, 0.5, 1.0, 1.5]), (False, [0.0, 0.5, 1.0])],  # 2 s: (2 + 0.5 - 1) / 0.5 + 1 windows centred
)
def test_openl3_timestamps_are_openl3s(use_models, center, want):
    x = np.random.default_rng(3).standard_normal(32000) * 0.1  # 2.0 s at 16 kHz
    emb, ts = ol3(x, 16000, hop_size=0.5, center=center)
    np.testing.assert_array_equal(ts, want)
    assert emb.shape == (len(want), 512)
    _, ts_int = ol3(x, 16000, hop_size=1, center=center)  # openl3: np.arange(n) * hop_size, dtype and all
    np.testing.assert_array_equal(ts_int, np.arange(len(ts_int)) * 1)
    assert ts_int.dtype == np.arange(1).dtype


def test_openl3_model_objects(use_models, speech):
    x, sr = speech
    model = c_openl3.models.load_audio_embedding_model("mel256", "music", 512)
    assert (model.key, model.input_repr, model.embedding_size, model.frontend) == (OPENL3_KEY, "mel256", 512, "kapre")
    assert model.weights == "seeded:0"
    want, want_ts = ol3(x, sr)
    # with a model, input_repr / content_type / embedding_size are checked but ignored, as openl3 does
    got, got_ts = ol3(x, sr, model=model, input_repr="linear", content_type="env", embedding_size=6144)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_ts, want_ts)
    by_path = c_openl3.models.load_audio_embedding_model_from_path(use_models / f"{OPENL3_KEY}.onnx", "mel256", 512)
    np.testing.assert_array_equal(ol3(x, sr, model=by_path)[0], want)


def test_openl3_model_refusals(use_models, tmp_path):
    with pytest.raises(ModelError, match="model 'openl3-mel256-music-6144' is not installed"):
        ol3(np.ones(16000), 16000, embedding_size=6144)  # openl3's default size: not among the tiny models
    with pytest.raises(ModelError, match="not installed"):
        c_openl3.get_audio_embedding(np.ones(16000), 16000)  # the bare call: mel256 / music / 6144
    with pytest.raises(ModelError, match=r"an OpenL3 mel256/512 model, not the mel128/512 asked for"):
        c_openl3.models.load_audio_embedding_model_from_path(use_models / f"{OPENL3_KEY}.onnx", "mel128", 512)
    with pytest.raises(ModelError, match=r"not an exported model; .*`pqeval export openl3 --input-repr mel256"):
        c_openl3.models.load_audio_embedding_model_from_path(tmp_path / "openl3_audio_mel256_music.h5", "mel256", 512)
    with pytest.raises(ModelError, match="no such model file"):
        c_openl3.models.load_audio_embedding_model_from_path(tmp_path / "missing.onnx", "mel256", 512)
    with pytest.raises(ModelError, match="a vggish model, not a openl3 model"):
        c_openl3.models.load_audio_embedding_model_from_path(use_models / "vggish.onnx", "mel256", 512)


ONE_S = np.ones(16000) * 0.1
INVALID = {
    "content_type": ({"content_type": "pop"}, 'Invalid content type "pop"'),
    "embedding_size": ({"embedding_size": 256}, 'Invalid embedding size "256"'),
    "input_repr": ({"input_repr": "mel64"}, 'Invalid input representation "mel64"'),
    "frontend": ({"frontend": "torch"}, 'Invalid frontend "torch"'),
    "librosa frontend": ({"frontend": "librosa"}, 'frontend "librosa" is not reproduced'),
    "verbose": ({"verbose": 2}, "Invalid verbosity level 2"),
    "keras-like model": ({"model": object()}, "Invalid model provided"),
    "audio type": ({"audio": (0.1, 0.2)}, "audio must be type list"),
    "sr type": ({"sr": "16k"}, "sr must be type list"),
    "sr count": ({"audio": [ONE_S, ONE_S], "sr": [16000]}, r"audio inputs \(2\) and number of sample rates \(1\)"),
    "empty audio": ({"audio": np.zeros(0)}, "Got empty audio"),
    "3-D audio": ({"audio": np.ones((10, 2, 2))}, "can only be 1D or 2D"),
    "sr zero": ({"sr": 0}, "Invalid sample rate 0"),
    "sr fraction": ({"sr": 22050.5}, "whole-number rates"),
    "hop zero": ({"hop_size": 0}, "Invalid hop size 0"),
    "hop below a sample": ({"hop_size": 1e-6}, "shorter than one sample"),
    "center": ({"center": "yes"}, "Invalid center value yes"),
    "batch size": ({"batch_size": 0}, "Invalid batch size 0"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_openl3_invalid_arguments(use_models, case):
    kwargs, message = INVALID[case]
    kwargs = {"audio": ONE_S, "sr": 16000, **kwargs}
    with pytest.raises(OpenL3Error, match=message) as err:
        ol3(kwargs.pop("audio"), kwargs.pop("sr"), **kwargs)
    assert "\n" not in str(err.value)


def test_openl3_warns_as_openl3_and_once_per_seeded_model(use_models, speech):
    x, sr = speech
    kwargs = {"input_repr": "mel256", "content_type": "music", "embedding_size": 512}
    with pytest.warns(NotPerceptualWarning, match=f"{OPENL3_KEY} .*: {SEEDED_NOTE}") as rec:
        c_openl3.get_audio_embedding(x, sr, **kwargs)
    assert rec[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second result from the same model does not warn again
        c_openl3.get_audio_embedding(x, sr, **kwargs)
    with pytest.warns(OpenL3Warning, match="shorter than OpenL3's 1 s window"):
        ol3(x[: sr // 2], sr)
    with pytest.warns(OpenL3Warning, match="Provided audio is all zeros"):
        emb, _ = ol3(np.zeros(sr), sr)
    assert np.isfinite(emb).all()


# --- VGGish, runtime tier ---------------------------------------------------------------------


def test_torchvggish_signatures_are_torchvggishs():
    pos = (inspect.Parameter.POSITIONAL_OR_KEYWORD,)
    empty = inspect.Parameter.empty
    wte = c_torchvggish.vggish_input.waveform_to_examples
    assert params(wte, pos) == [("data", empty), ("sample_rate", empty), ("return_tensor", True)]
    assert params(c_torchvggish.vggish_input.wavfile_to_examples, pos) == [("wav_file", empty), ("return_tensor", True)]
    assert params(c_torchvggish.vggish, pos) == [("postprocess", True)]
    hub = params(c_torchvggish.vggish, (inspect.Parameter.KEYWORD_ONLY,))
    assert hub[:4] == [("pretrained", True), ("preprocess", True), ("device", None), ("progress", True)]
    assert c_torchvggish.waveform_to_examples is wte  # torchvggish exports it at the top level too


def test_waveform_to_examples_shapes_and_values(speech, stereo):
    x, sr = speech
    ref = VGGishFrontend().examples(x, sr)
    t = c_torchvggish.vggish_input.waveform_to_examples(x, sr)
    assert t.shape == (1, 1, 96, 64) and t.dtype == np.float32  # 1.5 s: one 0.96 s example
    np.testing.assert_array_equal(t[:, 0], ref.astype(np.float32))
    a = c_torchvggish.vggish_input.waveform_to_examples(x, sr, return_tensor=False)
    assert a.shape == (1, 96, 64) and a.dtype == np.float64 and a.flags.writeable
    np.testing.assert_array_equal(a, ref)
    y, sr2 = stereo
    np.testing.assert_array_equal(
        c_torchvggish.waveform_to_examples(y, sr2, False), VGGishFrontend().examples(y.mean(axis=1), sr2)
    )
    assert c_torchvggish.waveform_to_examples(x[: int(0.97 * sr)], sr).shape == (0, 1, 96, 64)


def test_vggish_equals_pqeval_embedder_exactly(use_models):
    x = np.random.default_rng(5).standard_normal(16000 * 4) * 0.1
    ex = c_torchvggish.vggish_input.waveform_to_examples(x, 16000)
    model, run = quiet_vggish()
    assert model.eval() is model and model.to("cuda") is model
    got = run(ex)
    onnx = open_model("vggish")
    want = VGGishEmbedder(onnx).run_examples(ex[:, 0])
    assert got.dtype == np.float32 and got.shape == (4, 128)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(got, np.round(got)) and got.min() >= 0 and got.max() <= 255
    np.testing.assert_array_equal(run(ex[:, 0]), want)  # [N, 96, 64] too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotPerceptualWarning)
        np.testing.assert_array_equal(model.forward(ex), want)
    assert run(ex[:1]).shape == (128,)  # torchvggish's postprocessor squeezes a single example
    emb = VGGishEmbedder(onnx, output="embedding").run_examples(ex[:, 0])
    model.postprocess = False  # read at every call, as torchvggish's attribute
    np.testing.assert_array_equal(run(ex), emb)
    assert run(ex[:1]).shape == (1, 128)
    np.testing.assert_array_equal(quiet_vggish(postprocess=False)[1](ex), emb)


def test_vggish_takes_waveforms_and_wav_files(use_models, stereo, tmp_path):
    x, sr = stereo
    _, run = quiet_vggish()
    np.testing.assert_array_equal(run(x, sr), run(c_torchvggish.waveform_to_examples(x, sr)))
    path = tmp_path / "clip.wav"
    sf.write(path, x, sr, subtype="PCM_16")
    from_file = c_torchvggish.vggish_input.wavfile_to_examples(str(path))
    pcm, _ = sf.read(path, dtype="int16")
    np.testing.assert_array_equal(from_file, c_torchvggish.waveform_to_examples(pcm / 32768.0, sr))
    np.testing.assert_array_equal(run(str(path)), run(from_file))
    np.testing.assert_array_equal(run(path), run(from_file))


def test_vggish_errors(use_models, tmp_path):
    model, run = quiet_vggish()
    with pytest.raises(UsageError, match=r"got an array of shape \(16000,\)"):
        run(np.zeros(16000))  # a waveform without its rate
    with pytest.raises(UsageError, match=r"got an array of shape \(2, 1, 64, 96\)"):
        run(np.zeros((2, 1, 64, 96)))
    _, raw = quiet_vggish(preprocess=False)
    with pytest.raises(UsageError, match="preprocess=False"):
        raw(np.zeros(16000), 16000)
    with pytest.raises(UsageError, match="pretrained=False"):
        c_torchvggish.vggish(pretrained=False)
    with pytest.raises(UsageError, match="data must be"):
        c_torchvggish.waveform_to_examples(np.zeros((10, 2, 2)), 16000)
    with pytest.raises(UsageError, match="positive number of Hz"):
        c_torchvggish.waveform_to_examples(np.zeros(16000), 0)
    with pytest.raises(UsageError, match="resampler must be one of"):
        c_torchvggish.waveform_to_examples(np.zeros(16000), 8000, resampler="sinc_fast")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio")
    with pytest.raises(AudioError, match="junk.wav: cannot read it as audio"):
        run(str(junk))
    with pytest.raises(ModelError, match="model 'vggish-fp16' is not installed"):
        c_torchvggish.vggish(key="vggish-fp16")


def test_vggish_warns_once_per_seeded_model(use_models):
    ex = c_torchvggish.waveform_to_examples(np.random.default_rng(1).standard_normal(16000) * 0.1, 16000)
    model = c_torchvggish.vggish()
    with pytest.warns(NotPerceptualWarning, match=f"vggish .*: {SEEDED_NOTE}") as rec:
        model(ex)
    assert rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(ex)
        c_torchvggish.vggish().forward(ex)  # another object, the same model file


def test_import_lines_load_neither_torch_nor_tensorflow():
    code = (
        "import sys\n"
        "from pqeval.compat import openl3\n"
        "from pqeval.compat.torchvggish import vggish, vggish_input\n"
        "import pqeval.compat.torchvggish.vggish_input as vi\n"
        "from pqeval.compat.openl3.models import load_audio_embedding_model\n"
        "assert vi.waveform_to_examples is vggish_input.waveform_to_examples\n"
        "assert load_audio_embedding_model is openl3.models.load_audio_embedding_model\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ENV_PATH},
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


# --- parity tier: the study's snippets, original vs compat, only the import changed -----------

SEED = 0  # the exported models' seed (exported_models_dir: `pqeval export ... --seeded 0`)
COSINE_MIN = 0.99999
# VGGish 8-bit values may flip by one step where torch's pre-rounding value lies within this many
# steps of a rounding boundary (float32 GEMMs sum in different orders in torch and ORT); the
# reasoning and the constant are tests/test_vggish_parity.py's.
BOUNDARY_TOL = 0.01


def openl3_snippet(openl3, audio, sr, model=None):
    """The study's OpenL3 call (openl3 0.4.2 defaults: centred windows every 0.1 s)."""
    return openl3.get_audio_embedding(
        audio, sr, model=model, input_repr="mel256", content_type="music", embedding_size=512
    )


def vggish_snippet(vggish, vggish_input, audio, sr):
    """The study's VGGish lines: examples, the model with its PCA + 8-bit postprocessing."""
    examples = vggish_input.waveform_to_examples(audio, sr)
    model = vggish()
    model.eval()
    return examples, model(examples)


@pytest.fixture(scope="module")
def original_openl3(tmp_path_factory):
    """openl3 0.4.2 and its Keras model with the seeded weights the exported OpenL3 model has."""
    from pqeval_export import openl3 as X  # sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads

    openl3 = X.import_openl3()
    h5 = X.make_seeded_weights(SEED, "mel256", tmp_path_factory.mktemp("openl3-seeded"), "music")
    return openl3, openl3.models.load_audio_embedding_model_from_path(str(h5), "mel256", 512, frontend="kapre")


@pytest.mark.parity
def test_signatures_equal_the_originals():
    from pqeval_export.openl3 import import_openl3

    openl3 = import_openl3()
    import torchvggish
    import torchvggish.vggish_input as vi

    everything = None
    assert params(c_openl3.get_audio_embedding, everything) == params(openl3.get_audio_embedding, everything)
    for name in ("load_audio_embedding_model", "load_audio_embedding_model_from_path"):
        assert params(getattr(c_openl3.models, name), everything) == params(getattr(openl3.models, name), everything)
    pos = (inspect.Parameter.POSITIONAL_OR_KEYWORD,)
    for name in ("waveform_to_examples", "wavfile_to_examples"):
        assert params(getattr(c_torchvggish.vggish_input, name), pos) == params(getattr(vi, name), everything)
    assert params(c_torchvggish.vggish, pos) == params(torchvggish.vggish, everything)


@pytest.mark.parity
def test_openl3_snippet_original_vs_compat(use_exported_models, original_openl3):
    """Lists in (a 44.1 kHz stereo and a 16 kHz mono excerpt): openl3 with the seeded Keras model,
    compat with model=None (the default-named exported model) and with a compat-loaded model."""
    openl3, keras_model = original_openl3
    clips = [excerpt("music_brahms_hungarian5_44k_stereo.flac", 4.0, 2.0), excerpt("speech_libri_3436_m.wav", 2.0, 2.0)]
    audio, srs = [x for x, _ in clips], [sr for _, sr in clips]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openl3's and TensorFlow's own
        ref, ref_ts = openl3_snippet(openl3, audio, srs, model=keras_model)
    with pytest.warns(NotPerceptualWarning, match=SEEDED_NOTE):
        got, got_ts = openl3_snippet(c_openl3, audio, srs)
    model = c_openl3.models.load_audio_embedding_model("mel256", "music", 512)
    single, single_ts = openl3_snippet(c_openl3, audio[0], srs[0], model=model)
    assert model.weights == f"seeded:{SEED}"
    worst = 1.0
    for r, rt, g, gt in zip(ref, ref_ts, got, got_ts, strict=True):
        assert g.dtype == r.dtype == np.float32 and g.shape == r.shape == (
            16,
            512,
        )  # 2 s, centred, hop 0.1 s: 1 + (2 + 0.5 - 1) / 0.1
        np.testing.assert_array_equal(gt, rt)
        worst = min(worst, float(cosines(g, r).min()))
    np.testing.assert_array_equal(single, got[0])
    np.testing.assert_array_equal(single_ts, ref_ts[0])
    print(f"openl3 snippet: {sum(len(r) for r in ref)} windows, per-window cosine min {worst:.9f}")
    assert worst >= COSINE_MIN


def pre_round(emb: np.ndarray, pca: dict) -> np.ndarray:
    """torchvggish's value just before torch.round, computed as its Postprocessor does (float32)."""
    import torch

    from pqeval_export.vggish import QUANT_MAX, QUANT_MIN

    m = torch.as_tensor(pca["pca_eigen_vectors"]).float()
    mu = torch.as_tensor(pca["pca_means"].reshape(-1, 1)).float()
    x = torch.mm(m, torch.as_tensor(emb).t() - mu).t()
    return ((torch.clamp(x, QUANT_MIN, QUANT_MAX) - QUANT_MIN) * (255.0 / (QUANT_MAX - QUANT_MIN))).numpy()


VGGISH_CASES = {
    "speech@16k": ("speech_libri_3436_m.wav", 1.0, 6.0),
    "music@44.1k-stereo": ("music_brahms_hungarian5_44k_stereo.flac", 0.0, 6.0),
    "env@16k": ("env_humpback_glacierbay.wav", 0.0, 8.0),
}


@pytest.mark.parity
@pytest.mark.parametrize("case", list(VGGISH_CASES))
def test_vggish_snippet_original_vs_compat(use_exported_models, vggish_reference, case):
    import torch
    import torchvggish

    ref_model, pca = vggish_reference
    x, sr = excerpt(*VGGISH_CASES[case])
    ref_ex, ref_out = vggish_snippet(lambda: ref_model, torchvggish.vggish_input, x, sr)  # its hub loader downloads
    with pytest.warns(NotPerceptualWarning, match=SEEDED_NOTE):
        got_ex, got = vggish_snippet(c_torchvggish.vggish, c_torchvggish.vggish_input, x, sr)
    ref_ex, want = ref_ex.detach().numpy(), ref_out.detach().numpy()
    assert got_ex.shape == ref_ex.shape and got_ex.dtype == ref_ex.dtype == np.float32
    ex_diff = float(np.abs(got_ex - ref_ex).max())
    assert ex_diff <= (0.0 if sr == 16000 else 1e-5)  # bit-identical at 16 kHz; resampled: float32 rounding
    assert got.shape == want.shape == (len(ref_ex), 128) and got.dtype == want.dtype
    ref_model.postprocess = False  # the shared fixture model: restored below whatever happens
    try:
        with torch.no_grad():
            emb = ref_model(torch.as_tensor(ref_ex)).numpy()
    finally:
        ref_model.postprocess = True
    flips = got != want
    if flips.any():  # only one step, and only at a rounding boundary of torch's own value
        v = pre_round(emb, pca)[flips]
        assert np.all(np.abs(got[flips] - want[flips]) == 1)
        assert np.all(np.abs(v - np.floor(v) - 0.5) < BOUNDARY_TOL)
    assert flips.mean() < 0.005
    raw = c_torchvggish.vggish(postprocess=False)(got_ex)
    cos = cosines(raw, emb)
    print(
        f"vggish {case}: {int(flips.sum())} of {flips.size} 8-bit values one step off; embedding cosine min "
        f"{cos.min():.12f}, max abs diff {np.abs(raw - emb).max():.2e}; examples max abs diff {ex_diff:.1e}"
    )
    assert cos.min() >= COSINE_MIN and np.abs(raw - emb).max() <= 1e-4
