"""Engines and precisions (``--engine``, ``--precision``): refusals with one line, what every output
records, and (parity tier) the accuracy each fast path guarantees (``registry.ACCURACY``) on a
fixed clip against ONNX Runtime fp32, with the seeded exports. No timed assertions."""

from __future__ import annotations

import csv
import json
import shutil
import sys

import numpy as np
import pytest

from helpers import AUDIO, ROOT, cli, shared
from pqeval import cpu, inference
from pqeval.errors import UsageError
from pqeval.registry import ACCURACY, ENGINES, FAMILIES, PRECISIONS
from pqeval.scoring import ScoreOptions

CLEAN, DEGRADED = "pesq_speech.wav", "pesq_speech_bab_0dB.wav"
OPENVINO = inference.installed("openvino")
BF16_HERE = cpu.missing_for("bf16") is None


def test_missing_instruction_sets_are_named():
    assert cpu.missing_for("fp32", frozenset()) is None
    assert cpu.missing_for("bf16", frozenset({"avx2", "avx512f", "avx512_vnni"}), x86=True) == "AVX512_BF16 or AMX-BF16"
    assert cpu.missing_for("bf16", frozenset({"amx_bf16"}), x86=True) is None
    assert cpu.missing_for("bf16", frozenset({"avx512_bf16"}), x86=True) is None
    assert cpu.missing_for("int8", frozenset({"sse4_2"}), x86=True) == "AVX2"
    assert cpu.missing_for("int8", frozenset({"avx2"}), x86=True) is None
    assert cpu.missing_for("int8", frozenset(), x86=False) is None  # NEON int8 kernels
    assert "x86" in cpu.missing_for("bf16", frozenset({"bf16"}), x86=False)
    assert cpu.summary(frozenset({"amx_bf16", "avx2", "sse2"})) == ["avx2", "amx_bf16"]


def test_refusals_are_one_line(monkeypatch):
    assert "no bf16 path" in inference.refusal("ort", "bf16")
    assert "unknown engine" in inference.refusal("tensorrt", "fp32")
    assert "unknown precision" in inference.refusal("ort", "fp16")
    monkeypatch.setattr(inference, "installed", lambda engine: False)
    assert inference.refusal("openvino", "fp32") == (
        "--engine openvino needs the openvino package: pip install 'pqeval[openvino]'"
    )
    monkeypatch.setattr(inference.cpu, "missing_for", lambda precision: "AVX512_BF16 or AMX-BF16")
    monkeypatch.setattr(inference, "installed", lambda engine: True)
    why = inference.refusal("openvino", "bf16")
    assert why.startswith("--precision bf16 needs AVX512_BF16 or AMX-BF16, which this CPU (") and "\n" not in why
    with pytest.raises(UsageError, match="AVX512_BF16"):
        ScoreOptions(metrics=("openl3",), engine="openvino", precision="bf16")
    ScoreOptions(metrics=("pesq_wb",), engine="openvino", precision="bf16")  # no model runs: nothing to refuse


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--engine", "ort", "--precision", "bf16"], "--engine ort has no bf16 path"),
        (["--engine", "onnx"], "unknown engine 'onnx'"),
        (["--precision", "fp64"], "unknown precision 'fp64'"),
        (["--vggish-model", "vggish-int8fc", "--precision", "int8"], "already a compact variant"),
    ],
)
def test_cli_refuses_with_exit_2(use_models, args, says):
    r = cli("score", shared(CLEAN), shared(DEGRADED), *args)
    assert r.exit_code == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.skipif(BF16_HERE, reason="this CPU has AVX512_BF16 / AMX-BF16: bf16 is not refused here")
def test_bf16_is_refused_on_this_cpu_naming_the_instruction_set(use_models):
    r = cli("score", shared(CLEAN), shared(DEGRADED), "--engine", "openvino", "--precision", "bf16")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "AVX512_BF16 or AMX-BF16" in r.stderr if OPENVINO else "pip install" in r.stderr


def test_engines_command_lists_every_pair():
    r = cli("engines", "--json")
    assert r.exit_code == 0
    table = json.loads(r.stdout)
    assert table["cpu"] and isinstance(table["instruction_sets"], list)
    rows = {(x["engine"], x["precision"]): x for x in table["engines"]}
    assert set(rows) == {(e, p) for e in ENGINES for p in PRECISIONS}
    assert rows[("ort", "fp32")]["ok"] and rows[("ort", "fp32")]["default"]
    assert not rows[("ort", "bf16")]["ok"] and rows[("ort", "bf16")]["reason"]
    assert cli("engines").exit_code == 0


