"""The Python API (``pqeval.score``, ``pqeval.embed``, the names ``pqeval`` exports): the CLI's
numbers, paths and arrays alike, options passed through, pqeval's own errors, a light import.

Runtime tier: tiny models (``use_models``), real recordings from the shared audio folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import pqeval
from helpers import ENV_PATH, cli, shared
from pqeval.audio import open_audio
from pqeval.errors import AudioError, ModelError, PqevalError, UsageError
from pqeval.scoring import ScoreOptions, Scorer
from pqeval.similarity import cosine_per_frame

SPEECH = ("pesq_speech.wav", "pesq_speech_bab_0dB.wav")  # 16 kHz mono speech and a babble-noise copy, same length

#: score()'s keywords -> the `pqeval score` option that sets the same field
CLI_FLAGS = {
    "metrics": "--metrics",
    "length": "--length",
    "align": "--align",
    "vggish_model": "--vggish-model",
    "vggish_output": "--vggish-output",
    "vggish_resampler": "--resampler",
    "openl3_model": "--openl3-model",
    "openl3_hop": "--hop",
    "threads": "--threads",
}


@pytest.fixture(scope="module")
def stereo(tmp_path_factory):
    """A 44.1 kHz stereo music recording (read from disk as is) and a noisy copy written beside it."""
    clean = shared("music_brahms_hungarian5_44k_stereo.flac")
    x, sr = sf.read(str(clean), dtype="float64")
    noisy = x + 0.02 * np.random.default_rng(1).standard_normal(x.shape)
    degraded = tmp_path_factory.mktemp("api") / "brahms_noisy.wav"
    sf.write(str(degraded), noisy, sr, subtype="FLOAT")
    return str(clean), str(degraded)


def _json(d: dict) -> dict:
    """As the CLI's --json prints it (strict JSON, then parsed)."""
    return json.loads(json.dumps(d, allow_nan=False))


def _cli_args(options: dict) -> list[str]:
    args = []
    for k, v in options.items():
        args += [CLI_FLAGS[k], ",".join(v) if isinstance(v, (list, tuple)) else str(v)]
    return args


# --- score: the CLI's numbers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "files, options",
    [
        ("speech", {}),
        (
            "stereo",
            {"metrics": "vggish,pesq_nb,stoi", "vggish_output": "embedding", "vggish_resampler": "kaiser_best_0.3"},
        ),
        ("speech", {"metrics": ["openl3", "estoi"], "openl3_hop": 0.25, "align": "delay", "length": "error"}),
        ("stereo", {"metrics": ("openl3", "vggish"), "openl3_hop": 1, "threads": 1, "vggish_output": "embedding_raw"}),
    ],
)
def test_score_gives_the_cli_numbers(use_models, stereo, files, options):
    clean, degraded = stereo if files == "stereo" else tuple(str(shared(n)) for n in SPEECH)
    r = cli("score", clean, degraded, "--json", *_cli_args(options))
    assert r.exit_code == 0, r.stderr
    got = pqeval.score(clean, degraded, **options)
    assert _json(got.as_dict()) == json.loads(r.stdout)  # every value, per-frame cosine, note and setting
    assert not got.failed


def test_paths_arrays_and_audio_give_the_same_numbers(use_models, stereo):
    clean, degraded = stereo
    by_path = pqeval.score(clean, degraded)
    assert not by_path.failed and by_path.sr == 44100
    for c, d in [
        (Path(clean), Path(degraded)),
        (sf.read(clean), sf.read(degraded)),  # (array (n, 2), rate) as soundfile returns it
        (pqeval.load_audio(clean), pqeval.from_array(*sf.read(degraded))),
    ]:
        other = pqeval.score(c, d)
        assert _json(other.as_dict())["metrics"] == _json(by_path.as_dict())["metrics"]
        assert (other.sr, other.seconds, other.settings) == (by_path.sr, by_path.seconds, by_path.settings)


