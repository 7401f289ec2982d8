"""Which pairs a batch scores (issue 13, item 5): pairs CSVs as spreadsheets write them, and folders
paired by name, recursively if asked."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from helpers import cli, read
from pqeval.pairs import group_by_clean, pairs_from_csv, pairs_from_dirs


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    x, sr = read("speech_cmu_goforward.wav")
    sf.write(str(d / "a.wav"), x, sr, subtype="FLOAT")
    sf.write(str(d / "b.wav"), x + 0.02 * np.random.default_rng(0).standard_normal(len(x)), sr, subtype="FLOAT")
    return d


def rows_of(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_excel_bom_is_read(wavs):
    """Excel's "CSV UTF-8" starts with a byte-order mark: the header was '\\ufeffclean' and refused."""
    p = wavs / "bom.csv"
    p.write_bytes("clean,degraded,id\r\na.wav,b.wav,7\r\n".encode("utf-8-sig"))
    pairs = pairs_from_csv(p)
    assert [(x.clean, x.degraded, x.extra) for x in pairs] == [(wavs / "a.wav", wavs / "b.wav", {"id": "7"})]


def test_short_row_empty_cell_and_long_row_are_failed_rows_not_an_abort(wavs, tmp_path):
    """A short row stopped the batch ("internal error: TypeError"); an empty cell was read as the
    CSV's folder ("is a directory"). Each is now one failed row saying what is wrong; the good
    pairs are scored."""
    p = wavs / "rough.csv"
    p.write_text(
        "clean,degraded,id\n"
        "a.wav,b.wav,1\n"
        "a.wav\n"  # short: no degraded cell
        "a.wav,,3\n"  # empty degraded
        ",b.wav,4\n"  # empty clean
        "a.wav,b,c.wav,5\n"  # one field too many (an unquoted comma in a path)
        "a.wav,a.wav,6\n"
    )
    out = tmp_path / "res.csv"
    r = cli("batch", p, "--out", out, "--metrics", "stoi")
    assert r.exit_code == 3, r.stderr
    rows = rows_of(out)
    assert len(rows) == 6 and [x["id"] for i, x in enumerate(rows) if i != 4] == ["1", "", "3", "4", "6"]
    errors = [x["error"] for x in rows]
    assert errors[0] == errors[5] == ""
    assert f"{p} line 3: " in errors[1] and "no 'degraded' cell" in errors[1]
    assert f"{p} line 4: empty path in the 'degraded' column" in errors[2]
    assert f"{p} line 5: empty path in the 'clean' column" in errors[3]
    assert f"{p} line 6: " in errors[4] and "4 fields" in errors[4] and "header has 3" in errors[4]
    assert all(x["stoi"] == "" for x in rows[1:5]) and rows[0]["stoi"] and rows[5]["stoi"]
    assert rows[2]["degraded"] == "" and rows[3]["clean"] == ""  # not the CSV's folder
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr


def test_help_says_relative_paths_resolve_against_the_csv_folder():
    r = cli("batch", "--help")
    text = " ".join(r.stdout.split())
    assert "relative paths resolve against the CSV's folder" in text
    assert "--recursive" in text


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_a_clean_stem_with_double_underscore_pairs_with_its_twin(tmp_path):
    """`x__y.wav` clean did not pair with `x__y.wav` degraded (the degraded stem was cut at its
    first `__`): the full stem is tried first, then shorter `__` prefixes."""
    c, d = tmp_path / "clean", tmp_path / "deg"
    for name in ("x.wav", "x__y.wav"):
        _touch(c / name)
    for name in ("x__y.wav", "x__y__noise_low.wav", "x__noise_low.wav", "x.wav", "z__noise_low.wav"):
        _touch(d / name)
    got = {p.degraded.name: p.clean.name for p in pairs_from_dirs(c, d)}
    assert got == {
        "x__y.wav": "x__y.wav",
        "x__y__noise_low.wav": "x__y.wav",
        "x__noise_low.wav": "x.wav",
        "x.wav": "x.wav",
    }


def test_folders_recursive_pair_by_relative_path_and_stem(tmp_path):
    c, d = tmp_path / "clean", tmp_path / "deg"
    for name in ("top.wav", "spk1/u1.wav", "spk2/u1.wav", "spk2/deep/u2.flac"):
        _touch(c / name)
    for name in ("top__noise_low.wav", "spk1/u1__noise_low.wav", "spk2/u1.wav", "spk2/deep/u2__bitrate_high.wav"):
        _touch(d / name)
    _touch(d / "spk3" / "u1.wav")  # no clean twin in clean/spk3
    got = {str(p.degraded.relative_to(d)): str(p.clean.relative_to(c)) for p in pairs_from_dirs(c, d, recursive=True)}
    assert got == {
        "top__noise_low.wav": "top.wav",
        "spk1/u1__noise_low.wav": "spk1/u1.wav",
        "spk2/u1.wav": "spk2/u1.wav",
        "spk2/deep/u2__bitrate_high.wav": "spk2/deep/u2.flac",
    }
    assert {str(p.degraded.relative_to(d)) for p in pairs_from_dirs(c, d)} == {"top__noise_low.wav"}
    assert len(group_by_clean(pairs_from_dirs(c, d, recursive=True))) == 4


def test_recursive_from_the_command_line(wavs, tmp_path):
    c, d = tmp_path / "clean", tmp_path / "deg"
    (c / "s").mkdir(parents=True)
    (d / "s").mkdir(parents=True)
    (c / "s" / "a.wav").write_bytes((wavs / "a.wav").read_bytes())
    (d / "s" / "a__noise_low.wav").write_bytes((wavs / "b.wav").read_bytes())
    out = tmp_path / "res.csv"
    assert cli("batch", c, d, "--out", out, "--metrics", "stoi").exit_code == 2  # nothing directly in them
    r = cli("batch", c, d, "--out", out, "--metrics", "stoi", "--recursive")
    assert r.exit_code == 0, r.stderr
    assert [x["degraded"] for x in rows_of(out)] == [str(d / "s" / "a__noise_low.wav")]
