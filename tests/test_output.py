"""The results file of a batch (issue 13, items 4 and 5): rows appended as they come and compacted
at the end, a torn last line dropped, one writer per file, no file that is not a results table
overwritten, a write error that keeps every earlier row, and rows that say which pqeval, which
models (sha256) and which options made them."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from helpers import ENV_PATH, cli, read
from pqeval.batch import pairs_from_dirs, run_batch
from pqeval.errors import UsageError
from pqeval.output import ResultsFile
from pqeval.results import columns
from pqeval.scoring import ScoreOptions

STOI = ScoreOptions(metrics=("stoi",))
COLS = columns(("stoi",))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """clean/a.wav and three noisy copies in deg/ (STOI only: no model needed, fast)."""
    d = tmp_path_factory.mktemp("output")
    x, sr = read("speech_cmu_goforward.wav")
    (d / "clean").mkdir()
    (d / "deg").mkdir()
    sf.write(str(d / "clean" / "a.wav"), x, sr, subtype="FLOAT")
    rng = np.random.default_rng(1)
    for i, s in enumerate((0.01, 0.03, 0.1)):
        sf.write(str(d / "deg" / f"a__noise{i}.wav"), x + s * rng.standard_normal(len(x)), sr, subtype="FLOAT")
    return d


def rows_of(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def fake_row(i: int, **more) -> dict:
    return {
        "clean": "/c/a.wav",
        "degraded": f"/d/a__{i}.wav",
        "stoi": repr(0.5 + i / 100),
        "stoi_reason": "",
        "notes": 'a note with a comma, a "quote"\nand a newline',
        "error": "",
        "clean_sha256": "c" * 64,
        "degraded_sha256": f"{i:064d}",
        "settings": "metrics=stoi;length=trim",
        **more,
    }


def csv_line(row: dict, cols=COLS) -> bytes:
    from pqeval.results import to_csv

    return to_csv([row], cols).split("\n", 1)[1].encode()


def one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


# --- append-only, compacted at the end ------------------------------------------------------


def test_each_row_is_on_disk_when_add_returns_and_nothing_is_rewritten(tmp_path, monkeypatch):
    """Rows are appended and flushed one by one (they were rewritten with the whole table at most
    every 2 s, so a kill lost up to 2 s of rows and a 100k-row run wrote O(n^2) bytes); the only
    full rewrite is the compaction in finish()."""
    import pqeval.output as output

    rewrites = []
    real = output.atomic_write_text
    monkeypatch.setattr(output, "atomic_write_text", lambda p, t: rewrites.append(p) or real(p, t))
    out = tmp_path / "res.csv"
    with ResultsFile(out, COLS) as f:
        before = len(rewrites)
        for i in range(5):
            f.add(fake_row(i))
            assert [r["degraded"] for r in rows_of(out)] == [f"/d/a__{j}.wav" for j in range(i + 1)]
        assert len(rewrites) == before  # appended, never rewritten while rows come in
        done = f.finish([("/c/a.wav", f"/d/a__{j}.wav") for j in (4, 3, 2, 1, 0)])
    assert len(rewrites) == before + 1  # the compaction
    assert (
        [r["degraded"] for r in rows_of(out)]
        == [r["degraded"] for r in done]
        == [f"/d/a__{j}.wav" for j in (4, 3, 2, 1, 0)]
    )
    assert rows_of(out)[0]["notes"] == fake_row(4)["notes"]  # quoting and newlines survive


def test_completed_run_leaves_exactly_its_rows_interrupted_one_keeps_all(tree, tmp_path):
    out = tmp_path / "res.csv"
    pairs = pairs_from_dirs(tree / "clean", tree / "deg")
    run_batch(pairs, out, STOI)
    before = {(r["clean"], r["degraded"]): r for r in rows_of(out)}
    assert len(before) == 3

    def stop(done, total, label):
        if done == 1:
            raise KeyboardInterrupt

    other = ScoreOptions(metrics=("stoi",), align="delay")  # other settings: every row is rescored
    with pytest.raises(KeyboardInterrupt):
        run_batch(pairs, out, other, progress=stop)
    after = rows_of(out)
    assert {(r["clean"], r["degraded"]) for r in after} == set(before)  # nothing lost, nothing twice
    assert sum("align=delay" in r["settings"] for r in after) == 1
    run_batch(pairs[:2], out, STOI)
    assert [r["degraded"] for r in rows_of(out)] == [str(p.degraded) for p in pairs[:2]]  # exactly its own


def test_a_torn_last_line_is_dropped_never_parsed_as_a_row(tmp_path):
    """A kill in the middle of an append leaves part of a row; the next run drops it (and cuts it
    from the file before appending), wherever the cut fell: in a field, inside a quoted field after
    an embedded newline, or just before the row's final newline."""
    full = csv_line(fake_row(7))
    quote_nl = full.index(b"\n") + 1  # inside the quoted notes field, right after its newline
    for cut in (len(full) // 2, quote_nl, len(full) - 1, full.index(b"metrics=") + 3):
        out = tmp_path / f"res{cut}.csv"
        with ResultsFile(out, COLS) as f:
            f.add(fake_row(1))
            f.add(fake_row(2))
        good = out.read_bytes()
        with open(out, "ab") as fh:
            fh.write(csv_line(fake_row(2, stoi="0.99")))  # a complete re-score of row 2: the last one wins
            fh.write(full[:cut])  # row 7, torn
        res = ResultsFile(out, COLS)
        assert set(res.previous) == {("/c/a.wav", "/d/a__1.wav"), ("/c/a.wav", "/d/a__2.wav")}, cut
        assert res.previous[("/c/a.wav", "/d/a__2.wav")]["stoi"] == "0.99"
        assert fake_row(1).items() <= res.previous[("/c/a.wav", "/d/a__1.wav")].items()
        with res:
            assert out.read_bytes() == good + csv_line(fake_row(2, stoi="0.99"))  # the torn part is cut off
            res.add(fake_row(8))
        assert [r["degraded"] for r in rows_of(out)] == ["/d/a__8.wav", "/d/a__1.wav", "/d/a__2.wav"]


KILLER = r"""
import os, signal, sys
import pqeval.output as output
from pqeval.results import columns
out = sys.argv[1]
real = output.append_bytes
def half_then_die(fd, data):
    if b"a__3" in data:
        real(fd, data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    real(fd, data)
output.append_bytes = half_then_die
with output.ResultsFile(out, columns(("stoi",))) as f:
    for i in range(1, 5):
        f.add({"clean": "/c/a.wav", "degraded": f"/d/a__{i}.wav", "stoi": "0.5", "settings": "s"})
"""


def test_killed_mid_append_then_rerun(tmp_path):
    """A writer SIGKILLed half-way through a row: the next run reads every complete row, drops the
    torn one, and is not blocked by the dead writer's lock."""
    out = tmp_path / "res.csv"
    p = subprocess.run(
        [sys.executable, "-c", KILLER, str(out)], env={**os.environ, "PYTHONPATH": ENV_PATH}, capture_output=True
    )
    assert p.returncode == -signal.SIGKILL, p.stderr
    with ResultsFile(out, COLS) as res:
        assert sorted(k[1] for k in res.previous) == ["/d/a__1.wav", "/d/a__2.wav"]
        res.add({"clean": "/c/a.wav", "degraded": "/d/a__3.wav", "stoi": "0.7", "settings": "s"})
        res.finish([("/c/a.wav", f"/d/a__{i}.wav") for i in (1, 2, 3)])
    assert [r["degraded"] for r in rows_of(out)] == ["/d/a__3.wav"]


def test_other_columns_union_header_written_once(tmp_path, monkeypatch):
    """An earlier file with other columns is rewritten once, at the start, with the union of
    columns; rows are appended under it; the finished file has exactly this run's columns."""
    import pqeval.output as output

    out = tmp_path / "res.csv"
    old_cols = ["label", *columns(("vggish",))]
    with ResultsFile(out, old_cols) as f:
        f.add({**fake_row(1), "label": "x", "vggish": "0.9"})
    rewrites = []
    real = output.atomic_write_text
    monkeypatch.setattr(output, "atomic_write_text", lambda p, t: rewrites.append(p) or real(p, t))
    with pytest.raises(KeyboardInterrupt), ResultsFile(out, COLS) as f:
        assert len(rewrites) == 1
        header = out.read_text().splitlines()[0].split(",")
        assert header == COLS + [c for c in old_cols if c not in COLS]
        f.add(fake_row(2))
        assert len(rewrites) == 1
        raise KeyboardInterrupt
    rows = {r["degraded"]: r for r in rows_of(out)}
    assert rows["/d/a__1.wav"]["label"] == "x" and rows["/d/a__1.wav"]["vggish"] == "0.9"  # earlier row intact
    assert rows["/d/a__2.wav"]["stoi"] == fake_row(2)["stoi"]
    with ResultsFile(out, COLS) as f:
        f.add(fake_row(3))
        f.finish([("/c/a.wav", "/d/a__3.wav")])
    assert out.read_text().splitlines()[0].split(",") == COLS


# --- one writer per file ----------------------------------------------------------------------


def _pairs_csv(tree, path):
    path.write_text("clean,degraded\n" + "".join(f"{tree}/clean/a.wav,{tree}/deg/a__noise{i}.wav\n" for i in range(3)))
    return path


def test_a_second_batch_on_the_same_out_is_refused(tree, tmp_path):
    """Two batches writing one file both exited 0 and the file held half of their rows: the second
    now stops with one line naming the first's pid, and the first's file is untouched."""
    pairs = _pairs_csv(tree, tree / "pairs.csv")
    out = tmp_path / "res.csv"
    with ResultsFile(out, COLS) as first:
        first.add(fake_row(1))
        r = cli("batch", pairs, "--out", out, "--metrics", "stoi")
        assert r.exit_code == 2
        assert one_error_line(r) == f"pqeval: error: {out}: another pqeval batch is writing it (pid {os.getpid()})"
        assert [x["degraded"] for x in rows_of(out)] == ["/d/a__1.wav"]


HOLDER = r"""
import sys
from pqeval.output import ResultsFile
from pqeval.results import columns
with ResultsFile(sys.argv[1], columns(("stoi",))):
    print("holding", flush=True)
    sys.stdin.read()
"""


def test_the_lock_of_another_process_and_of_a_killed_one(tree, tmp_path):
    """Held by a live process: refused with its pid. That process killed (SIGKILL: no cleanup),
    the next batch runs: the OS released the lock with the process."""
    pairs = _pairs_csv(tree, tree / "pairs.csv")
    out = tmp_path / "res.csv"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)],
        env={**os.environ, "PYTHONPATH": ENV_PATH},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        r = cli("batch", pairs, "--out", out, "--metrics", "stoi")
        assert r.exit_code == 2 and f"another pqeval batch is writing it (pid {holder.pid})" in one_error_line(r)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    r = cli("batch", pairs, "--out", out, "--metrics", "stoi")
    assert r.exit_code == 0, r.stderr
    assert len(rows_of(out)) == 3


