"""Options are checked before any work, and an unusable model is an error, never a NaN (issue 11)."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from helpers import cli, read, shared
from pqeval.audio import from_array
from pqeval.scoring import ScoreOptions, Scorer

SPEECH = "pesq_speech.wav"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--hop", "inf"], "OpenL3 hop must be"),
        (["--hop", "nan"], "OpenL3 hop must be"),
        (["--hop", "1e-6"], "OpenL3 hop must be"),
        (["--hop", "1e9"], "OpenL3 hop must be"),
        (["--threads", "0"], "threads must be 1.."),
        (["--threads", "-1"], "threads must be 1.."),
        (["--threads", "1000"], "threads must be 1.."),
        (["--vggish-output", "pca"], "VGGish output must be one of"),
        (["--vggish-model", "openl3-mel256-music-512"], "is a model of the openl3 family, not vggish"),
        (["--openl3-model", "vggish"], "is a model of the vggish family, not openl3"),
        (["--metrics", ",,,"], "no metric chosen"),
        (["--resampler", "kaiser_fast"], "resampler must be one of"),
    ],
)
def test_bad_score_options_are_one_line_usage_errors(use_models, extra, message):
    r = cli("score", shared(SPEECH), shared(SPEECH), *extra)
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    assert r.stdout == "" and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["abc", "0", "1000"])
def test_bad_pqeval_threads_is_a_usage_error(use_models, monkeypatch, value):
    monkeypatch.setenv("PQEVAL_THREADS", value)
    r = cli("score", shared(SPEECH), shared(SPEECH), "--model", "vggish")
    assert r.exit_code == 2 and "PQEVAL_THREADS" in r.stderr and r.stdout == ""


@pytest.mark.parametrize("seconds", ["nan", "1e7", "0", "-1"])
def test_bad_bench_seconds(use_models, seconds):
    r = cli("bench", "--model", "vggish", "--seconds", seconds)
    assert r.exit_code == 2 and "--seconds must be" in r.stderr


@pytest.mark.parametrize("sr", ["-16000", "0", "abc"])
def test_bad_study_rate(use_models, tmp_path, sr):
    (tmp_path / "in").mkdir()
    sf.write(str(tmp_path / "in" / "speech_a.wav"), read(SPEECH)[0], 16000)
    r = cli("study", tmp_path / "in", "--out", tmp_path / "out", "--sr", sr)
    assert r.exit_code == 2 and "--sr must be" in r.stderr
    assert not (tmp_path / "out").exists()  # refused before any work


def test_study_refuses_originals_that_share_a_stem(use_models, tmp_path):
    """speech_a.wav and speech_a.flac would both become clean/speech_a.wav: refused up front."""
    x, sr = read(SPEECH)
    (tmp_path / "in").mkdir()
    sf.write(str(tmp_path / "in" / "speech_a.wav"), x, sr)
    sf.write(str(tmp_path / "in" / "speech_a.flac"), x[: sr * 2], sr)
    r = cli("study", tmp_path / "in", "--out", tmp_path / "out", "--metrics", "stoi")
    assert r.exit_code == 2 and "speech_a.flac/speech_a.wav" in r.stderr and "rename" in r.stderr
    assert not (tmp_path / "out" / "all_metrics.csv").exists()


def test_resampler_generation_changes_vggish_and_is_recorded(use_models):
    """--resampler picks the resampy generation torchvggish runs beside; it is in the settings key."""
    x, sr = read("music_brahms_hungarian5_44k_stereo.flac")
    audio = from_array(x, sr, "music.flac")
    frames = {}
    for r in ("kaiser_best_0.2", "kaiser_best_0.3"):
        scorer = Scorer(ScoreOptions(metrics=("vggish",), vggish_output="embedding", vggish_resampler=r))
        frames[r] = scorer.embedder("vggish").embed(audio.samples, sr).frames
        assert f"vggish_resampler={r}" in scorer.options.key()
    assert frames["kaiser_best_0.2"].shape == frames["kaiser_best_0.3"].shape
    assert not np.array_equal(frames["kaiser_best_0.2"], frames["kaiser_best_0.3"])  # two filter generations
    r = cli("score", shared(SPEECH), shared(SPEECH), "--model", "vggish", "--resampler", "kaiser_best_0.3", "--json")
    assert r.exit_code == 0 and "vggish_resampler=kaiser_best_0.3" in json.loads(r.stdout)["settings"]


def _private_models(models_dir, tmp_path, monkeypatch):
    import pqeval.session as session

    d = tmp_path / "models"
    shutil.copytree(models_dir, d)
    monkeypatch.setenv("PQEVAL_MODELS", str(d))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(session, "CHECKOUT_MODELS", tmp_path / "no-checkout-models")
    session._OPEN.clear()
    return d


def test_tampered_model_not_named_is_exit_2(models_dir, tmp_path, monkeypatch):
    """No number can come from a tampered default model: an error (2), not a partial result (3)."""
    d = _private_models(models_dir, tmp_path, monkeypatch)
    p = d / "openl3-mel256-music-512.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    r = cli("score", shared(SPEECH), shared(SPEECH))
    assert r.exit_code == 2 and "does not match its recorded sha256" in r.stderr and r.stdout == ""


def test_uninstalled_default_model_is_exit_2(models_dir, tmp_path, monkeypatch):
    d = _private_models(models_dir, tmp_path, monkeypatch)
    (d / "openl3-mel256-music-512.onnx").unlink()
    r = cli("score", shared(SPEECH), shared(SPEECH))
    assert r.exit_code == 2 and "is not installed" in r.stderr


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "{bad json"])
def test_sidecar_that_is_not_an_object_is_one_line_exit_2(models_dir, tmp_path, monkeypatch, content):
    d = _private_models(models_dir, tmp_path, monkeypatch)
    (d / "vggish.onnx.json").write_text(content)
    r = cli("score", shared(SPEECH), shared(SPEECH), "--model", "vggish")
    assert r.exit_code == 2 and "vggish.onnx.json" in r.stderr and "internal error" not in r.stderr


def test_models_checks_the_label_inside_the_onnx_file(models_dir, tmp_path, monkeypatch):
    """A sidecar relabelled 'pretrained' is not listed as perceptual: the ONNX file says seeded."""
    d = _private_models(models_dir, tmp_path, monkeypatch)
    side = d / "vggish.onnx.json"
    meta = json.loads(side.read_text())
    meta["metadata"]["pqeval.weights"] = "pretrained:vggish-10086976.pth forged"
    side.write_text(json.dumps(meta))
    r = cli("models", "--json")
    row = next(m for m in json.loads(r.stdout)["models"] if m["key"] == "vggish")
    assert row["perceptual"] is False and "differs from its sidecar" in row["status"]


def test_batch_with_an_unusable_model_writes_nothing(models_dir, tmp_path, monkeypatch):
    d = _private_models(models_dir, tmp_path, monkeypatch)
    (d / "vggish.onnx.data").write_bytes(b"0" * 100)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"clean,degraded\n{shared(SPEECH)},{shared(SPEECH)}\n")
    r = cli("batch", pairs, "--out", tmp_path / "r.csv", "--model", "vggish")
    assert r.exit_code == 2 and "external weights" in r.stderr
    assert not (tmp_path / "r.csv").exists()
