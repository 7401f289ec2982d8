"""Shards (`--shard I/N`) and `pqeval merge`: disjoint parts that join into the one-process table;
overlapping parts, parts scored differently and unfinished parts are refused or reported."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import AUDIO, cli
from pqeval.batch import run_batch
from pqeval.errors import UsageError
from pqeval.merge import merge_results, read_part, stamp_columns
from pqeval.pairs import pairs_from_csv, pairs_from_dirs, shard
from pqeval.scoring import ScoreOptions

OPTS = ScoreOptions(metrics=("vggish", "stoi"))
N = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """8 clean excerpts of the shared recordings x 4 noise levels (WAV), and their pairs CSV."""
    d = tmp_path_factory.mktemp("merge-corpus")
    (d / "clean").mkdir()
    (d / "deg").mkdir()
    rng = np.random.default_rng(7)
    lines = ["clean,degraded"]
    sources = sorted(p for p in AUDIO.iterdir() if p.suffix == ".wav")
    for i in range(8):
        x, sr = sf.read(str(sources[i % len(sources)]), dtype="float64", always_2d=True)
        clean = x.mean(axis=1)[: int(1.2 * sr)]
        name = f"m{i}"
        sf.write(str(d / "clean" / f"{name}.wav"), clean, sr, subtype="FLOAT")
        for snr in (20, 10, 5, 0):
            noisy = clean + rng.standard_normal(len(clean)) * np.sqrt(np.mean(clean**2) / 10 ** (snr / 10))
            sf.write(str(d / "deg" / f"{name}__noise_{snr}.wav"), noisy, sr, subtype="FLOAT")
            lines.append(f"clean/{name}.wav,deg/{name}__noise_{snr}.wav")
    (d / "pairs.csv").write_text("\n".join(lines) + "\n")
    return d


@pytest.fixture()
def parts(corpus, use_models, tmp_path):
    """The corpus scored as 3 shards (each a separate batch), and in one batch."""
    pairs = pairs_from_csv(corpus / "pairs.csv")
    paths = []
    for i in range(1, N + 1):
        paths.append(tmp_path / f"part{i}.csv")
        run_batch(pairs, paths[-1], OPTS, shard=f"{i}/{N}")
    whole = tmp_path / "whole.csv"
    run_batch(pairs, whole, OPTS)
    return paths, whole


def biggest(paths: list[Path]) -> int:
    """The index of the part with the most rows (which part a clean file falls in depends on its
    path, here a temporary directory: a part may be empty)."""
    return max(range(len(paths)), key=lambda i: len(keys(paths[i])))


def keys(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["clean"], r["degraded"]) for r in csv.DictReader(f)]


def test_shards_are_disjoint_deterministic_and_cover_the_pairs(corpus, parts):
    pairs = pairs_from_csv(corpus / "pairs.csv")
    paths, _ = parts
    got = [keys(p) for p in paths]
    flat = [k for g in got for k in g]
    assert sorted(flat) == sorted(p.key for p in pairs) and len(set(flat)) == len(flat)
    assert got == [[p.key for p in shard(pairs, i, N)] for i in range(1, N + 1)]  # the same cut every time
    for g in got:  # a clean file's pairs stay in one shard (its embedding computed once)
        assert all(c not in {k[0] for h in got if h is not g for k in h} for c, _ in g)


def test_merge_with_the_pair_list_is_the_one_process_table(corpus, parts, tmp_path):
    paths, whole = parts
    out = tmp_path / "merged.csv"
    p = cli("merge", out, *reversed(paths), "--pairs", corpus / "pairs.csv")
    assert p.exit_code == 0, p.stderr
    assert out.read_bytes() == whole.read_bytes()  # same rows, same order, same bytes
    assert "32 rows from 3 parts" in p.stderr and "0 of 32 listed pairs missing" in p.stderr
    out2 = tmp_path / "merged-dirs.csv"  # the pair list as two folders
    p = cli("merge", out2, *paths, "--pairs", corpus / "clean", "--pairs", corpus / "deg")
    assert p.exit_code == 0, p.stderr
    dirs_order = [q.key for q in pairs_from_dirs(corpus / "clean", corpus / "deg")]
    assert keys(out2) == [k for k in dirs_order if k in set(keys(whole))] and len(keys(out2)) == 32
    out3 = tmp_path / "merged-plain.csv"  # without a list: every row once, parts in order
    assert cli("merge", out3, *paths).exit_code == 0
    assert keys(out3) == [k for p in paths for k in keys(p)]


def test_missing_pairs_are_listed(corpus, parts, tmp_path):
    paths, _ = parts
    b = biggest(paths)
    rest = [q for i, q in enumerate(paths) if i != b]
    out = tmp_path / "merged.csv"
    p = cli("merge", out, *rest, "--pairs", corpus / "pairs.csv")
    assert p.exit_code == 3, p.stderr
    absent = keys(paths[b])
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("pqeval: missing: ")]
    assert lines == [f"pqeval: missing: {c} -> {d}" for c, d in absent]
    assert f"{len(absent)} of 32 listed pairs missing" in p.stderr
    assert sorted(keys(out)) == sorted(k for q in rest for k in keys(q))
    assert cli("merge", tmp_path / "m2.csv", *rest).exit_code == 0  # no list: nothing to miss


def test_overlapping_parts_are_refused(parts, tmp_path):
    paths, _ = parts
    b = biggest(paths)
    copy = tmp_path / "copy.csv"
    copy.write_bytes(paths[b].read_bytes())
    out = tmp_path / "merged.csv"
    p = cli("merge", out, *paths, copy)
    assert p.exit_code == 2 and "in more than one part" in p.stderr and str(copy) in p.stderr
    assert p.stderr.count("\n") == 1 and not out.exists()
    p = cli("merge", out, paths[0], paths[0])
    assert p.exit_code == 2 and "given twice" in p.stderr


def test_parts_scored_differently_are_refused(corpus, parts, use_models, tmp_path):
    paths, _ = parts
    pairs = pairs_from_csv(corpus / "pairs.csv")
    b = biggest(paths)
    other = tmp_path / "other.csv"  # that shard with another VGGish output
    run_batch(pairs, other, ScoreOptions(metrics=("vggish", "stoi"), vggish_output="embedding"), shard=(b + 1, N))
    out = tmp_path / "merged.csv"
    p = cli("merge", out, *[other if i == b else q for i, q in enumerate(paths)])
    assert p.exit_code == 2 and "not scored alike: column settings" in p.stderr and str(other) in p.stderr
    assert not out.exists()


def _edit_column(src: Path, dst: Path, col: str, value: str) -> None:
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
        header = list(rows[0])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, col: value})
    dst.write_text(buf.getvalue(), encoding="utf-8")


def test_every_stamp_column_must_agree(parts, tmp_path):
    """Not only `settings`: every stamp column the rows carry (the model's sha256, pqeval's
    version...) must have one value across the parts."""
    paths, _ = parts
    header = next(csv.reader(open(paths[0], newline="", encoding="utf-8")))
    stamps = stamp_columns(header)
    assert "settings" in stamps and not {"clean_sha256", "degraded_sha256"} & set(stamps)
    b = biggest(paths)
    for col in stamps:
        odd = tmp_path / f"odd-{col}.csv"
        _edit_column(paths[b], odd, col, "something-else")
        with pytest.raises(UsageError, match=f"column {col} is"):
            merge_results(tmp_path / "m.csv", [odd if i == b else q for i, q in enumerate(paths)])
    assert not (tmp_path / "m.csv").exists()


def test_model_sha_column_is_compared(parts, tmp_path):
    paths, _ = parts
    header = next(csv.reader(open(paths[0], newline="", encoding="utf-8")))
    if "vggish_model_sha256" not in header:
        pytest.fail("the rows carry no vggish_model_sha256 column (issue 13 item 5)")
    b = biggest(paths)
    odd = tmp_path / "odd.csv"
    _edit_column(paths[b], odd, "vggish_model_sha256", "0" * 64)
    p = cli("merge", tmp_path / "m.csv", *[odd if i == b else q for i, q in enumerate(paths)])
    assert p.exit_code == 2 and "column vggish_model_sha256" in p.stderr


def test_out_is_never_a_part_or_another_kind_of_file(corpus, parts, tmp_path):
    paths, _ = parts
    before = paths[0].read_bytes()
    p = cli("merge", paths[0], *paths)
    assert p.exit_code == 2 and "is also one of the parts" in p.stderr and paths[0].read_bytes() == before
    wav = next((corpus / "clean").iterdir())
    audio = wav.read_bytes()
    p = cli("merge", wav, *paths)
    assert p.exit_code == 2 and "not a pqeval results table; not replacing it" in p.stderr
    assert wav.read_bytes() == audio
    p = cli("merge", tmp_path, *paths)
    assert p.exit_code == 2 and "not a regular file" in p.stderr
    done = tmp_path / "done.csv"  # an earlier merged table is replaced
    assert cli("merge", done, paths[0]).exit_code == 0
    assert cli("merge", done, *paths).exit_code == 0 and len(keys(done)) == 32


def test_a_part_that_is_not_a_results_table(corpus, parts, tmp_path):
    paths, _ = parts
    p = cli("merge", tmp_path / "m.csv", paths[0], corpus / "pairs.csv")
    assert p.exit_code == 2 and "not a pqeval results table" in p.stderr and "pairs.csv" in p.stderr
    p = cli("merge", tmp_path / "m.csv", paths[0], tmp_path / "nope.csv")
    assert p.exit_code == 2 and "no such results file" in p.stderr


def test_a_stopped_part_torn_last_line_and_repeated_rows(corpus, parts, tmp_path):
    """A part whose run was killed mid-append ends in a torn line: left out, said, and the pair
    listed as missing; a pair appended twice (stopped, resumed) counts once: its last row."""
    paths, whole = parts
    b = biggest(paths)
    rest = [q for i, q in enumerate(paths) if i != b]
    lines = paths[b].read_text(encoding="utf-8").splitlines(keepends=True)
    again = tmp_path / "again.csv"  # its first row appended a second time, as a resume would
    again.write_text("".join(lines) + lines[1], encoding="utf-8")
    assert len(read_part(again).rows) == len(lines) - 1
    out = tmp_path / "m1.csv"
    p = cli("merge", out, again, *rest, "--pairs", corpus / "pairs.csv")
    assert p.exit_code == 0, p.stderr
    assert out.read_bytes() == whole.read_bytes()
    torn = tmp_path / "torn.csv"
    torn.write_text("".join(lines[:-1]) + lines[-1][:40], encoding="utf-8")
    out = tmp_path / "m2.csv"
    p = cli("merge", out, torn, *rest, "--pairs", corpus / "pairs.csv")
    assert p.exit_code == 3, p.stderr
    assert "its last line was cut short" in p.stderr and str(torn) in p.stderr
    lost = keys(paths[b])[-1]
    assert f"pqeval: missing: {lost[0]} -> {lost[1]}" in p.stderr
    assert sorted(keys(out)) == sorted(k for k in keys(whole) if k != lost)


def test_cli_shard_flag(corpus, parts, use_models, tmp_path):
    paths, _ = parts
    out = tmp_path / "s2.csv"
    p = cli("batch", corpus / "pairs.csv", "--out", out, "--metrics", "vggish,stoi", "--shard", f"2/{N}")
    assert p.exit_code == 0, p.stderr
    assert out.read_bytes() == paths[1].read_bytes()
    p = cli("batch", corpus / "pairs.csv", "--out", tmp_path / "x.csv", "--shard", "4/3")
    assert p.exit_code == 2 and "1 <= I <= N" in p.stderr
