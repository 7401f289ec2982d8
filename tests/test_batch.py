"""Batch scoring: bad pairs keep the batch going, resume, cache, atomic output."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from helpers import cli, read
from pqeval.batch import pairs_from_csv, pairs_from_dirs, run_batch
from pqeval.errors import UsageError
from pqeval.scoring import ScoreOptions

OPTS = ScoreOptions(metrics=("vggish", "pesq_wb", "stoi"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    x, sr = read("speech_cmu_goforward.wav")
    (d / "clean").mkdir()
    (d / "deg").mkdir()
    sf.write(str(d / "clean" / "a.wav"), x, sr, subtype="FLOAT")
    rng = np.random.default_rng(0)
    for i, s in enumerate((0.01, 0.05)):
        sf.write(str(d / "deg" / f"a__noise{i}.wav"), x + s * rng.standard_normal(len(x)), sr, subtype="FLOAT")
    (d / "deg" / "a__corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    sf.write(str(d / "deg" / "a__silent.wav"), np.zeros(len(x)), sr, subtype="FLOAT")
    return d


def test_corrupt_and_silent_rows_carry_reasons(tree, use_models, tmp_path):
    out = tmp_path / "res.csv"
    res = run_batch(pairs_from_dirs(tree / "clean", tree / "deg"), out, OPTS)
    rows = {r["degraded"].rsplit("/", 1)[1]: r for r in csv.DictReader(open(out))}
    assert len(rows) == 4 and res.failed == 1 and res.scored == 3
    bad = rows["a__corrupt.wav"]
    assert "not a readable audio file" in bad["error"] and bad["vggish"] == "" and "a__corrupt.wav" in bad["error"]
    silent = rows["a__silent.wav"]
    assert silent["pesq_wb"] == "" and "all zero" in silent["pesq_wb_reason"] and silent["vggish"] != ""
    good = rows["a__noise0.wav"]
    assert float(good["pesq_wb"]) > float(rows["a__noise1.wav"]["pesq_wb"])  # less noise, higher PESQ
    assert good["vggish_weights"] == "seeded:0"


def test_resume_reuses_rows_and_rescoring_matches(tree, use_models, tmp_path):
    out = tmp_path / "res.csv"
    pairs = pairs_from_dirs(tree / "clean", tree / "deg")
    first = run_batch(pairs, out, OPTS)
    again = run_batch(pairs, out, OPTS)
    assert again.scored == 0 and again.reused == 3 and again.failed == 1  # the bad pair is retried
    assert [r["vggish"] for r in again.rows] == [r["vggish"] for r in first.rows]
    other = run_batch(pairs, out, ScoreOptions(metrics=("vggish", "pesq_wb", "stoi"), vggish_output="embedding"))
    assert other.reused == 0  # settings changed: recomputed


def test_clean_embedding_is_computed_once(tree, use_models, tmp_path, monkeypatch):
    from pqeval.vggish import VGGishEmbedder

    calls = []
    orig = VGGishEmbedder.embed
    monkeypatch.setattr(VGGishEmbedder, "embed", lambda self, a, sr: calls.append(len(a)) or orig(self, a, sr))
    pairs = [p for p in pairs_from_dirs(tree / "clean", tree / "deg") if "noise" in p.degraded.name]
    run_batch(pairs, tmp_path / "r.csv", ScoreOptions(metrics=("vggish",)))
    assert len(calls) == 3  # one clean + two degraded


def test_pairs_csv_relative_paths_and_errors(tree, tmp_path):
    p = tree / "pairs.csv"
    p.write_text("clean,degraded,label\nclean/a.wav,deg/a__noise0.wav,x\n")
    pairs = pairs_from_csv(p)
    assert pairs[0].clean == tree / "clean" / "a.wav" and pairs[0].extra == {"label": "x"}
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UsageError, match="'clean' and 'degraded'"):
        pairs_from_csv(bad)
    with pytest.raises(UsageError, match="not a directory"):
        pairs_from_dirs(tmp_path / "nope", tree)


def test_unwritable_output_is_usage_error(tree, use_models, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="cannot write here"):
        run_batch([], tmp_path / "file" / "res.csv", OPTS)


def test_batch_cli_exit_codes_and_json(tree, use_models, tmp_path):
    out = tmp_path / "r.csv"
    p = cli("batch", tree / "clean", tree / "deg", "--out", out, "--metrics", "vggish,pesq_wb", "--json")
    assert p.exit_code == 3, p.stderr
    rows = json.loads(p.stdout)
    assert len(rows) == 4 and sum(bool(r["error"]) for r in rows) == 1
    assert "failed: " in p.stderr and "a__corrupt.wav" in p.stderr
    assert not list(tmp_path.glob(".*.tmp"))


def test_twenty_pairs_five_bad(tree, use_models, tmp_path):
    """A batch of 20 pairs with 5 bad ones writes 20 rows, 5 with reasons, and exits 3."""
    lines = ["clean,degraded"]
    for i in range(20):
        if i % 4 == 3:
            lines.append(
                f"{tree / 'clean' / 'a.wav'},{tmp_path / f'missing{i}.wav'}"
                if i < 12
                else f"{tree / 'clean' / 'a.wav'},{tree / 'deg' / 'a__corrupt.wav'}"
            )
        else:
            lines.append(f"{tree / 'clean' / 'a.wav'},{tree / 'deg' / ('a__noise0.wav' if i % 2 else 'a__noise1.wav')}")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join(lines) + "\n")
    out = tmp_path / "res.csv"
    p = cli("batch", pairs, "--out", out, "--metrics", "vggish,stoi")
    assert p.exit_code == 3
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 20
    bad = [r for r in rows if r["error"]]
    assert len(bad) == 5 and all(r["vggish"] == "" and r["error"] for r in bad)
    assert sum("no such file" in r["error"] for r in bad) == 3 and sum("not a readable" in r["error"] for r in bad) == 2


def test_interrupted_batch_resumes(tree, use_models, tmp_path):
    pairs = [p for p in pairs_from_dirs(tree / "clean", tree / "deg") if "noise" in p.degraded.name] * 2
    out = tmp_path / "res.csv"

    def interrupt(done, total, label):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(pairs, out, OPTS, progress=interrupt)
    assert len(list(csv.DictReader(open(out)))) == 2  # what was scored is on disk
    res = run_batch(pairs, out, OPTS)
    assert res.reused == 4 and res.scored == 0  # the duplicates reuse the same rows too


def test_interrupted_resume_keeps_earlier_rows(tree, use_models, tmp_path):
    """Rows from the earlier run stay until superseded: a resume stopped after one pair still has
    all four rows on disk (it used to keep only that one)."""
    pairs = [p for p in pairs_from_dirs(tree / "clean", tree / "deg") if "noise" in p.degraded.name]
    out = tmp_path / "res.csv"
    first = run_batch(pairs, out, OPTS)
    assert first.scored == len(pairs) == 2
    more = pairs + [p for p in pairs_from_dirs(tree / "clean", tree / "deg") if "noise" not in p.degraded.name]
    run_batch(more, out, OPTS)
    before = {(r["clean"], r["degraded"]): r for r in csv.DictReader(open(out))}
    assert len(before) == len(more) > 2

    def interrupt(done, total, label):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(list(reversed(more)), out, OPTS, progress=interrupt)
    after = {(r["clean"], r["degraded"]): r for r in csv.DictReader(open(out))}
    assert after.keys() == before.keys()
    assert all(after[k]["vggish"] == before[k]["vggish"] for k in before)


def test_the_whole_csv_is_written_twice_per_run(tree, use_models, tmp_path, monkeypatch):
    """Not one rewrite per pair (O(n^2) bytes on big batches): rows are appended; the whole file is
    written once up front (the header of a new file) and once at the end (the compaction)."""
    import pqeval.output as output

    writes = []
    real = output.atomic_write_text
    monkeypatch.setattr(output, "atomic_write_text", lambda p, t: writes.append(p) or real(p, t))
    pairs = pairs_from_dirs(tree / "clean", tree / "deg")
    res = run_batch(pairs, tmp_path / "res.csv", OPTS)
    assert len(pairs) >= 3 and len(res.rows) == len(pairs)
    assert len(writes) == 2
    assert len(list(csv.DictReader(open(tmp_path / "res.csv")))) == len(pairs)


def test_clean_embedding_cache_is_bounded():
    from pqeval.batch import LRUCache

    c = LRUCache(2)
    c["a"], c["b"] = 1, 2
    assert c["a"] == 1  # a is now the most recent
    c["c"] = 3
    assert list(c) == ["a", "c"] and "b" not in c


# --- progress and the summary (issue 13, item 6) -------------------------------------------------


def test_progress_without_a_terminal_is_a_periodic_line(capsys):
    """In a cluster log (no terminal) a line at most every PROGRESS_LOG_SECONDS and at the end:
    done/total, rate, ETA and failures so far (the clock is a stand-in: no waiting)."""
    from pqeval import render

    now = [0.0]
    with render.Progress("scoring", unit="pairs", clock=lambda: now[0]) as prog:
        for done in range(1, 11):
            now[0] = 4.0 * done
            prog(done, 10, f"p{done}.wav", failed=done // 4)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4  # the first pair (4 s), then 16 s and 28 s (>= 10 s apart), and the last pair
    assert lines[0] == "pqeval: scoring 1/10 pairs, 0.25 pairs/s, ETA 0:00:36, 0 failed (p1.wav)"
    assert lines[1] == "pqeval: scoring 4/10 pairs, 0.25 pairs/s, ETA 0:00:24, 1 failed (p4.wav)"
    assert lines[-1].startswith("pqeval: scoring 10/10 pairs, 0.25 pairs/s, ETA 0:00:00, 2 failed")


def test_progress_is_quiet_when_asked(capsys):
    from pqeval import render

    with render.Progress("scoring", quiet=True, unit="pairs") as prog:
        prog(1, 1, "x", failed=0)
    assert capsys.readouterr().err == ""


def test_summary_mentions_seeded_weights(tree, use_models, tmp_path):
    p = cli("batch", tree / "clean", tree / "deg", "--out", tmp_path / "r.csv", "--metrics", "vggish,stoi")
    assert p.exit_code == 3
    assert "vggish: weights: seeded — not a perceptual measurement (seeded:0)" in p.stderr
    assert "stoi: weights" not in p.stderr
    p = cli("batch", tree / "clean", tree / "deg", "--out", tmp_path / "s.csv", "--metrics", "stoi")
    assert "weights" not in p.stderr
