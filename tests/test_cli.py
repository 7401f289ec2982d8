"""The pqeval CLI on real recordings and on bad input: clear messages, exit codes, no tracebacks.

Most tests run the command in-process (typer's CliRunner: data on stdout, notes, warnings and
errors on stderr); the smoke tests at the end start real processes (``python -m pqeval`` and the
``pqeval`` entry point) for --help, --version, one score and one bad input.
"""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from helpers import cli, read, run, shared


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
    r = cli("score", shared("pesq_speech.wav"), shared("pesq_speech_bab_0dB.wav"))
    assert r.exit_code == 0, r.stderr
    for name in ("vggish", "openl3", "pesq_wb", "stoi", "estoi"):
        assert name in r.stdout
    # the seeded-weights warnings are notes, on stderr
    assert "warning: openl3: weights: seeded — not a perceptual measurement" in r.stderr
    assert "warning: vggish: weights: seeded — not a perceptual measurement" in r.stderr
    assert "warning:" not in r.stdout
    # PESQ-WB, STOI, ESTOI of this pair (model-independent)
    assert "1.0832" in r.stdout and "0.6739" in r.stdout and "0.3904" in r.stdout


def test_score_json_parses(use_models):
    r = cli(
        "score",
        shared("pesq_speech.wav"),
        shared("pesq_speech_bab_0dB.wav"),
        "--model",
        "vggish,openl3",
        "--metrics",
        "pesq_wb,pesq_nb,stoi,estoi",
        "--json",
        "--hop",
        "0.25",
    )
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)  # stdout is the JSON and nothing else
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
    r = cli("score", files[clean], files[degraded], "--model", "vggish")
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pqeval: error: ") and message in lines[0]
    assert str(files[clean] if clean in ("missing", "dir", "notes.txt") else files[degraded]) in lines[0]


def _json(files, clean, degraded, *extra):
    r = cli("score", files[clean], files[degraded], "--model", "vggish", "--json", *extra)
    return r, (json.loads(r.stdout) if r.stdout.strip() else None)


def test_all_zero_degraded_gives_reasons(files, use_models):
    r, out = _json(files, "clean.wav", "zeros.wav")
    assert r.exit_code == 3
    m = out["metrics"]
    assert m["pesq_wb"]["value"] is None and "all zero" in m["pesq_wb"]["reason"]
    assert m["vggish"]["value"] is not None  # embeddings of silence are still defined


def test_all_zero_clean(files, use_models):
    r, out = _json(files, "zeros.wav", "clean.wav")
    assert r.exit_code == 3
    assert "no utterances" in out["metrics"]["pesq_wb"]["reason"]
    assert "all zero" in out["metrics"]["stoi"]["reason"]


def test_half_second_clip(files, use_models):
    r, out = _json(files, "half_second.wav", "half_second.wav")
    assert r.exit_code == 3
    m = out["metrics"]
    assert m["vggish"]["value"] is None and "at least 0.975 s" in m["vggish"]["reason"]
    assert m["pesq_wb"]["value"] == pytest.approx(4.64, abs=0.1)  # identical signals: PESQ's ceiling


def test_mismatched_lengths_are_reported(files, use_models):
    r, out = _json(files, "clean.wav", "shorter.wav")
    assert r.exit_code == 0
    assert any("lengths differ" in n and "trimmed to 2.500 s" in n for n in out["notes"])
    r = cli("score", files["clean.wav"], files["shorter.wav"], "--length", "error")
    assert r.exit_code == 2 and "lengths differ" in r.stderr


def test_44k_stereo_against_16k_mono(files, use_models):
    r, out = _json(files, "stereo", "mono16")
    assert r.exit_code == 0, r.stderr
    notes = " ".join(out["notes"])
    assert "resampled from 16000 Hz to the clean rate 44100 Hz" in notes and "2 channels mixed to mono" in notes
    assert out["metrics"]["vggish"]["value"] > 0.9  # same music, resampled


