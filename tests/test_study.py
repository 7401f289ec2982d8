"""The study end to end on real recordings (two clips to stay fast)."""

import csv
import shutil
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from helpers import shared
from pqeval.content import content_of
from pqeval.scoring import ScoreOptions
from pqeval.study import ReportResult, StudyResult, run_study

CLIPS = ["speech_cmu_goforward.wav", "speech_libri_5703_m.wav", "music_trumpet_sorohan_44k_stereo.flac"]
METRICS = ("vggish", "openl3", "pesq_wb", "stoi", "estoi")
OPTIONS = ScoreOptions(metrics=METRICS, openl3_hop=1.0)  # a coarse OpenL3 hop keeps the test affordable


def read_table(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def study(tmp_path_factory, models_dir):
    import pqeval.session as session

    mp = pytest.MonkeyPatch()
    mp.setattr(session, "CHECKOUT_MODELS", models_dir)
    mp.setenv("PQEVAL_MODELS", str(models_dir))
    src = tmp_path_factory.mktemp("originals")
    for c in CLIPS:
        shutil.copy(shared(c), src / c)
    (src / "broken_speech.wav").write_bytes(b"RIFF....WAVEjunk")
    out = tmp_path_factory.mktemp("study out")
    res = run_study(src, out, options=OPTIONS)
    yield src, out, res
    mp.undo()


def test_outputs(study):
    src, out, res = study
    rows = read_table(out / "all_metrics.csv")
    assert len(rows) == res.pairs == 3 * 3 * 3
    assert res.skipped_inputs and "broken_speech.wav" in next(iter(res.skipped_inputs.values()))
    assert {r["content"] for r in rows} == {"speech", "music"}
    kinds, levels = ("noise", "bitrate", "bitdepth"), ("low", "high", "extreme")
    assert {(r["degradation"], r["level"]) for r in rows} == {(k, lv) for k in kinds for lv in levels}
    for name in ("summary.csv", "correlations.csv", "report.md"):
        assert (out / name).stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "seeded" in report and "not perceptual" in report
    pngs = sorted((out / "figures").glob("*.png"))
    assert any(p.name.startswith("scatter_vggish_vs_pesq") for p in pngs)
    assert any(p.name.startswith("scatter_openl3_vs_stoi") for p in pngs)
    assert all(r["openl3"] and r["openl3_weights"] == "seeded:0" for r in rows)
    assert any(p.name.startswith("heatmap_") for p in pngs) and any(p.name.startswith("bars_") for p in pngs)
    for p in pngs:
        assert f"figures/{p.name}" in report
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    for p in pngs:  # every figure also as vector graphics
        assert p.with_suffix(".pdf").is_file() and p.with_suffix(".svg").is_file()
    assert any(p.name.startswith("pooled_speech") for p in pngs)
    corr = read_table(out / "correlations.csv")
    assert any(c["pearson_r"] for c in corr)
    assert isinstance(res, StudyResult) and isinstance(res.report, ReportResult)
    # The music clip is scored with PESQ/STOI: the report says these are speech measures.
    assert res.report.content_warnings and "speech measures on music" in report


@pytest.mark.parametrize("kind", ["noise", "bitdepth"])
@pytest.mark.parametrize("metric", ["pesq_wb", "stoi"])
def test_scores_fall_from_low_to_extreme_on_speech(study, kind, metric):
    """The study's main finding: classic scores fall as the degradation gets stronger."""
    _, out, _ = study
    rows = [r for r in read_table(out / "all_metrics.csv") if r["content"] == "speech" and r["degradation"] == kind]
    for f in {r["file"] for r in rows}:
        v = {r["level"]: float(r[metric]) for r in rows if r["file"] == f}
        assert v["low"] > v["high"] > v["extreme"], (f, kind, metric, v)


def test_rerun_reuses_everything(study):
    src, out, res = study
    again = run_study(src, out, options=OPTIONS, figures=False)
    assert again.scored == 0 and again.reused == res.scored and again.pairs == res.pairs


def test_content_of():
    assert content_of("speech_libri_198_f") == "speech"
    assert content_of("music_brahms") == "music" and content_of("env_robin") == "env"
    assert content_of("recording1") == "unknown"
