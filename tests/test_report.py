"""The study's reporting stage (pqeval.study.report and its parts) on synthetic results tables."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from helpers import ROOT
from pqeval.errors import UsageError
from pqeval.study import write_report
from pqeval.study.kinds import LEVELS

FILES = {"speech_a": "speech", "speech_b": "speech", "music_a": "music"}
DEGRADATIONS = ("noise", "bitdepth", "mp3")
METRICS = ("vggish", "openl3", "pesq_wb", "stoi", "estoi")
SEEDED_PHRASE = "scores come from seeded weights and are not perceptual measurements"


def make_rows(seed: int = 0, weights: str = "seeded:0", files: dict[str, str] | None = None) -> list[dict]:
    """9 rows per file (27 for FILES) whose neural scores track the classic ones in known ways
    (vggish ~ 0.5 + 0.1*pesq)."""
    rng = np.random.default_rng(seed)
    rows = []
    for f, content in (files or FILES).items():
        for d_i, deg in enumerate(DEGRADATIONS):
            for l_i, level in enumerate(LEVELS):
                pesq = 4.3 - 1.1 * l_i - 0.3 * d_i + rng.normal(0, 0.1)
                stoi = 0.97 - 0.12 * l_i - 0.04 * d_i + rng.normal(0, 0.01)
                estoi = stoi - 0.1 + rng.normal(0, 0.01)
                vgg = 0.5 + 0.1 * pesq + rng.normal(0, 0.02)
                ol3 = 0.2 + 0.7 * stoi + (0.05 if content == "music" else 0.0) + rng.normal(0, 0.03)
                row = {
                    "file": f,
                    "content": content,
                    "degradation": deg,
                    "level": level,
                    "clean": f"/c/{f}.wav",
                    "degraded": f"/d/{f}_{deg}_{level}.wav",
                    "notes": "",
                }
                for m, v in (("vggish", vgg), ("openl3", ol3), ("pesq_wb", pesq), ("stoi", stoi), ("estoi", estoi)):
                    row[m] = repr(float(v))
                    row[f"{m}_reason"] = ""
                    if m in ("vggish", "openl3"):
                        row[f"{m}_min"] = repr(float(v) - 0.1)
                        row[f"{m}_weights"] = weights
                rows.append(row)
    return rows


def header_for(metrics=METRICS) -> list[str]:
    h = ["file", "content", "degradation", "level", "clean", "degraded"]
    for m in metrics:
        h += [m, f"{m}_reason"] + ([f"{m}_min", f"{m}_weights"] if m in ("vggish", "openl3") else [])
    return h + ["notes"]


def write_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or header_for()
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def read_out(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def fnum(s: str) -> float:
    return float(s) if s != "" else math.nan


def col(rows, m, content=None):
    return np.array([fnum(r[m]) for r in rows if content is None or r["content"] == content])


def expected_stems() -> set[str]:
    names = {f"bars_{f}" for f in FILES} | {"pooled_speech", "pooled_music"}
    names |= {f"scatter_{n}_vs_{c}" for n in ("vggish", "openl3") for c in ("pesq_wb", "stoi", "estoi")}
    names |= {"heatmap_all", "heatmap_speech", "heatmap_music"}
    return names


def expected_pngs() -> set[str]:
    return {f"{s}.png" for s in expected_stems()}


def expected_figure_files() -> set[str]:
    return {f"{s}.{ext}" for s in expected_stems() for ext in ("png", "pdf", "svg")}


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """One full run (figures on) shared by the tests that only read its outputs."""
    d = tmp_path_factory.mktemp("report")
    rows = make_rows()
    csv_path = write_csv(d / "all_metrics.csv", rows)
    out = d / "out"
    res = write_report(csv_path, out)
    return rows, out, res


def test_correlations_match_scipy(full_report):
    rows, out, res = full_report
    got = {(r["content"], r["neural"], r["classic"]): r for r in read_out(out / "correlations.csv")}
    assert len(got) == 3 * 2 * 3  # (all, speech, music) x 2 neural x 3 classic
    for content in ("all", "speech", "music"):
        sel = None if content == "all" else content
        for n in ("vggish", "openl3"):
            for c in ("pesq_wb", "stoi", "estoi"):
                x, y = col(rows, n, sel), col(rows, c, sel)
                pr, sr = stats.pearsonr(x, y), stats.spearmanr(x, y)
                row = got[(content, n, c)]
                assert int(row["n"]) == x.size
                assert float(row["pearson_r"]) == pytest.approx(pr.statistic, abs=1e-9)
                assert float(row["pearson_p"]) == pytest.approx(pr.pvalue, rel=1e-6, abs=1e-300)
                assert float(row["spearman_rho"]) == pytest.approx(sr.statistic, abs=1e-9)
                assert float(row["spearman_p"]) == pytest.approx(sr.pvalue, rel=1e-6, abs=1e-300)
                assert row["reason"] == ""
    # The construction makes vggish track PESQ strongly: the report must say so.
    vp = got[("all", "vggish", "pesq_wb")]
    assert float(vp["pearson_r"]) > 0.9
    assert len(res.correlations) == 18
    assert {(c.content, c.neural, c.classic) for c in res.correlations} == set(got)


def test_nan_rows_dropped_and_reported(tmp_path):
    rows = make_rows(seed=1)
    rows[0]["pesq_wb"], rows[0]["pesq_wb_reason"] = "", "no utterances detected"
    rows[5]["vggish"], rows[5]["vggish_reason"] = "", "clip shorter than 0.975 s: 0 examples"
    rows[20]["stoi"] = "nan"  # literal NaN, no reason
    res = write_report(write_csv(tmp_path / "m.csv", rows), tmp_path / "out", figures=False)
    got = {(r["content"], r["neural"], r["classic"]): r for r in read_out(res.correlations_csv)}

    x, y = col(rows, "vggish"), col(rows, "pesq_wb")
    keep = np.isfinite(x) & np.isfinite(y)
    assert keep.sum() == 25
    row = got[("all", "vggish", "pesq_wb")]
    assert int(row["n"]) == 25
    assert float(row["pearson_r"]) == pytest.approx(stats.pearsonr(x[keep], y[keep]).statistic, abs=1e-9)
    assert float(row["spearman_rho"]) == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic, abs=1e-9)
    assert int(got[("all", "openl3", "stoi")]["n"]) == 26
    assert int(got[("all", "openl3", "estoi")]["n"]) == 27

    text = res.report.read_text()
    section = text.split("## Rows with NaN metrics", 1)[1]
    assert "no utterances detected" in section
    assert "clip shorter than 0.975 s: 0 examples" in section
    assert re.search(r"\| music_a \|.*\| stoi \| \(no reason recorded\) \|", section)


def test_too_few_points_and_constant_give_nan_with_reason_no_warning(tmp_path):
    rows = make_rows(seed=2)
    for r in rows:
        if r["content"] == "music":
            r["estoi"] = "0.5"  # constant within music
            if r["level"] != "low" or r["degradation"] != "noise":
                r["stoi"], r["stoi_reason"] = "", "too short"  # music keeps 1 stoi point
    csv_path = write_csv(tmp_path / "m.csv", rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = write_report(csv_path, tmp_path / "out", figures=False)
    got = {(r["content"], r["neural"], r["classic"]): r for r in read_out(res.correlations_csv)}
    few = got[("music", "vggish", "stoi")]
    assert few["n"] == "1" and few["pearson_r"] == "" and few["spearman_rho"] == ""
    assert "fewer than 3" in few["reason"]
    const = got[("music", "openl3", "estoi")]
    assert const["n"] == "9" and const["pearson_r"] == "" and const["pearson_p"] == ""
    assert const["reason"] == "constant input (classic score identical in all 9 pairs)"
    assert got[("speech", "vggish", "stoi")]["pearson_r"] != ""  # other groups unaffected
    assert "fewer than 3" in res.report.read_text()


def test_summary_means_and_ranges(full_report):
    rows, out, _ = full_report
    summ = read_out(out / "summary.csv")
    assert len(summ) == 2 * 5 * 3  # content x metric x degradation
    for s in summ:
        sel = [r for r in rows if r["content"] == s["content"] and r["degradation"] == s["degradation"]]
        means = {lv: np.mean([float(r[s["metric"]]) for r in sel if r["level"] == lv]) for lv in LEVELS}
        for lv in LEVELS:
            assert float(s[f"mean_{lv}"]) == pytest.approx(means[lv], abs=1e-9)
            assert int(s[f"n_{lv}"]) == (2 if s["content"] == "speech" else 1)
        assert float(s["range_low_to_extreme"]) == pytest.approx(means["extreme"] - means["low"], abs=1e-9)
        assert int(s["n"]) == (6 if s["content"] == "speech" else 3)
    key = ("speech", "pesq_wb", "noise")
    pesq_noise = next(s for s in summ if (s["content"], s["metric"], s["degradation"]) == key)
    assert float(pesq_noise["range_low_to_extreme"]) < -1.5  # built to fall ~2.2 from low to extreme
    assert pesq_noise["note"] == ""  # classic metrics carry no caveat
    vgg = next(s for s in summ if s["metric"] == "vggish")
    assert "seeded" in vgg["note"]
    md = (out / "report.md").read_text()
    assert "## Summary" in md and "| speech | PESQ-WB | noise |" in md


def test_every_expected_png_is_valid(full_report):
    import matplotlib.image as mpimg

    _, out, res = full_report
    assert res.figures_skipped is None
    assert {p.name for p in (out / "figures").glob("*.png")} == expected_pngs()
    assert {p.name for p in res.figures if p.suffix == ".png"} == expected_pngs()
    assert not list(out.glob("*.png"))
    for p in (out / "figures").glob("*.png"):
        assert p.stat().st_size > 1000
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[2] in (3, 4)
        assert img.shape[0] >= 300 and img.shape[1] >= 400
        assert img[..., :3].std() > 0.05  # not a blank canvas


def test_report_links_exist_and_cover_every_figure(full_report):
    _, out, res = full_report
    md = res.report.read_text()
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert links
    for link in links:
        assert not os.path.isabs(link)
        assert (out / link).is_file(), link
    linked = {Path(link).name for link in links}
    assert expected_pngs() <= linked
    assert {"summary.csv", "correlations.csv", "all_metrics.csv"} <= linked
    assert "## Headline correlations" in md
    assert re.search(r"VGGish cosine.*vs \*\*PESQ-WB\*\*, all content: Pearson r = 0\.9\d", md)


def test_seeded_warning_only_when_not_pretrained(tmp_path):
    seeded = write_report(write_csv(tmp_path / "s.csv", make_rows(weights="seeded:0")), tmp_path / "s", figures=False)
    text = seeded.report.read_text()
    head = text.split("## Inputs", 1)[0]
    assert "these VGGish/OpenL3 " + SEEDED_PHRASE in head  # at the top, before anything else
    assert "weights: seeded — not a perceptual measurement" in head
    # Every mention of VGGish in the tables carries the label.
    table_lines = [ln for ln in text.splitlines() if ln.startswith("|") and "VGGish" in ln]
    assert table_lines and all("seeded weights — not perceptual" in ln for ln in table_lines)
    assert all("seeded" in r["weights_note"] for r in read_out(seeded.correlations_csv))

    pre = make_rows(weights="pretrained:vggish-10086976.pth abcd")
    for r in pre:
        r["openl3_weights"] = "pretrained:openl3_audio_mel256_music.h5 1234"
    clean = write_report(write_csv(tmp_path / "p.csv", pre), tmp_path / "p", figures=False)
    text = clean.report.read_text()
    assert "not perceptual" not in text and "WARNING: these" not in text and "seeded" not in text
    assert clean.provenance_warnings == []
    assert clean.content_warnings  # music rows with PESQ/STOI: a different warning, tested below
    assert all(r["weights_note"] == "" for r in read_out(clean.correlations_csv))

    # Only one model seeded: the warning names that one.
    mixed = make_rows(weights="pretrained:vggish-10086976.pth abcd")
    for r in mixed:
        r["openl3_weights"] = "seeded:3"
    text = write_report(write_csv(tmp_path / "x.csv", mixed), tmp_path / "x", figures=False).report.read_text()
    assert "these OpenL3 " + SEEDED_PHRASE in text


def test_without_matplotlib_tables_and_report_still_written(tmp_path):
    csv_path = write_csv(tmp_path / "all_metrics.csv", make_rows())
    out = tmp_path / "out"
    code = f"""