# --- what --out may be --------------------------------------------------------------------------


def _special(kind: str, tmp_path, tree):
    """(path, how to check it is unchanged) for an --out that must be refused."""
    if kind == "wav":
        p = tmp_path / "clean.wav"
        shutil.copy(tree / "clean" / "a.wav", p)
    elif kind == "pairs csv":
        p = _pairs_csv(tree, tmp_path / "pairs.csv")
        p.write_text(p.read_text().replace("clean,degraded", "clean,degraded,label").replace(".wav\n", ".wav,x\n"))
    elif kind == "text":
        p = tmp_path / "notes.txt"
        p.write_text("my notes, not results\n")
    elif kind == "directory":
        p = tmp_path / "adir"
        p.mkdir()
    elif kind == "symlink":
        target = tmp_path / "real.csv"
        with ResultsFile(target, COLS) as f:
            f.add(fake_row(1))
        p = tmp_path / "link.csv"
        p.symlink_to(target)
    elif kind == "fifo":
        p = tmp_path / "fifo"
        os.mkfifo(p)
    elif kind == "device":
        p = tmp_path / "null"
        try:
            os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
        except PermissionError:
            pytest.skip("making a device node needs root")
    st = os.lstat(p)
    content = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
    return p, lambda: os.lstat(p).st_mode == st.st_mode and (content is None or p.read_bytes() == content)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("wav", "exists and is not a pqeval results file"),
        ("pairs csv", "exists and is not a pqeval results file"),
        ("text", "exists and is not a pqeval results file"),
        ("directory", "is a directory"),
        ("symlink", "is a symbolic link"),
        ("fifo", "is not a regular file"),
        ("device", "is not a regular file"),
    ],
)
def test_out_that_is_not_a_results_file_is_refused(kind, message, tree, tmp_path):
    """`--out clean.wav` replaced the recording, `--out` the pairs file destroyed its label column
    and, as root, `--out /dev/null` replaced the device node with a regular file: each is now one
    line and exit 2 before any work, and the path is left as it was."""
    pairs = _pairs_csv(tree, tree / "pairs.csv")
    out, unchanged = _special(kind, tmp_path, tree)
    r = cli("batch", pairs, "--out", out, "--metrics", "stoi")
    assert r.exit_code == 2
    line = one_error_line(r)
    assert line.startswith(f"pqeval: error: {out}: ") and message in line, line
    assert unchanged()
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_pairs_file_itself_as_out_is_refused(tree, tmp_path):
    pairs = _pairs_csv(tree, tmp_path / "pairs.csv")
    text = pairs.read_text()
    r = cli("batch", pairs, "--out", pairs, "--metrics", "stoi")
    assert r.exit_code == 2 and "not a pqeval results file" in one_error_line(r)
    assert pairs.read_text() == text