def test_array_inputs_are_named_in_the_result(use_models):
    x, sr = sf.read(str(shared(SPEECH[0])))
    y, _ = sf.read(str(shared(SPEECH[1])))
    r = pqeval.score((x, sr), (y[: len(y) - 1600], sr), metrics="stoi")
    assert (r.clean, r.degraded) == ("<clean array>", "<degraded array>")
    assert any("trimmed" in n for n in r.notes)


# --- score: options -------------------------------------------------------------------------


def test_options_pass_through(use_models):
    clean, degraded = (str(shared(n)) for n in SPEECH)
    r = pqeval.score(clean, degraded, metrics="openl3, stoi,openl3", openl3_hop=0.25, align="delay", threads=1)
    assert list(r.metrics) == ["openl3", "stoi"]
    assert r.settings == ScoreOptions(metrics=("openl3", "stoi"), openl3_hop=0.25, align="delay").key()
    times = r.metrics["openl3"].details["times"]
    assert times == [round(0.25 * i, 6) for i in range(len(times))]
    # the three ways to name metrics are one
    for metrics in ("vggish,pesq_wb", ["vggish", "pesq_wb"], ("vggish", "pesq_wb")):
        s = pqeval.score(clean, degraded, metrics=metrics, vggish_output="embedding")
        assert list(s.metrics) == ["vggish", "pesq_wb"] and "vggish_output=embedding" in s.settings
    # a whole-number hop is typed as the CLI types it (float seconds): the same resume key
    assert "openl3_hop=1.0;" in pqeval.score(clean, degraded, metrics="openl3", openl3_hop=1).settings + ";"


def test_unknown_option_names_the_valid_ones(use_models):
    clean, degraded = (str(shared(n)) for n in SPEECH)
    with pytest.raises(UsageError) as e:
        pqeval.score(clean, degraded, hop=0.1)
    msg = str(e.value)
    assert "unknown option(s) hop" in msg and "did you mean openl3_hop?" in msg
    for name in ("metrics", "length", "align", "vggish_model", "vggish_output", "vggish_resampler", "threads"):
        assert name in msg
    with pytest.raises(UsageError, match="unknown option.*colour"):
        pqeval.score(clean, degraded, colour="blue")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"metrics": 5}, "metrics must be"),
        ({"metrics": "vggish,mfcc"}, "unknown metric"),
        ({"metrics": ""}, "no metric chosen"),
        ({"openl3_hop": "0.5"}, "openl3_hop must be a number"),
        ({"openl3_hop": 0.0}, "OpenL3 hop"),
        ({"threads": 1.5}, "threads must be a whole number"),
        ({"threads": True}, "threads must be a whole number"),
        ({"align": None}, "align must be a string"),
        ({"vggish_output": "logits"}, "VGGish output must be one of"),
        ({"vggish_model": "openl3-mel256-music-512"}, "not vggish"),
    ],
)
def test_bad_option_values(use_models, options, message):
    clean, degraded = (str(shared(n)) for n in SPEECH)
    with pytest.raises(UsageError, match=message):
        pqeval.score(clean, degraded, **options)


# --- errors ---------------------------------------------------------------------------------


def test_errors_are_pqevals_classes(use_models, tmp_path):
    assert pqeval.AudioError is AudioError and pqeval.ModelError is ModelError and pqeval.UsageError is UsageError
    assert all(issubclass(c, pqeval.PqevalError) for c in (pqeval.AudioError, pqeval.ModelError, pqeval.UsageError))
    clean = str(shared(SPEECH[0]))
    x, sr = sf.read(clean)
    with pytest.raises(pqeval.AudioError, match="missing.wav: no such file"):
        pqeval.score(clean, str(tmp_path / "missing.wav"))
    bad = x.copy()
    bad[100] = np.nan
    with pytest.raises(pqeval.AudioError, match="non-finite"):
        pqeval.score(clean, (bad, sr))
    with pytest.raises(pqeval.AudioError, match="lengths differ"):
        pqeval.score(clean, (x[:-160], sr), length="error")
    with pytest.raises(pqeval.UsageError, match="needs its sample rate"):
        pqeval.score(clean, x)
    with pytest.raises(pqeval.UsageError, match="sample_rate must be a whole number"):
        pqeval.score(clean, (x, "16k"))
    with pytest.raises(pqeval.UsageError, match=r"\(array, sample_rate\)"):
        pqeval.score(clean, (x, sr, 1))
    with pytest.raises(pqeval.ModelError, match="vggish-int8fc"):  # the tiny models have no compact variant
        pqeval.score(clean, clean, metrics="vggish", vggish_model="vggish-int8fc")


