"""Inputs that are not regular files: named pipes, ``<(...)`` pipes, ``-`` (stdin), devices, sockets.

A stream is read once, whole, into memory (at most ``pqeval.audio.STREAM_LIMIT`` bytes) and then
decoded exactly as a file with the same bytes; nothing may make pqeval wait forever. Every test
that waits on a pipe or a process does it with a timeout (a thread joined with a timeout, or a
subprocess with ``timeout=``), so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf

from helpers import ENV_PATH, cli, read, shared
from pqeval import audio as A
from pqeval.audio import file_identity, load_audio, open_audio
from pqeval.errors import AudioError

WAIT = 120  # seconds before a test gives up on a blocked read (never reached when things work)
METRICS = ("--metrics", "stoi,estoi", "--json")


@pytest.fixture(scope="module")
def speech():
    x, sr = read("speech_libri_198_f.wav")
    return x[: 2 * sr], sr


def _wav_bytes(x, sr, fmt="WAV", subtype=None) -> bytes:
    b = io.BytesIO()
    sf.write(b, x, sr, format=fmt, subtype=subtype)
    return b.getvalue()


def _release(fifo, side) -> None:
    """Release an open() blocked on ``fifo`` (by opening its other ``side`` and closing it) after
    putting an empty regular file at its path, so that a reopen cannot block again (libsndfile
    holds a lock while it opens: one stuck open would stall every later test)."""
    with contextlib.suppress(OSError):
        os.link(fifo, f"{fifo}.released")
        with open(f"{fifo}.empty", "wb"):
            pass
        os.replace(f"{fifo}.empty", fifo)
        os.close(os.open(f"{fifo}.released", side | os.O_NONBLOCK))


def _in_thread(fn, *args, unblock=None, side=os.O_WRONLY):
    """``fn(*args)`` in a thread joined with a timeout; an open or read of the FIFO ``unblock`` still
    blocked then is released (:func:`_release`) and the test fails."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # handed to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(WAIT)
    if t.is_alive():
        if unblock is not None:
            _release(unblock, side)
        t.join(WAIT)
        pytest.fail(f"{fn.__name__}{args} was still blocked after {WAIT} s")
    if "error" in out:
        raise out["error"]
    return out["value"]


def _one_line_error(r, text):
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pqeval: error: ") and text in lines[0], r.stderr


class _Pipe:
    """An anonymous pipe (what bash's ``<(cat x.wav)`` hands over as /dev/fd/N) fed by a thread."""

    def __init__(self, data: bytes) -> None:
        self.r, w = os.pipe()
        self.path = f"/dev/fd/{self.r}"

        def feed():
            try:
                with os.fdopen(w, "wb") as f:
                    f.write(data)
            except BrokenPipeError:
                pass

        self.writer = threading.Thread(target=feed, daemon=True)
        self.writer.start()

    def close(self) -> None:
        os.close(self.r)
        self.writer.join(WAIT)


class _Fifo:
    """A named pipe with a writer already attached (so no read races the writer's open()),
    written from a thread; ``pin`` is a reader that never reads, closed at the end."""

    def __init__(self, path, data: bytes) -> None:
        os.mkfifo(path)
        self.path = str(path)
        self.pin = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(path, os.O_WRONLY)  # does not block: `pin` is a reader

        def feed():
            try:
                with os.fdopen(w, "wb") as f:
                    f.write(data)
            except BrokenPipeError:
                pass

        self.writer = threading.Thread(target=feed, daemon=True)
        self.writer.start()

    def close(self) -> None:
        os.close(self.pin)  # a writer still blocked gets EPIPE
        self.writer.join(WAIT)


def test_fifo_without_writer_fails_at_once(tmp_path, speech, use_models):
    clean = tmp_path / "c.wav"
    sf.write(clean, *speech)
    fifo = tmp_path / "p.wav"
    os.mkfifo(fifo)
    r = _in_thread(cli, "score", clean, fifo, *METRICS, unblock=fifo)
    _one_line_error(r, f"{fifo}: a named pipe with no writer (nothing to read)")
    with pytest.raises(AudioError, match="no writer"):
        _in_thread(load_audio, fifo, unblock=fifo)