import sys
sys.modules['matplotlib'] = None
from pqeval.study import write_report
res = write_report({str(csv_path)!r}, {str(out)!r})
print(res.figures_skipped)
assert res.figures == []
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runtime")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "matplotlib is not installed" in p.stdout
    assert {x.name for x in out.iterdir()} == {"summary.csv", "correlations.csv", "report.md"}
    md = (out / "report.md").read_text()
    assert "Figures were skipped" in md and "matplotlib is not installed" in md and "pqeval[plots]" in md
    assert len(read_out(out / "correlations.csv")) == 18 and len(read_out(out / "summary.csv")) == 30


def test_atomic_writes_leave_no_temp_files(full_report, tmp_path, monkeypatch):
    _, out, _ = full_report
    assert {p.name for p in out.iterdir()} == {"figures", "summary.csv", "correlations.csv", "report.md"}
    assert {p.name for p in (out / "figures").iterdir()} == expected_figure_files()
    # Temp files are created 0600; the outputs get the usual umask-based mode.
    mask = os.umask(0o022)
    os.umask(mask)
    for p in [*out.glob("*.*"), *(out / "figures").iterdir()]:
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p.name

    # A failure at the final rename keeps the previous file and removes the temp file.
    csv_path = write_csv(tmp_path / "m.csv", make_rows())
    dest = tmp_path / "out"
    write_report(csv_path, dest, figures=False)
    before = (dest / "report.md").read_bytes()
    import pqeval.study.report as report

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", boom)
    with pytest.raises((OSError, UsageError)):
        write_report(write_csv(tmp_path / "m2.csv", make_rows(seed=9)), dest, figures=False)
    assert {p.name for p in dest.iterdir()} == {"summary.csv", "correlations.csv", "report.md"}
    assert (dest / "report.md").read_bytes() == before