# --- embed ----------------------------------------------------------------------------------


def test_embed_vggish(use_models):
    e = pqeval.embed(str(shared(SPEECH[0])))  # 3.1 s: three 0.96 s examples
    assert isinstance(e, pqeval.Embedding)
    assert e.frames.shape == (3, 128) and e.frames.dtype == np.float32
    np.testing.assert_array_equal(e.times, np.arange(3) * 0.96)
    assert e.model == "vggish" and e.provenance.kind == "seeded" and not e.provenance.perceptual
    assert e.notes == ()


def test_embed_openl3(use_models):
    path = str(shared(SPEECH[0]))
    e = pqeval.embed(path, model="openl3", hop=0.25)
    n, d = e.frames.shape
    assert d == 512 and e.frames.dtype == np.float32 and e.model == "openl3-mel256-music-512"
    np.testing.assert_array_equal(e.times, np.arange(n) * 0.25)
    from pqeval.openl3 import num_windows

    assert n == num_windows(int(3.1 * 48000), 0.25)
    by_key = pqeval.embed(path, model="openl3-mel256-music-512", hop=0.25)
    np.testing.assert_array_equal(by_key.frames, e.frames)
    assert len(pqeval.embed(path, model="openl3").frames) == num_windows(int(3.1 * 48000), 0.5)  # score's default