def test_fifo_with_writer_scores_as_the_file(tmp_path, speech, use_models):
    clean = tmp_path / "c.wav"
    sf.write(clean, *speech, subtype="PCM_16")
    want = cli("score", clean, clean, *METRICS)
    fifo = _Fifo(tmp_path / "p.wav", clean.read_bytes())
    try:
        r = _in_thread(cli, "score", clean, fifo.path, *METRICS, unblock=fifo.path)
    finally:
        fifo.close()
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["metrics"] == json.loads(want.stdout)["metrics"]


def test_process_substitution_pipe_scores_as_the_file(tmp_path, speech, use_models):
    """``pqeval score c.wav <(cat d.wav)``: /dev/fd/N, a pipe; it used to be 'not a readable audio file'."""
    clean, degraded = tmp_path / "c.wav", tmp_path / "d.wav"
    sf.write(clean, *speech)
    sf.write(degraded, speech[0] + 0.05 * np.random.default_rng(0).standard_normal(len(speech[0])), speech[1])
    want = cli("score", clean, degraded, *METRICS)
    pipe = _Pipe(degraded.read_bytes())
    try:
        r = _in_thread(cli, "score", clean, pipe.path, *METRICS)
    finally:
        pipe.close()
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["metrics"] == json.loads(want.stdout)["metrics"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for <(...)")
def test_bash_process_substitution(tmp_path, speech, use_models):
    """The real thing in a real shell (a subprocess with a timeout)."""
    clean = tmp_path / "c.wav"
    sf.write(clean, *speech)
    cmd = f'"{sys.executable}" -m pqeval score "{clean}" <(cat "{clean}") --metrics stoi --json'
    env = {**os.environ, "PYTHONPATH": ENV_PATH, "PQEVAL_MODELS": str(use_models)}
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=WAIT)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["metrics"]["stoi"]["value"] == pytest.approx(1.0)


def test_dash_is_stdin(tmp_path, speech, use_models):
    from typer.testing import CliRunner

    from pqeval.cli import app

    clean = tmp_path / "c.wav"
    sf.write(clean, *speech)
    want = cli("score", clean, clean, *METRICS)
    r = CliRunner().invoke(app, ["score", str(clean), "-", *METRICS], input=clean.read_bytes())
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["degraded"] == "<stdin>" and out["metrics"] == json.loads(want.stdout)["metrics"]
    r = CliRunner().invoke(app, ["score", str(clean), "-", *METRICS], input=b"")
    _one_line_error(r, "<stdin>: the stream is empty (nothing to read)")


def test_each_command_reads_stdin_afresh(tmp_path, speech, use_models, monkeypatch):
    """Two commands in one process (CliRunner): the second must not reuse the first one's stdin."""
    from typer.testing import CliRunner

    from pqeval.cli import app

    x, sr = speech
    clean = tmp_path / "c.wav"
    sf.write(clean, x, sr)
    seconds = []
    for n in (sr, 2 * sr):
        r = CliRunner().invoke(app, ["score", str(clean), "-", *METRICS], input=_wav_bytes(x[:n], sr))
        assert r.exit_code == 0, r.stderr
        seconds.append(json.loads(r.stdout)["seconds"])
    assert seconds == [1.0, 2.0]
    monkeypatch.setattr(sys, "stdin", type("Tty", (), {"buffer": io.BytesIO(), "isatty": lambda self: True})())
    A.forget_streams()
    with pytest.raises(AudioError, match="standard input is a terminal"):
        load_audio("-")
    A.forget_streams()


def test_endless_device_is_capped(tmp_path, speech, use_models, monkeypatch):
    monkeypatch.setattr(A, "STREAM_LIMIT", 1 << 20)
    clean = tmp_path / "c.wav"
    sf.write(clean, *speech)
    r = _in_thread(cli, "score", clean, "/dev/zero", *METRICS)
    _one_line_error(r, "/dev/zero: a stream of more than 1048576 bytes (pqeval.audio.STREAM_LIMIT)")
    monkeypatch.undo()
    assert A.STREAM_LIMIT == 4 << 30


def test_empty_device_and_socket_are_refused(tmp_path, speech, use_models, monkeypatch):
    clean = tmp_path / "c.wav"
    sf.write(clean, *speech)
    _one_line_error(_in_thread(cli, "score", clean, "/dev/null", *METRICS), "/dev/null: the stream is empty")
    monkeypatch.chdir(tmp_path)  # a short relative name: AF_UNIX paths are limited to ~107 bytes
    with socket.socket(socket.AF_UNIX) as s:
        s.bind("s.sock")
        r = _in_thread(cli, "score", clean, "s.sock", *METRICS)
    _one_line_error(r, "s.sock: a socket, not an audio file")