def test_empty_metric_figures_skipped_cleanly(tmp_path):
    rows = make_rows(seed=3)
    for r in rows:
        r["openl3"], r["openl3_reason"], r["openl3_weights"] = "", "model openl3 not installed", ""
    res = write_report(write_csv(tmp_path / "m.csv", rows), tmp_path / "out")
    names = {p.name for p in (tmp_path / "out" / "figures").glob("*.png")}
    assert not any("openl3" in n for n in names)
    assert {"scatter_vggish_vs_pesq_wb.png", "heatmap_all.png", "bars_music_a.png"} <= names
    assert len(res.figure_notes) == 3 and all("openl3" in n for n in res.figure_notes)
    got = [r for r in read_out(res.correlations_csv) if r["neural"] == "openl3"]
    assert got and all(r["n"] == "0" and "fewer than 3" in r["reason"] for r in got)
    md = res.report.read_text()
    assert "model openl3 not installed" in md and "Figures not drawn" in md
    assert "OpenL3 " + SEEDED_PHRASE not in md  # no OpenL3 scores presented -> only VGGish flagged
    assert "these VGGish " + SEEDED_PHRASE in md


def test_missing_columns_pcm_and_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        write_report(tmp_path / "nope.csv", tmp_path / "out")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,content,vggish\na,speech,0.9\n")
    with pytest.raises(UsageError, match="degradation"):
        write_report(bad, tmp_path / "out")
    # Only some metric columns present (no neural): tables still written, no scatter/heatmaps.
    header = header_for(("pesq_wb", "stoi"))
    res = write_report(write_csv(tmp_path / "c.csv", make_rows(), header), tmp_path / "c")
    assert read_out(res.correlations_csv) == []
    assert {p.name for p in res.figures} == {
        f"{stem}.{ext}"
        for stem in [*(f"bars_{f}" for f in FILES), "pooled_speech", "pooled_music"]
        for ext in ("png", "pdf", "svg")
    }


