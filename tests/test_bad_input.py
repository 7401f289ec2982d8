"""The bad-input table (docs/bad-input.md), row by row, through the CLI and the API.

Each case builds its input, runs ``pqeval score`` (in-process, typer's CliRunner: exit code,
one-line message on stderr, no traceback) and the same through ``load_audio`` + ``Scorer`` where
it applies.
"""

import json
import os

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


# --- levels the scores do not show: over full scale, channels that cancel (Audio.notes) ----------


def _all_readers(path):
    from pqeval.audio import from_array, open_audio

    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return [load_audio(path), open_audio(path), from_array(x, sr, str(path))]


def test_far_over_full_scale_is_noted(tmp_path, speech):
    x, sr = speech
    loud = _write(tmp_path / "loud.wav", x * (40 / np.abs(x).max()), sr)
    for a in _all_readers(loud):
        assert "peak 40.0 is over full scale (1.0); scores are computed as given" in a.notes, a.notes
    for a in _all_readers(_write(tmp_path / "fine.wav", x, sr)):
        assert a.notes == ()


def test_phase_inverted_stereo_is_noted(tmp_path, speech):
    x, sr = speech
    inverted = _write(tmp_path / "inverted.wav", np.stack([x, -x], axis=1), sr)
    for a in _all_readers(inverted):
        assert a.notes == ("channels cancel when mixed to mono (phase-inverted?)",)
    for a in _all_readers(_write(tmp_path / "wide.wav", np.stack([x, 0.3 * x[::-1]], axis=1), sr)):
        assert a.notes == ()


def test_input_notes_reach_the_score_notes(tmp_path, speech, use_models):
    """Through the CLI: over-full-scale and cancelling channels are in the pair's notes (stderr, JSON)."""
    x, sr = speech
    loud = _write(tmp_path / "loud.wav", x * (40 / np.abs(x).max()), sr)
    inverted = _write(tmp_path / "inverted.wav", np.stack([x, -x], axis=1), sr)
    r = cli("score", loud, inverted, "--metrics", "stoi,pesq_wb", "--json")
    notes = json.loads(r.stdout)["notes"]
    assert any(n == f"{loud}: peak 40.0 is over full scale (1.0); scores are computed as given" for n in notes)
    assert any(n == f"{inverted}: channels cancel when mixed to mono (phase-inverted?)" for n in notes)
    assert "phase-inverted?" in cli("score", loud, inverted, "--metrics", "stoi").stderr


# --- item 11: small CLI and input things ---------------------------------------------------------


def _one_line(r, code=2):
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == code and len(lines) == 1, (r.exit_code, r.stderr)
    return lines[0]


def test_click_usage_errors_are_one_line(tmp_path, speech, monkeypatch):
    """An unreadable file (as root: os.access says so), an unknown option, a missing argument: one
    line ``pqeval: error: ...``, exit 2, not click's boxed usage block."""
    c = _write(tmp_path / "c.wav", *speech)
    locked = _write(tmp_path / "locked.wav", *speech)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: str(p) != str(locked) and real_access(p, mode, **kw))
    line = _one_line(cli("score", c, locked))
    assert line.startswith("pqeval: error: Invalid value for 'degraded'") and "is not readable" in line
    line = _one_line(cli("score", c, "-x.wav"))
    assert line.startswith("pqeval: error: No such option: -x") and "after '--'" in line
    assert _one_line(cli("score", c)).startswith("pqeval: error: Missing argument 'degraded'")


def test_unreadable_file_in_a_real_process(tmp_path, speech):
    """chmod 000 in a real process; as root, without the capabilities that bypass permissions."""
    import shutil
    import subprocess
    import sys

    from helpers import ENV_PATH

    c = _write(tmp_path / "c.wav", *speech)
    locked = _write(tmp_path / "locked.wav", *speech)
    locked.chmod(0)
    cmd = [sys.executable, "-m", "pqeval", "score", str(c), str(locked), "--metrics", "stoi"]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions cannot be made to apply")
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    env = {**os.environ, "PYTHONPATH": ENV_PATH}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if "setpriv" in cmd[0] and "setpriv:" in p.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {p.stderr.strip()}")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert lines[0].startswith("pqeval: error: ") and "is not readable" in lines[0] and str(locked) in lines[0]


