"""The bad-input table (docs/bad-input.md), row by row, through the CLI and the API.

Each case builds its input, runs ``pqeval score`` (in-process, typer's CliRunner: exit code,
one-line message on stderr, no traceback) and the same through ``load_audio`` + ``Scorer`` where
it applies.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from helpers import cli, read
from pqeval.audio import load_audio
from pqeval.errors import AudioError
from pqeval.scoring import ScoreOptions, Scorer

METRICS = "vggish,pesq_wb,stoi,estoi"


@pytest.fixture(scope="module")
def speech():
    x, sr = read("speech_libri_198_f.wav")
    return x[: 3 * sr], sr


def _write(path, x, sr, subtype="FLOAT"):
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def _score(a, b, models, *extra):
    """``pqeval score a b --json`` with the models ``use_models`` set up (``models`` says so)."""
    assert models is not None
    r = cli("score", a, b, "--metrics", METRICS, "--json", *extra)
    out = json.loads(r.stdout) if r.exit_code in (0, 3) else None
    return r, out


def _api(a, b):
    return Scorer(ScoreOptions(metrics=tuple(METRICS.split(",")))).score(load_audio(a), load_audio(b))


def test_truncated_wav(tmp_path, speech, use_models):
    good = _write(tmp_path / "good.wav", *speech, subtype="PCM_16")
    data = good.read_bytes()
    bad = tmp_path / "truncated.wav"
    bad.write_bytes(data[: len(data) // 2])
    p, _ = _score(good, bad, use_models)
    assert p.exit_code == 2 and "truncated WAV file" in p.stderr and str(bad) in p.stderr
    with pytest.raises(AudioError, match="truncated"):
        load_audio(bad)


@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_corrupt_flac(tmp_path, speech, use_models, damage):
    good = _write(tmp_path / "good.flac", *speech, subtype="PCM_16")
    data = bytearray(good.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2 : len(data) // 2 + 400] = bytes(400)
    bad = tmp_path / f"{damage}.flac"
    bad.write_bytes(bytes(data))
    p, _ = _score(good, bad, use_models)
    assert p.exit_code == 2 and "not a readable audio file" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    with pytest.raises(AudioError):
        load_audio(bad)


def test_inf_samples(tmp_path, speech, use_models):
    x = speech[0].copy()
    x[500] = np.inf
    bad = _write(tmp_path / "inf.wav", x, speech[1])
    p, _ = _score(_write(tmp_path / "c.wav", *speech), bad, use_models)
    assert p.exit_code == 2 and "non-finite" in p.stderr and "0.031 s" in p.stderr


def test_clipped_full_scale(tmp_path, speech, use_models):
    x, sr = speech
    clipped = np.clip(x * 8, -1, 1)
    p, out = _score(
        _write(tmp_path / "c.wav", x, sr), _write(tmp_path / "clipped.wav", clipped, sr, "PCM_16"), use_models
    )
    assert p.exit_code == 0
    m = out["metrics"]
    assert 1 <= m["pesq_wb"]["value"] < 4 and 0 < m["stoi"]["value"] < 1 and m["vggish"]["value"] < 1


@pytest.mark.parametrize("seconds, nan, ok", [(0.2, {"pesq_wb", "vggish"}, set()), (0.9, {"vggish"}, {"pesq_wb"})])
def test_short_clips(tmp_path, speech, use_models, seconds, nan, ok):
    x, sr = speech
    n = int(seconds * sr)
    c = _write(tmp_path / "c.wav", x[sr : sr + n], sr)
    d = _write(tmp_path / "d.wav", x[sr : sr + n] + 0.01 * np.random.default_rng(0).standard_normal(n), sr)
    p, out = _score(c, d, use_models)
    assert p.exit_code == 3
    for m in nan:
        assert out["metrics"][m]["value"] is None and out["metrics"][m]["reason"]
    for m in ok:
        assert out["metrics"][m]["value"] is not None
    r = _api(c, d)
    assert set(r.failed) >= nan


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 48000, 96000])
def test_sample_rates(tmp_path, speech, use_models, sr):
    from pqeval.resample import resample

    x = resample(speech[0], speech[1], sr)
    noisy = x + 0.02 * np.random.default_rng(1).standard_normal(len(x))
    p, out = _score(_write(tmp_path / "c.wav", x, sr), _write(tmp_path / "d.wav", noisy, sr), use_models)
    assert p.exit_code == 0, p.stderr
    assert out["sample_rate"] == sr and all(v["value"] is not None for v in out["metrics"].values())
    if sr == 8000:  # PESQ-WB upsamples 8 kHz to 16 kHz
        assert out["metrics"]["pesq_wb"]["rate"] == 16000


def test_six_channels(tmp_path, speech, use_models):
    x, sr = speech
    multi = np.stack([x * g for g in (1, 0.5, 0.25, 0.1, 0.8, 0.3)], axis=1)
    p, out = _score(_write(tmp_path / "c.wav", x, sr), _write(tmp_path / "six.wav", multi, sr), use_models)
    assert p.exit_code == 0
    assert any("6 channels mixed to mono" in n for n in out["notes"])
    assert load_audio(tmp_path / "six.wav").channels == 6


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_integer_and_float_formats(tmp_path, speech, use_models, subtype):
    x, sr = speech
    path = _write(tmp_path / f"{subtype}.wav", x, sr, subtype)
    a = load_audio(path)
    tol = {"PCM_U8": 1 / 64, "PCM_16": 1 / 16384}.get(subtype, 1e-6)
    assert np.abs(a.samples - x).max() <= tol
    p, out = _score(_write(tmp_path / "ref.wav", x, sr), path, use_models)
    assert p.exit_code == 0 and out["metrics"]["stoi"]["value"] > 0.9


def test_path_with_spaces_and_non_ascii(tmp_path, speech, use_models):
    d = tmp_path / "dir with spaces ÿ 音"
    d.mkdir()
    c = _write(d / "clean ü.wav", *speech)
    p, out = _score(c, c, use_models)
    assert p.exit_code == 0 and out["clean"] == str(c)


def test_unwritable_output(tmp_path, speech, use_models):
    _write(tmp_path / "c.wav", *speech)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("clean,degraded\nc.wav,c.wav\n")
    # (CI runs as root, for whom permission bits do not block writes: a file standing where the
    # output directory should be does.)
    blocker = tmp_path / "file"
    blocker.write_text("")
    p = cli("batch", pairs, "--out", blocker / "res.csv", "--metrics", "stoi")
    assert p.exit_code == 2 and "cannot write here" in p.stderr and len(p.stderr.strip().splitlines()) == 1