def test_an_empty_file_and_a_results_file_are_fine(tree, tmp_path):
    pairs = _pairs_csv(tree, tmp_path / "pairs.csv")
    out = tmp_path / "empty.csv"
    out.write_bytes(b"")
    assert cli("batch", pairs, "--out", out, "--metrics", "stoi").exit_code == 0
    assert len(rows_of(out)) == 3
    r = cli("batch", pairs, "--out", out, "--metrics", "stoi")
    assert r.exit_code == 0 and "0 scored, 3 reused" in r.stderr


# --- a write error ------------------------------------------------------------------------------


def test_disk_full_mid_run_is_one_line_and_keeps_every_earlier_row(tree, tmp_path, monkeypatch):
    import pqeval.output as output

    pairs = _pairs_csv(tree, tmp_path / "pairs.csv")
    out = tmp_path / "res.csv"
    assert cli("batch", pairs, "--out", out, "--metrics", "stoi").exit_code == 0
    earlier = out.read_bytes()
    real, calls = output.append_bytes, []

    def full_disk(fd, data):
        calls.append(data)
        if len(calls) == 2:
            real(fd, data[:10])  # part of the row reached the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(output, "append_bytes", full_disk)
    r = cli("batch", pairs, "--out", out, "--metrics", "stoi", "--align", "delay", "--quiet")  # new settings
    assert r.exit_code == 2
    assert one_error_line(r) == f"pqeval: error: {out}: cannot write here (No space left on device)"
    data = out.read_bytes()
    assert data.startswith(earlier)  # every earlier row, byte for byte
    rows = rows_of(out)
    assert len(rows) == 4 and sum("align=delay" in r["settings"] for r in rows) == 1  # + the one written
    monkeypatch.setattr(output, "append_bytes", real)
    r = cli("batch", pairs, "--out", out, "--metrics", "stoi", "--align", "delay")
    assert r.exit_code == 0 and "2 scored, 1 reused" in r.stderr