def test_control_characters_in_names_are_escaped(tmp_path, speech):
    c = _write(tmp_path / "c.wav", *speech)
    weird = tmp_path / "new\nline\x1b[31m.wav"
    line = _one_line(cli("score", c, weird))
    assert line == f"pqeval: error: {tmp_path}/new\\nline\\x1b[31m.wav: no such file"
    weird.write_text("not audio")
    assert "new\\nline\\x1b[31m.wav: not a readable audio file" in _one_line(cli("score", c, weird))


def test_double_dash_ends_options(tmp_path, speech, monkeypatch):
    _write(tmp_path / "-weird.wav", *speech)
    _write(tmp_path / "c.wav", *speech)
    monkeypatch.chdir(tmp_path)
    r = cli("score", "--metrics", "stoi", "--json", "--", "-weird.wav", "c.wav")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["clean"] == "-weird.wav"
    assert "pqeval score -- -weird.wav clean.wav" in cli("--help").stdout


def test_symlink_loop(tmp_path, speech):
    c = _write(tmp_path / "c.wav", *speech)
    (tmp_path / "a.wav").symlink_to(tmp_path / "b.wav")
    (tmp_path / "b.wav").symlink_to(tmp_path / "a.wav")
    assert _one_line(cli("score", c, tmp_path / "a.wav")).endswith(
        "a.wav: symlink loop (too many levels of symbolic links)"
    )
    with pytest.raises(AudioError, match="symlink loop"):
        load_audio(tmp_path / "a.wav")


def test_ctrl_c_is_one_line_130(tmp_path, speech, monkeypatch):
    """Ctrl-C inside a command and while the arguments are parsed: ``pqeval: interrupted``, 130
    (typer turned the second into a silent 130). A real SIGINT: test_streams."""
    from typer.core import TyperGroup

    import pqeval.audio

    c = _write(tmp_path / "c.wav", *speech)

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pqeval.audio, "open_audio", interrupt)
    assert _one_line(cli("score", c, c), 130) == "pqeval: interrupted"
    monkeypatch.undo()
    monkeypatch.setattr(TyperGroup, "make_context", interrupt)
    assert _one_line(cli("score", c, c), 130) == "pqeval: interrupted"


def test_wav_without_data_size_reads_what_is_present(tmp_path, speech, use_models):
    """A crashed (or streaming) recorder leaves the data-chunk size 0: read the samples present."""
    import struct

    from pqeval.audio import open_audio

    x, sr = speech
    good = _write(tmp_path / "good.wav", x, sr, "PCM_16")
    data = bytearray(good.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = struct.pack("<I", 0)
    data[4:8] = struct.pack("<I", 0)
    crashed = tmp_path / "crashed.wav"
    crashed.write_bytes(bytes(data))
    note = f"WAV header declares no data size; read {len(x)} samples present"
    want = load_audio(good)
    for a in (load_audio(crashed), open_audio(crashed)):
        assert note in a.notes and (a.sr, a.channels) == (sr, 1)
        np.testing.assert_array_equal(np.asarray(a.samples), want.samples)
    p, out = _score(good, crashed, use_models)
    assert p.exit_code == 0, p.stderr
    assert out["metrics"]["stoi"]["value"] == pytest.approx(1.0)


def test_control_characters_in_names_are_escaped_in_the_table_and_notes(tmp_path, speech, use_models):
    x, sr = speech
    odd = _write(tmp_path / "two\nlines.wav", np.stack([x, -x], axis=1), sr)  # its note names the file
    r = cli("score", odd, odd, "--metrics", "stoi")
    assert "two\\nlines.wav" in r.stdout and "two\nlines" not in r.stdout
    assert "two\\nlines.wav: channels cancel" in r.stderr and "two\nlines" not in r.stderr