# --- paper-grade output: formats, confidence intervals, fitted axes, batch tables, warnings ----


BIG_FILES = {**{f"speech_{i}": "speech" for i in range(5)}, **{f"music_{i}": "music" for i in range(4)}}


@pytest.fixture(scope="module")
def big_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    rows = make_rows(seed=4, files=BIG_FILES)  # every bar and group has >= 3 values
    res = write_report(write_csv(d / "all_metrics.csv", rows), d / "out", figures=False)
    return rows, res


def test_every_figure_in_png_pdf_and_svg(full_report):
    _, out, res = full_report
    assert {p.name for p in (out / "figures").iterdir()} == expected_figure_files()
    assert {p.name for p in res.figures} == expected_figure_files()
    for p in res.figures:
        head = p.read_bytes()[:200]
        magic = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}[p.suffix]
        assert head.startswith(magic), p.name
        assert p.suffix != ".svg" or b"<svg" in p.read_bytes()[:2000]
    md = res.report.read_text()
    for stem in expected_stems():  # every format is linked from the report
        for ext in ("png", "pdf", "svg"):
            assert f"figures/{stem}.{ext}" in md


def test_pooled_per_content_figure_and_values(full_report):
    from pqeval.results import read_results
    from pqeval.study.stats import pooled_by_content

    rows, out, res = full_report
    assert (out / "figures" / "pooled_speech.png").is_file() and (out / "figures" / "pooled_music.pdf").is_file()
    assert "Bars pooled over files per content type" in res.report.read_text()
    # The pooled mean is the mean over files of each file's mean.
    table, _ = read_results(out.parent / "all_metrics.csv")
    table.append(dataclasses.replace(table[0], values={**table[0].values, "pesq_wb": 1.0}))  # 2 rows, one file
    pooled = pooled_by_content(table, "pesq_wb")
    f0 = table[0]
    files = {r.file for r in table if r.content == f0.content}
    per_file = []
    for f in files:
        v = [r.values["pesq_wb"] for r in table if (r.file, r.degradation, r.level) == (f, f0.degradation, f0.level)]
        per_file.append(np.mean(v))
    s = pooled[(f0.content, f0.degradation, f0.level)]
    assert s.n == len(files) and s.mean == pytest.approx(np.mean(per_file), abs=1e-12)


