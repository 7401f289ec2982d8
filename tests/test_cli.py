"""The pqeval CLI on real recordings and on bad input: clear messages, exit codes, no tracebacks."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, read, shared

ENV_PATH = os.pathsep.join([str(ROOT / "runtime"), str(ROOT / "export")])


def run(*args, models=None, cwd=None):
    env = {**os.environ, "PYTHONPATH": ENV_PATH}
    if models is not None:
        env["PQEVAL_MODELS"] = str(models)
    p = subprocess.run([sys.executable, "-m", "pqeval", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert "Traceback" not in p.stderr, p.stderr
    return p


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad input")
    speech, sr = read("speech_libri_198_f.wav")
    f = {}

    def wav(name, x, rate=sr, subtype="FLOAT"):
        p = d / name
        sf.write(str(p), x, rate, subtype=subtype)
        f[name] = p
        return p

    wav("clean.wav", speech[: 3 * sr])
    noisy = speech[: 3 * sr] + 0.05 * np.random.default_rng(0).standard_normal(3 * sr)
    wav("noisy.wav", noisy / np.abs(noisy).max())
    wav("shorter.wav", noisy[: int(2.5 * sr)] / np.abs(noisy).max())
    wav("zeros.wav", np.zeros(3 * sr))
    x = speech[: 3 * sr].copy()
    x[1000] = np.nan
    wav("nan.wav", x)
    wav("half_second.wav", speech[: sr // 2])
    wav("empty_audio.wav", np.zeros(0))
    (d / "empty.wav").write_bytes(b"")
    f["empty.wav"] = d / "empty.wav"
    (d / "notes.txt").write_text("not audio")
    f["notes.txt"] = d / "notes.txt"
    f["dir"] = d
    f["missing"] = d / "missing.wav"
    f["stereo"] = shared("music_brahms_hungarian5_44k_stereo.flac")
    f["mono16"] = shared("music_brahms_hungarian5.wav")
    return f


def test_score_two_real_recordings_table(use_models):
    p = run("score", shared("pesq_speech.wav"), shared("pesq_speech_bab_0dB.wav"), models=use_models)
    assert p.returncode == 0, p.stderr
    for name in ("vggish", "openl3", "pesq_wb", "stoi", "estoi"):
        assert name in p.stdout
    assert "warning: openl3: weights: seeded" in p.stdout and "warning: vggish: weights: seeded" in p.stdout
    assert "1.0832" in p.stdout and "0.6739" in p.stdout and "0.3904" in p.stdout
    assert "seeded" in p.stdout and "not a perceptual measurement" in p.stdout


def test_score_json_parses(use_models):
    p = run("score", shared("pesq_speech.wav"), shared("pesq_speech_bab_0dB.wav"), "--model", "vggish,openl3", "--metrics", "pesq_wb,pesq_nb,stoi,estoi", "--json", "--hop", "0.25", models=use_models)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    m = out["metrics"]
    assert set(m) == {"vggish", "openl3", "pesq_wb", "pesq_nb", "stoi", "estoi"}
    o = m["openl3"]
    assert o["weights"] == "seeded:0" and o["perceptual"] is False
    assert o["times"] == [round(0.25 * i, 6) for i in range(len(o["times"]))] 
    from pqeval.openl3 import num_windows

    assert len(o["frames"]) == num_windows(int(3.1 * 48000), 0.25)
    assert m["pesq_nb"]["value"] == pytest.approx(1.6072081327438354)
    v = m["vggish"]
    assert v["weights"] == "seeded:0" and v["perceptual"] is False and "not a perceptual" in v["note"]
    assert len(v["frames"]) == len(v["times"]) == 3 and v["min"] <= v["value"] <= 1


@pytest.mark.parametrize(
    "clean, degraded, message",
    [
        ("missing", "clean.wav", "no such file"),
        ("dir", "clean.wav", "is a directory"),
        ("notes.txt", "clean.wav", "not a readable audio file"),
        ("clean.wav", "empty.wav", "not a readable audio file"),
        ("clean.wav", "empty_audio.wav", "zero length"),
        ("clean.wav", "nan.wav", "non-finite"),
    ],
)
def test_unusable_input_is_one_line_error(files, use_models, clean, degraded, message):
    p = run("score", files[clean], files[degraded], "--model", "vggish", models=use_models)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pqeval: error: ") and message in lines[0]
    assert str(files[clean] if clean in ("missing", "dir", "notes.txt") else files[degraded]) in lines[0]


def _json(files, models, clean, degraded, *extra):
    p = run("score", files[clean], files[degraded], "--model", "vggish", "--json", *extra, models=models)
    return p, (json.loads(p.stdout) if p.stdout.strip() else None)


def test_all_zero_degraded_gives_reasons(files, use_models):
    p, out = _json(files, use_models, "clean.wav", "zeros.wav")
    assert p.returncode == 3
    m = out["metrics"]
    assert m["pesq_wb"]["value"] is None and "all zero" in m["pesq_wb"]["reason"]
    assert m["vggish"]["value"] is not None  # embeddings of silence are still defined


def test_all_zero_clean(files, use_models):
    p, out = _json(files, use_models, "zeros.wav", "clean.wav")
    assert p.returncode == 3
    assert "no utterances" in out["metrics"]["pesq_wb"]["reason"]
    assert "all zero" in out["metrics"]["stoi"]["reason"]


def test_half_second_clip(files, use_models):
    p, out = _json(files, use_models, "half_second.wav", "half_second.wav")
    assert p.returncode == 3
    m = out["metrics"]
    assert m["vggish"]["value"] is None and "at least 0.975 s" in m["vggish"]["reason"]
    assert m["pesq_wb"]["value"] == pytest.approx(4.64, abs=0.1)  # identical signals: PESQ's ceiling


def test_mismatched_lengths_are_reported(files, use_models):
    p, out = _json(files, use_models, "clean.wav", "shorter.wav")
    assert p.returncode == 0
    assert any("lengths differ" in n and "trimmed to 2.500 s" in n for n in out["notes"])
    p = run("score", files["clean.wav"], files["shorter.wav"], "--length", "error", models=use_models)
    assert p.returncode == 2 and "lengths differ" in p.stderr


def test_44k_stereo_against_16k_mono(files, use_models):
    p, out = _json(files, use_models, "stereo", "mono16")
    assert p.returncode == 0, p.stderr
    notes = " ".join(out["notes"])
    assert "resampled from 16000 Hz to the clean rate 44100 Hz" in notes and "2 channels mixed to mono" in notes
    assert out["metrics"]["vggish"]["value"] > 0.9  # same music, resampled


def test_missing_model_named_explicitly(files, tmp_path):
    p = run("score", files["clean.wav"], files["noisy.wav"], "--model", "vggish", models=tmp_path, cwd=tmp_path)
    assert p.returncode in (0, 2)
    if p.returncode == 2:  # no model in the checkout either
        assert "is not installed" in p.stderr and "pqeval export vggish" in p.stderr


def test_bad_options(files, use_models):
    p = run("score", files["clean.wav"], files["noisy.wav"], "--model", "nope", models=use_models)
    assert p.returncode == 2 and "unknown model" in p.stderr
    p = run("score", files["clean.wav"], files["noisy.wav"], "--metrics", "vggish,pesq_xx", models=use_models)
    assert p.returncode == 2 and "unknown metric" in p.stderr
    p = run("score", files["clean.wav"], models=use_models)
    assert p.returncode == 2 and "Missing argument" in p.stderr


def test_help_has_examples():
    p = run("score", "--help")
    assert p.returncode == 0 and "pqeval score clean.wav degraded.wav" in p.stdout and "--hop" in p.stdout


def test_models_lists_provenance(use_models):
    p = run("models", "--json", models=use_models)
    assert p.returncode == 0
    rows = {r["key"]: r for r in json.loads(p.stdout)["models"]}
    v = rows["vggish"]
    assert v["weights"] == "seeded:0" and v["perceptual"] is False and v["verify"]["cosine_min"] >= 0.99999
    p = run("models", models=use_models)
    assert "seeded" in p.stdout and "not a perceptual measurement" in p.stdout


def test_degrade_command(files, tmp_path):
    out = tmp_path / "out dir ü"
    p = run("degrade", files["clean.wav"], files["missing"], "--out", out, "--kind", "noise,bitdepth", "--level", "high", "--json")
    assert p.returncode == 3 and "no such file" in p.stderr
    written = json.loads(p.stdout)["written"]
    assert sorted(os.path.basename(w) for w in written) == ["clean__bitdepth_high.wav", "clean__noise_high.wav"]
    info = sf.info(written[0])
    assert info.subtype == "FLOAT" and info.frames == 3 * 16000
    p = run("degrade", files["clean.wav"], "--out", out, "--kind", "nope")
    assert p.returncode == 2 and "pqeval: error:" in p.stderr
