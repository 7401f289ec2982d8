"""A constant delay between clean and degraded is measured for every pair, reported, and with
``--align delay`` compensated before scoring (issue 11, item 4). The estimator itself: test_delay."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from helpers import cli, read
from pqeval.audio import from_array
from pqeval.scoring import ScoreOptions, Scorer

CLEAN = "speech_libri_198_f.wav"


@pytest.fixture(scope="module")
def delayed(tmp_path_factory):
    """clean.wav and copies delayed by 10, 100 and 500 ms (zeros in front, same length)."""
    d = tmp_path_factory.mktemp("delay")
    x, sr = read(CLEAN)
    sf.write(str(d / "clean.wav"), x, sr, subtype="FLOAT")
    for ms in (10, 100, 500):
        n = sr * ms // 1000
        sf.write(str(d / f"clean__delay_{ms}.wav"), np.concatenate([np.zeros(n), x])[: len(x)], sr, subtype="FLOAT")
    return d


@pytest.mark.parametrize("ms", [10, 100, 500])
def test_delay_is_reported_in_notes_and_json(delayed, use_models, ms):
    r = cli("score", delayed / "clean.wav", delayed / f"clean__delay_{ms}.wav", "--metrics", "stoi", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["delay"]["reliable"] and abs(out["delay"]["seconds"] - ms / 1000) <= 0.001
    assert any(f"lags the clean by {ms:.1f} ms" in n for n in out["notes"])
    assert out["metrics"]["stoi"]["value"] < 0.9  # report only: the numbers are those of the misaligned pair


@pytest.mark.parametrize("ms", [10, 100, 500])
def test_align_delay_restores_stoi(delayed, use_models, ms):
    """Compensated, STOI is within 0.01 of the undelayed pair over the same stretch."""
    x, sr = read(CLEAN)
    n = sr * ms // 1000
    clean_part = x[: len(x) - n]
    undelayed = Scorer(ScoreOptions(metrics=("stoi",))).score(
        from_array(clean_part, sr, "a.wav"), from_array(clean_part.copy(), sr, "b.wav")
    )
    r = cli(
        "score",
        delayed / "clean.wav",
        delayed / f"clean__delay_{ms}.wav",
        "--metrics",
        "stoi",
        "--json",
        "--align",
        "delay",
    )
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and any("compensated (--align delay)" in n for n in out["notes"])
    assert abs(out["metrics"]["stoi"]["value"] - undelayed.metrics["stoi"].value) <= 0.01
    assert "align=delay" in out["settings"]


def test_no_delay_no_note_and_batch_records_it(delayed, use_models, tmp_path):
    """The undelayed pair has delay 0 and no note; the batch CSV has delay_s for every pair."""
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "clean,degraded\n"
        + "".join(f"{delayed}/clean.wav,{delayed}/clean__delay_{ms}.wav\n" for ms in (10, 500))
        + f"{delayed}/clean.wav,{delayed}/clean.wav\n"
    )
    r = cli("batch", pairs, "--out", tmp_path / "r.csv", "--metrics", "stoi")
    assert r.exit_code == 0, r.stderr
    with open(tmp_path / "r.csv") as f:
        rows = {row["degraded"].rsplit("/", 1)[1]: row for row in csv.DictReader(f)}
    assert abs(float(rows["clean__delay_10.wav"]["delay_s"]) - 0.010) <= 0.001
    assert abs(float(rows["clean__delay_500.wav"]["delay_s"]) - 0.500) <= 0.001
    assert float(rows["clean.wav"]["delay_s"]) == 0.0 and "lags" not in rows["clean.wav"]["notes"]


def test_align_is_in_the_resume_key():
    assert ScoreOptions(align="delay").key() != ScoreOptions().key()