def test_embed_arrays_and_notes(use_models, stereo):
    clean = stereo[0]
    x, sr = sf.read(clean)
    by_path = pqeval.embed(clean, output="embedding")
    for by_array in (pqeval.embed(x, sr, output="embedding"), pqeval.embed((x, sr), output="embedding")):
        np.testing.assert_array_equal(by_array.frames, by_path.frames)
    assert f"{clean}: 2 channels mixed to mono" in by_path.notes
    short = pqeval.embed(x[: sr // 2, 0], sr, model="openl3")  # under one 1 s window: zero-padded, said so
    assert short.frames.shape[0] >= 1 and any("zero-padded" in n for n in short.notes)
    with pytest.raises(pqeval.AudioError, match="too short for VGGish"):
        pqeval.embed(x[: sr // 2], sr)


def test_dash_is_a_file_not_stdin(use_models, tmp_path, monkeypatch):
    clean = str(shared(SPEECH[0]))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pqeval.AudioError, match="no such file"):
        pqeval.embed("-")
    shutil.copy(clean, tmp_path / "-")
    np.testing.assert_array_equal(pqeval.embed("-").frames, pqeval.embed(clean).frames)


@pytest.mark.parametrize(
    "family, options",
    [
        ("vggish", {}),
        ("vggish", {"output": "embedding", "resampler": "kaiser_best_0.3", "threads": 1}),
        ("openl3", {"hop": 0.25}),
    ],
)
def test_embed_gives_the_frames_the_scorer_compares(use_models, stereo, family, options):
    clean, degraded = stereo
    args = {"vggish": {"output": "vggish_output", "resampler": "vggish_resampler"}, "openl3": {"hop": "openl3_hop"}}
    opts = ScoreOptions(metrics=(family, "stoi"), **{args[family].get(k, k): v for k, v in options.items()})
    cache: dict = {}
    scored = Scorer(opts, cache).score(open_audio(clean), open_audio(degraded), clean_id="clean")
    (cached,) = cache.values()  # the clean reference's embedding, as the Scorer made it
    a = pqeval.embed(clean, model=family, **options)
    b = pqeval.embed(degraded, model=family, **options)
    np.testing.assert_array_equal(a.frames, cached.frames)
    np.testing.assert_array_equal(a.times, cached.times)
    assert scored.metrics[family].details["frames"] == [float(c) for c in cosine_per_frame(a.frames, b.frames)]


def test_embed_errors(use_models):
    path = str(shared(SPEECH[0]))
    x, sr = sf.read(path)
    with pytest.raises(pqeval.UsageError, match="needs its sample rate"):
        pqeval.embed(x)
    with pytest.raises(pqeval.UsageError, match="sample_rate is for arrays"):
        pqeval.embed(path, sr)
    with pytest.raises(pqeval.UsageError, match="given twice"):
        pqeval.embed((x, sr), sr)
    with pytest.raises(pqeval.UsageError, match=r"option\(s\) hop for vggish.*output, resampler, engine, precision"):
        pqeval.embed(path, hop=0.5)
    with pytest.raises(pqeval.UsageError, match=r"unknown option\(s\) output for openl3.*hop, engine, precision"):
        pqeval.embed(path, model="openl3", output="embedding")
    with pytest.raises(pqeval.UsageError, match="unknown model 'vgish'.*vggish, openl3"):
        pqeval.embed(path, model="vgish")
    with pytest.raises(pqeval.UsageError, match="resampler must be one of"):
        pqeval.embed(path, resampler="sinc")
    with pytest.raises(pqeval.ModelError, match="vggish-int8fc"):
        pqeval.embed(path, model="vggish-int8fc")
    with pytest.raises(pqeval.AudioError, match="expected a 1-D"):
        pqeval.embed(np.zeros((2, 2, 2)), sr)


# --- the package's names and its light import ------------------------------------------------


def test_exported_names():
    import pqeval.api
    import pqeval.audio
    import pqeval.embedding
    import pqeval.metrics
    import pqeval.scoring

    assert pqeval.score is pqeval.api.score and pqeval.embed is pqeval.api.embed
    assert pqeval.Scorer is pqeval.scoring.Scorer and pqeval.ScoreOptions is pqeval.scoring.ScoreOptions
    assert pqeval.PairScore is pqeval.scoring.PairScore and pqeval.Embedding is pqeval.embedding.Embedding
    assert pqeval.MetricResult is pqeval.metrics.MetricResult
    assert pqeval.load_audio is pqeval.audio.load_audio and pqeval.from_array is pqeval.audio.from_array
    for name in pqeval.__all__:
        assert getattr(pqeval, name) is not None, name
    assert set(pqeval.__all__) <= set(dir(pqeval))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        pqeval.nonexistent
    assert issubclass(pqeval.PqevalError, Exception) and pqeval.PqevalError is PqevalError


def test_import_is_light():
    """``import pqeval`` loads neither numpy nor ONNX Runtime (nor the rest); the first use of a
    name does, and ``from pqeval import <submodule>`` still finds the submodule."""
    code = """
import json, sys
import pqeval
mods = ("numpy", "onnxruntime", "soundfile", "scipy", "pystoi", "typer", "rich")
before = sorted(m for m in mods if m in sys.modules)
version = pqeval.__version__
options = pqeval.ScoreOptions(metrics=("stoi",))
after = sorted(m for m in ("numpy", "soundfile") if m in sys.modules)
from pqeval import audio
print(json.dumps([before, after, version, options.metrics, audio.__name__]))
"""
    env = {**os.environ, "PYTHONPATH": ENV_PATH}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    before, after, version, metrics, audio = json.loads(p.stdout)
    assert before == []
    assert after == ["numpy", "soundfile"]
    assert version == pqeval.__version__ and version
    assert metrics == ["stoi"] and audio == "pqeval.audio"