def test_summary_ci_columns_contain_the_mean(big_report, full_report):
    _, res = big_report
    summ = read_out(res.summary_csv)
    assert len(summ) == 2 * 5 * 3
    for s in summ:
        for lv in LEVELS:
            lo, hi, mean = fnum(s[f"ci95_low_{lv}"]), fnum(s[f"ci95_high_{lv}"]), float(s[f"mean_{lv}"])
            assert int(s[f"n_{lv}"]) >= 3
            assert lo <= mean <= hi and hi > lo, (s, lv)
    # Two speech files per cell in the small table: too few for an interval -> empty cells.
    small = read_out(full_report[1] / "summary.csv")
    assert all(r["ci95_low_low"] == "" and r["ci95_high_extreme"] == "" for r in small)
    assert {"mean_low", "range_low_to_extreme", "n_low", "n", "note"} <= set(small[0])


def test_correlation_ci_columns_contain_the_coefficient(big_report):
    _, res = big_report
    got = read_out(res.correlations_csv)
    assert len(got) == 18
    for r in got:
        for coef, name in (("pearson_r", "pearson"), ("spearman_rho", "spearman")):
            lo, hi = float(r[f"{name}_ci95_low"]), float(r[f"{name}_ci95_high"])
            assert -1.0 <= lo <= float(r[coef]) <= hi <= 1.0, r
    for c in res.correlations:
        assert c.pearson_ci.contains(c.pearson_r) and c.spearman_ci.contains(c.spearman_rho)