def test_write_error_in_the_api_is_a_usage_error(tree, tmp_path, monkeypatch):
    import pqeval.output as output

    def fail(fd, data):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(output, "append_bytes", fail)
    with pytest.raises(UsageError, match="cannot write here"):
        run_batch(pairs_from_dirs(tree / "clean", tree / "deg"), tmp_path / "r.csv", STOI)
    assert rows_of(tmp_path / "r.csv") == []  # the header alone


# --- rows that say where they came from -------------------------------------------------------


def _private_models(models_dir, tmp_path, monkeypatch):
    import pqeval.session as session

    d = tmp_path / "models"
    shutil.copytree(models_dir, d)
    monkeypatch.setenv("PQEVAL_MODELS", str(d))
    monkeypatch.setattr(session, "CHECKOUT_MODELS", tmp_path / "no-checkout-models")
    session._OPEN.clear()
    return d


def test_rows_carry_the_version_models_and_their_sha256(tree, models_dir, tmp_path, monkeypatch):
    import pqeval

    d = _private_models(models_dir, tmp_path, monkeypatch)
    out = tmp_path / "res.csv"
    run_batch(pairs_from_dirs(tree / "clean", tree / "deg"), out, ScoreOptions(metrics=("vggish", "openl3", "stoi")))
    sha = {k: json.loads((d / f"{k}.onnx.json").read_text())["sha256"] for k in ("vggish", "openl3-mel256-music-512")}
    for r in rows_of(out):
        assert r["pqeval_version"] == pqeval.__version__
        assert r["vggish_model"] == "vggish" and r["vggish_model_sha256"] == sha["vggish"]
        assert r["openl3_model"] == "openl3-mel256-music-512"
        assert r["openl3_model_sha256"] == sha["openl3-mel256-music-512"]
        assert "metrics=vggish,openl3,stoi" in r["settings"] and "stoi_model" not in r