def test_missing_model_named_explicitly(files, tmp_path, monkeypatch):
    """No vggish.onnx anywhere pqeval looks: exit 2 and the command that makes one."""
    import pqeval.session as session

    monkeypatch.setenv("PQEVAL_MODELS", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(session, "CHECKOUT_MODELS", tmp_path / "checkout-models")
    session._OPEN.clear()
    r = cli("score", files["clean.wav"], files["noisy.wav"], "--model", "vggish")
    session._OPEN.clear()
    assert r.exit_code == 2
    assert "is not installed" in r.stderr and "pqeval export vggish" in r.stderr


def test_bad_options(files, use_models):
    r = cli("score", files["clean.wav"], files["noisy.wav"], "--model", "nope")
    assert r.exit_code == 2 and "unknown model" in r.stderr
    r = cli("score", files["clean.wav"], files["noisy.wav"], "--metrics", "vggish,pesq_xx")
    assert r.exit_code == 2 and "unknown metric" in r.stderr
    r = cli("score", files["clean.wav"])
    assert r.exit_code == 2 and "Missing argument" in r.stderr


def test_help_has_examples():
    r = cli("score", "--help")
    assert r.exit_code == 0 and "pqeval score clean.wav degraded.wav" in r.stdout and "--hop" in r.stdout


def test_models_lists_provenance(use_models):
    r = cli("models", "--json")
    assert r.exit_code == 0, r.stderr
    rows = {row["key"]: row for row in json.loads(r.stdout)["models"]}
    v = rows["vggish"]
    assert v["weights"] == "seeded:0" and v["perceptual"] is False and v["verify"]["cosine_min"] >= 0.99999
    assert rows["openl3-mel256-music-512"]["weights"] == "seeded:0"
    r = cli("models")
    assert r.exit_code == 0
    both = r.stdout + r.stderr
    assert "seeded" in both and "not a perceptual measurement" in both


def test_degrade_command(files, tmp_path):
    out = tmp_path / "out dir ü"
    r = cli(
        "degrade",
        files["clean.wav"],
        files["missing"],
        "--out",
        out,
        "--kind",
        "noise,bitdepth",
        "--level",
        "high",
        "--json",
    )
    assert r.exit_code == 3 and "no such file" in r.stderr
    written = json.loads(r.stdout)["written"]
    assert sorted(os.path.basename(w) for w in written) == ["clean__bitdepth_high.wav", "clean__noise_high.wav"]
    info = sf.info(written[0])
    assert info.subtype == "FLOAT" and info.frames == 3 * 16000
    r = cli("degrade", files["clean.wav"], "--out", out, "--kind", "nope")
    assert r.exit_code == 2 and "pqeval: error:" in r.stderr


# --- real processes: the module, the entry point ----------------------------------------------


def test_smoke_help_in_a_process():
    p = run("score", "--help")
    assert p.returncode == 0 and "pqeval score clean.wav degraded.wav" in p.stdout and "--hop" in p.stdout
    p = run("--help", entry_point=True)
    assert p.returncode == 0 and "score" in p.stdout and "batch" in p.stdout


def test_smoke_version():
    import pqeval

    for entry_point in (False, True):
        p = run("--version", entry_point=entry_point)
        assert p.returncode == 0, p.stderr
        assert pqeval.__version__ in p.stdout


def test_smoke_score_in_a_process(models_dir):
    p = run(
        "score",
        shared("pesq_speech.wav"),
        shared("pesq_speech_bab_0dB.wav"),
        "--model",
        "vggish",
        "--json",
        models=models_dir,
        entry_point=True,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["metrics"]["vggish"]["weights"] == "seeded:0" and out["metrics"]["pesq_wb"]["value"] == pytest.approx(
        1.0832, abs=1e-4
    )
    assert "warning: vggish: weights: seeded" in p.stderr


def test_smoke_bad_input_in_a_process(files, models_dir):
    p = run("score", files["missing"], files["clean.wav"], "--model", "vggish", models=models_dir)
    assert p.returncode == 2  # run() also checks that no traceback reached stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pqeval: error: ") and "no such file" in lines[0]