@pytest.mark.parametrize(
    "fmt, subtype, channels",
    [("WAV", "PCM_16", 2), ("WAV", "FLOAT", 1), ("FLAC", "PCM_24", 2), ("OGG", "VORBIS", 1)],
)
def test_stream_gives_the_same_audio_as_the_file(tmp_path, speech, fmt, subtype, channels):
    x, sr = speech
    x = np.stack([x, 0.5 * x], axis=1) if channels == 2 else x
    data = _wav_bytes(x, sr, fmt, subtype)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    for opener in (open_audio, load_audio):
        want = opener(path)
        pipe = _Pipe(data)
        try:
            got = _in_thread(opener, pipe.path)
        finally:
            pipe.close()
        assert (got.sr, got.channels, got.notes, got.path) == (want.sr, want.channels, want.notes, pipe.path)
        np.testing.assert_array_equal(np.asarray(got.samples), np.asarray(want.samples))
        assert type(got.samples) is type(want.samples)


def test_file_identity_reads_a_stream_once(tmp_path, speech):
    data = _wav_bytes(*speech)
    path = tmp_path / "x.wav"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    assert file_identity(path) == digest
    pipe = _Pipe(data)
    try:
        assert _in_thread(file_identity, pipe.path) == digest
        a = _in_thread(open_audio, pipe.path)  # the pipe is drained: the bytes come from the first read
        assert _in_thread(file_identity, pipe.path) == digest
    finally:
        pipe.close()
    np.testing.assert_array_equal(np.asarray(a.samples), load_audio(path).samples)
    A.forget_streams()


def test_failed_stream_is_not_read_again(tmp_path):
    fifo = tmp_path / "p.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match="no writer"):
        _in_thread(file_identity, fifo, unblock=fifo)
    with pytest.raises(AudioError, match="no writer"):  # the same answer, from the first read
        _in_thread(open_audio, fifo, unblock=fifo)
    A.forget_streams()


def test_ctrl_c_while_waiting_on_a_pipe(tmp_path, speech, use_models):
    """SIGINT to a real process blocked on a FIFO whose writer is silent: one line, exit 130."""
    clean = tmp_path / "c.wav"
    sf.write(clean, *speech)
    fifo = tmp_path / "p.wav"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": ENV_PATH, "PQEVAL_MODELS": str(use_models)}
    p = subprocess.Popen(
        [sys.executable, "-m", "pqeval", "score", str(clean), str(fifo), "--metrics", "stoi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # open() for writing returns once pqeval has the pipe open for reading: it is past start-up
        w = _in_thread(os.open, str(fifo), os.O_WRONLY, unblock=fifo, side=os.O_RDONLY)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=WAIT)
        os.close(w)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(WAIT)
    assert p.returncode == 130, err
    assert err.strip() == "pqeval: interrupted" and "Traceback" not in err


def test_batch_scores_a_fifo_and_reports_one_without_writer(use_models, tmp_path):
    """A pairs file naming a FIFO fed by a writer scores it like the file; a FIFO with no writer
    gets a row with the reason and the batch goes on (exit 3), without hanging."""
    import csv as _csv
    import os
    import threading

    src = shared("speech_cmu_goforward.wav")
    fed, empty = tmp_path / "fed.wav", tmp_path / "empty.wav"
    os.mkfifo(fed)
    os.mkfifo(empty)
    data = src.read_bytes()

    def feed():
        with open(fed, "wb") as f:  # blocks until pqeval opens the FIFO for reading
            f.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"clean,degraded\n{src},{fed}\n{src},{empty}\n{src},{src}\n")
    r = cli("batch", pairs, "--out", tmp_path / "r.csv", "--metrics", "stoi")
    writer.join(timeout=60)
    assert not writer.is_alive()
    assert r.exit_code == 3, r.stderr
    with open(tmp_path / "r.csv") as f:
        rows = {row["degraded"].rsplit("/", 1)[1]: row for row in _csv.DictReader(f)}
    assert float(rows["fed.wav"]["stoi"]) == float(rows["speech_cmu_goforward.wav"]["stoi"]) == 1.0
    assert "a named pipe with no writer" in rows["empty.wav"]["error"]