def test_bootstrap_equals_hand_computed_and_narrows_with_data():
    from pqeval.study import stats

    x = np.random.default_rng(7).normal(3.0, 1.0, 200)
    ci = stats.bootstrap_ci(x[:20])
    # By hand: default_rng(0), blocks of CHUNK resamples of n indices, percentiles 2.5 / 97.5.
    rng = np.random.default_rng(0)
    means = np.concatenate(
        [
            x[:20][rng.integers(0, 20, size=(stats.CHUNK, 20))].mean(axis=1)
            for _ in range(stats.BOOTSTRAP_RESAMPLES // stats.CHUNK)
        ]
    )
    assert (ci.low, ci.high) == tuple(np.percentile(means, [2.5, 97.5]))
    assert stats.bootstrap_ci(x[:20]) == ci  # seeded: the same every time
    wide, narrow = stats.bootstrap_ci(x[:10]), stats.bootstrap_ci(x)
    assert narrow.high - narrow.low < 0.6 * (wide.high - wide.low)
    assert narrow.contains(float(x.mean()))
    few = stats.bootstrap_ci([1.0, 2.0])
    assert not few.finite and "fewer than 3" in few.reason
    # Correlation CIs: Pearson by hand on the same resamples.
    y = 0.5 * x + np.random.default_rng(8).normal(0, 1, 200)
    pci, sci = stats.correlation_cis(x[:30], y[:30])
    rng = np.random.default_rng(0)
    rs = []
    for _ in range(stats.BOOTSTRAP_RESAMPLES // stats.CHUNK):
        idx = rng.integers(0, 30, size=(stats.CHUNK, 30))
        rs += [np.corrcoef(x[:30][i], y[:30][i])[0, 1] for i in idx]
    assert (pci.low, pci.high) == pytest.approx(tuple(np.percentile(rs, [2.5, 97.5])), abs=1e-12)
    assert sci.finite and pci.contains(stats.correlate(x[:30], y[:30])[1])


def test_cosine_bars_axis_fitted_to_the_data(tmp_path):
    from pqeval.study import figures
    from pqeval.study.table import load_table

    rows = make_rows(seed=5, weights="pretrained:x 1")
    for r in rows:  # OpenL3 cosines all within 0.986..1.000, as on real recordings
        r["openl3"] = repr(1.0 - 0.014 * (LEVELS.index(r["level"]) / 2) * (0.5 + 0.5 * (r["file"] != "music_a")))
    table = load_table(write_csv(tmp_path / "m.csv", rows))
    for fig in (figures.file_bars(table, "speech_a"), figures.pooled_bars(table, "speech")):
        ax = next(a for a in fig.axes if a.get_title().startswith("OpenL3"))
        lo, hi = ax.get_ylim()
        assert 0.95 <= lo <= 0.986 and 1.0 <= hi <= 1.01, (lo, hi)
    # A wide spread is clamped to the metric's range plus a 0.5 % pad (PESQ-WB: 1..4.64).
    assert figures.fit_ylim("pesq_wb", [1.2, 4.5]) == pytest.approx((1.0 - 0.005 * 3.64, 4.64 + 0.005 * 3.64))
    assert figures.fit_ylim("pesq_wb", [2.0, 3.0]) == pytest.approx((2.0 - 0.12, 3.0 + 0.12))
    assert figures.fit_ylim("stoi", []) == (0.0, 1.0)


def test_batch_csv_is_read_and_reported(tmp_path):
    from pqeval.results import read_results, to_csv

    rows = make_rows(seed=6)
    batch = []
    for r in rows:
        b = {k: v for k, v in r.items() if k not in ("file", "content", "degradation", "level")}
        b["degraded"] = f"/d/{r['file']}__{r['degradation']}_{r['level']}.wav"
        batch.append(b)
    batch[0]["degraded"] = "/d/some other name.wav"
    header = [h for h in header_for() if h not in ("file", "content", "degradation", "level")]
    path = tmp_path / "results.csv"
    path.write_text(to_csv(batch, header))
    got, metrics = read_results(path)
    assert metrics == ["vggish", "openl3", "pesq_wb", "stoi", "estoi"]
    assert (got[0].file, got[0].content, got[0].degradation, got[0].level) == ("speech_a", "speech", "unknown", "")
    for g, r in zip(got[1:], rows[1:], strict=True):
        assert (g.file, g.content, g.degradation, g.level) == (r["file"], r["content"], r["degradation"], r["level"])
        assert g.values["pesq_wb"] == float(r["pesq_wb"]) and g.weights["vggish"] == "seeded:0"
    res = write_report(path, tmp_path / "out", formats=("png",))
    assert {p.suffix for p in res.figures} == {".png"}
    assert (tmp_path / "out" / "figures" / "bars_speech_a.png").is_file()
    summ = read_out(res.summary_csv)
    assert {s["degradation"] for s in summ} == {"noise", "bitdepth", "mp3", "unknown"}


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage\x00\xff" * 40, b"a,b\n1,2\n", b"clean,degraded\nx,y\n"])
def test_malformed_table_is_one_line_usage_error(tmp_path, content):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    with pytest.raises(UsageError) as info:
        write_report(bad, tmp_path / "out")
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_out_dir_that_is_a_file_and_bad_formats_refused(tmp_path):
    csv_path = write_csv(tmp_path / "all_metrics.csv", make_rows())
    with pytest.raises(UsageError, match="is a file"):
        write_report(csv_path, csv_path)
    with pytest.raises(UsageError, match="is a file"):
        write_report(csv_path, tmp_path / "all_metrics.csv", figures=False)
    with pytest.raises(UsageError, match="gif"):
        write_report(csv_path, tmp_path / "o", formats=("png", "gif"))
    assert not (tmp_path / "o").exists()
    res = write_report(csv_path, tmp_path / "o", formats="pdf")
    assert res.figures and {p.suffix for p in res.figures} == {".pdf"}


def test_music_warning_for_speech_measures(full_report, tmp_path):
    _, out, res = full_report
    md = res.report.read_text()
    head = md.split("## Inputs", 1)[0]
    assert "WARNING: speech measures on music" in head and "PESQ-WB is a speech measure" in head
    assert any("STOI" in w for w in res.content_warnings) and any("PESQ-WB" in w for w in res.content_warnings)
    for s in read_out(out / "summary.csv"):
        caveat = "speech measure on music" in s["note"]
        assert caveat == (s["content"] == "music" and s["metric"] in ("pesq_wb", "stoi", "estoi")), s
    music_corr = [c for c in read_out(out / "correlations.csv") if c["content"] == "music"]
    assert music_corr and all("speech measure on music" in c["content_note"] for c in music_corr)

    speech_only = [r for r in make_rows() if r["content"] == "speech"]
    clean = write_report(write_csv(tmp_path / "s.csv", speech_only), tmp_path / "s", figures=False)
    assert clean.content_warnings == []
    text = clean.report.read_text()
    assert "speech measure" not in text and "speech measures on music" not in text
    assert all("music" not in s["note"] for s in read_out(clean.summary_csv))