def test_outputs_record_engine_and_precision(use_models, tmp_path):
    r = cli("score", shared(CLEAN), shared(DEGRADED), "--metrics", "vggish", "--json")
    out = json.loads(r.stdout)
    assert (out["engine"], out["precision"]) == ("ort", "fp32")
    assert "engine=ort" in out["settings"] and "precision=fp32" in out["settings"]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"clean,degraded\n{shared(CLEAN)},{shared(DEGRADED)}\n")
    res = tmp_path / "out.csv"
    assert cli("batch", pairs, "--metrics", "vggish", "--out", res, "--quiet").exit_code == 0
    row = next(csv.DictReader(res.open()))
    assert (row["engine"], row["precision"]) == ("ort", "fp32")
    if OPENVINO:  # another engine: a different stamp, so the row is scored again, not reused
        r = cli("batch", pairs, "--metrics", "vggish", "--out", res, "--engine", "openvino", "--quiet")
        assert r.exit_code == 0, r.stderr
        rows = list(csv.DictReader(res.open()))
        assert [x["engine"] for x in rows] == ["openvino"]
        assert abs(float(rows[0]["vggish"]) - float(row["vggish"])) < 1e-3


def test_cache_and_resume_keys_include_engine_and_precision():
    base = ScoreOptions(metrics=("pesq_wb",))
    for change in ({"engine": "openvino"}, {"precision": "int8"}):
        other = ScoreOptions(metrics=("pesq_wb",), **change)
        assert other.key() != base.key()
        assert all(other.family_key(f) != base.family_key(f) for f in FAMILIES)
    int8 = ScoreOptions(precision="int8")
    assert int8.model_key("vggish") == "vggish-int8fc"
    assert int8.model_key("openl3") == "openl3-mel256-music-512-int8qdq"


@pytest.mark.skipif(not OPENVINO, reason="openvino is not installed (pip install 'pqeval[openvino]')")
def test_openvino_fp32_runs_the_same_files(use_models):
    a = json.loads(cli("score", shared(CLEAN), shared(DEGRADED), "--json").stdout)
    r = cli("score", shared(CLEAN), shared(DEGRADED), "--json", "--engine", "openvino")
    assert r.exit_code == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["engine"] == "openvino"
    for m in ("vggish", "openl3"):
        assert abs(a["metrics"][m]["value"] - b["metrics"][m]["value"]) < 1e-3


# --- parity tier: the accuracy of each fast path on the seeded exports -----------------------


@pytest.fixture(scope="module")
def models_with_int8(exported_models_dir, tmp_path_factory):
    """The seeded exports plus their int8 compact variants (what --precision int8 scores with)."""
    from pqeval_export.compact import audio_files, export_compact

    d = tmp_path_factory.mktemp("int8-models")
    for f in exported_models_dir.iterdir():
        shutil.copy(f, d / f.name)
    files = audio_files(AUDIO)
    export_compact(d / "vggish.onnx", FAMILIES["vggish"].int8_kind, files, quick=True)
    export_compact(d / "openl3-mel256-music-512.onnx", FAMILIES["openl3"].int8_kind, files, quick=True)
    return d


def _bench():
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    import accuracy

    return accuracy


@pytest.mark.parity
@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_fast_path_meets_its_recorded_accuracy(models_with_int8, family):
    """Every engine × precision this machine runs, on the fixed clip of bench/accuracy.py, within
    the bounds registry.ACCURACY records from bench/results/accuracy.md; the others are refused
    with one line."""
    acc = _bench()
    pair = [("fixed", *acc.fixed_clip(AUDIO))]
    ref = acc.embed_pairs(acc.embedders(models_with_int8, family, "ort", "fp32", 2), pair)
    checked = []
    for engine in ENGINES:
        for precision in PRECISIONS:
            if (engine, precision) == ("ort", "fp32"):
                continue
            why = inference.refusal(engine, precision)
            bound = ACCURACY.get((family, engine, precision))
            if why is None and bound is None:  # the engine refuses this model (e.g. OpenVINO int8 VGGish)
                with pytest.raises(Exception, match=f"none of its compute layers in {precision}") as e:
                    acc.embed_pairs(acc.embedders(models_with_int8, family, engine, precision, 2), pair)
                assert "\n" not in str(e.value)
                continue
            if why is not None:
                assert "\n" not in why
                continue
            got = acc.compare(ref, acc.embed_pairs(acc.embedders(models_with_int8, family, engine, precision, 2), pair))
            assert got["cosine_min"] >= bound.cosine_min, (engine, precision, got)
            assert got["score_delta_max"] <= bound.score_delta_max, (engine, precision, got)
            assert got["changed_8bit_share"] <= bound.changed_8bit_max, (engine, precision, got)
            checked.append((engine, precision))
    assert checked  # at least one fast path ran here
    assert np.isfinite(ref[0]["score"])