def test_a_reexported_model_is_rescored_not_reused(tree, models_dir, tmp_path, monkeypatch):
    """Re-exporting a model and rerunning the same --out kept the old model's numbers ("0 scored,
    3 reused"): the rows' model sha256 is part of the resume check, and the new model scores."""
    from tiny_models import write_tiny_vggish

    d = _private_models(models_dir, tmp_path, monkeypatch)
    pairs = _pairs_csv(tree, tmp_path / "pairs.csv")
    out = tmp_path / "res.csv"
    r = cli("batch", pairs, "--out", out, "--metrics", "vggish")
    assert r.exit_code == 0 and "3 scored, 0 reused" in r.stderr
    first = rows_of(out)
    write_tiny_vggish(d, seed=1)  # the same key, other weights
    r = cli("batch", pairs, "--out", out, "--metrics", "vggish")
    assert r.exit_code == 0 and "3 scored, 0 reused" in r.stderr, r.stderr
    again = rows_of(out)
    new_sha = json.loads((d / "vggish.onnx.json").read_text())["sha256"]
    assert all(
        r["vggish_model_sha256"] == new_sha != f["vggish_model_sha256"] for r, f in zip(again, first, strict=True)
    )
    assert all(r["vggish_weights"] == "seeded:1" for r in again)
    assert [r["vggish"] for r in again] != [r["vggish"] for r in first]  # the new weights scored them
    r = cli("batch", pairs, "--out", out, "--metrics", "vggish")
    assert "0 scored, 3 reused" in r.stderr


def test_extra_columns_of_the_pairs_csv_are_kept_in_the_csv(tree, tmp_path):
    """--json kept the pairs file's other columns (id, system) and the CSV dropped them."""
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        f"id,clean,system,degraded\n"
        f"1,{tree}/clean/a.wav,A,{tree}/deg/a__noise0.wav\n"
        f"2,{tree}/clean/a.wav,B,{tree}/deg/a__noise1.wav\n"
    )
    out = tmp_path / "res.csv"
    r = cli("batch", pairs, "--out", out, "--metrics", "stoi", "--json")
    assert r.exit_code == 0
    assert [(x["id"], x["system"]) for x in rows_of(out)] == [("1", "A"), ("2", "B")]
    assert [(x["id"], x["system"]) for x in json.loads(r.stdout)] == [("1", "A"), ("2", "B")]
    assert open(out).readline().startswith("id,system,clean,degraded,")
    r = cli("batch", pairs, "--out", "-", "--metrics", "stoi")
    assert r.stdout.startswith("id,system,clean,degraded,") and ",A," in r.stdout


def test_a_worker_whose_model_differs_from_the_stamp_refuses(use_models):
    """On a cluster the stamp is taken once; a worker whose model file has another sha256 (another
    export on that machine) stops with a ModelError instead of writing rows under a wrong sha256."""
    from pqeval import work
    from pqeval.errors import ModelError
    from pqeval.results import run_stamp

    opts = ScoreOptions(metrics=("vggish",))
    stamp = run_stamp(opts)
    assert work.scorer_for(opts, stamp) is work.scorer_for(opts, stamp)  # models load once per process
    with pytest.raises(ModelError, match="this run was stamped with vggish sha256 000000000000"):
        work.scorer_for(opts, {**stamp, "vggish_model_sha256": "0" * 64})


def test_a_filesystem_without_locks_is_written_unlocked(tmp_path, monkeypatch):
    import pqeval.output as output

    monkeypatch.setattr(output, "_try_lock", lambda fd: None)
    out = tmp_path / "res.csv"
    with ResultsFile(out, COLS) as f:
        f.add(fake_row(1))
        assert not output.lock_path(out).exists()
    assert len(rows_of(out)) == 1


def test_a_broken_line_inside_the_file_is_refused_and_left_alone(tmp_path):
    """Only a torn *last* row is dropped; a complete line that is not a row of the table (edited by
    hand) stops the run before anything is written, rather than losing what follows it."""
    out = tmp_path / "res.csv"
    with ResultsFile(out, COLS) as f:
        f.add(fake_row(1))
    header, rest = out.read_text().split("\n", 1)
    out.write_text(f"{header}\noops,1\n{rest}")
    broken = out.read_bytes()
    for _ in range(2):  # the lock is released after the refusal
        with pytest.raises(UsageError, match=r"res.csv: line 2 is not a well-formed row of this results table"):
            ResultsFile(out, COLS)
    assert out.read_bytes() == broken
