#!/usr/bin/env python3
"""ONNX Runtime settings measured, not guessed (issue 5, item 3): each setting in a fresh process.

For VGGish and OpenL3 (the exported models, any weights): graph optimisation level, intra-/inter-op
threads, the CPU memory arena, weight prepacking, examples/windows per call, and loading a saved
pre-optimised model. Reports session load time, warm latency (median of REPS runs over the same
total work) and peak RSS (VmHWM) per setting; writes bench/results/ort_tuning.{json,md}.

    python bench/ort_tuning.py [--vggish models/vggish.onnx] [--openl3 models/openl3-mel256-music-512.onnx]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
REPS = 3
WORK = {"vggish": 64, "openl3": 8}  # examples / windows per timed run
SHAPE = {"vggish": ("examples", (1, 96, 64)), "openl3": ("spectrogram", (256, 199, 1))}
DEFAULT_BATCH = {"vggish": 16, "openl3": 1}  # VGGishEmbedder / OpenL3Embedder defaults
BASE = {"opt": "all", "intra": 2, "inter": 1, "arena": True, "prepack": True, "batch": None, "saved": False}


def _vm_hwm_mb() -> float:
    from worker import vm_kb  # bench/ is on sys.path when this runs as a script

    return vm_kb("VmHWM") / 1024


def worker(cfg: dict) -> dict:
    """Load the model with cfg's settings, time REPS runs of WORK units in batches of cfg['batch']."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[cfg["opt"]]
    so.intra_op_num_threads = cfg["intra"]
    so.inter_op_num_threads = cfg["inter"]
    so.enable_cpu_mem_arena = cfg["arena"]
    if not cfg["prepack"]:
        so.add_session_config_entry("session.disable_prepacking", "1")
    path = cfg["path"]
    if cfg.get("save_to"):
        so.optimized_model_filepath = cfg["save_to"]
        # weights beside the graph, as pqeval's own VGGish (one protobuf cannot hold > 2 GB either)
        so.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", Path(cfg["save_to"]).name + ".data"
        )
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    t0 = time.perf_counter()
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    name, shape = SHAPE[cfg["model"]]
    total = WORK[cfg["model"]]
    batch = cfg["batch"] or total
    rng = np.random.default_rng(0)
    x = (
        rng.standard_normal((total, *shape)) * (20 if cfg["model"] == "openl3" else 2)
        - (40 if cfg["model"] == "openl3" else 3)
    ).astype(np.float32)
    sess.run(None, {name: x[:batch]})  # warm-up
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        for i in range(0, total, batch):
            sess.run(None, {name: x[i : i + batch]})
        times.append(time.perf_counter() - t0)
    return {
        "load_s": load_s,
        "median_s": float(np.median(times)),
        "min_s": min(times),
        "max_s": max(times),
        "per_unit_ms": 1e3 * float(np.median(times)) / total,
        "peak_rss_mb": _vm_hwm_mb(),
    }


def run(cfg: dict) -> dict:
    p = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True, timeout=600
    )
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def settings(model: str) -> list[tuple[str, dict]]:
    """(label, overrides of BASE) for one model."""
    batches = [1, 8, 64] if model == "vggish" else [4, 8]
    out = [("default (pqeval)", {"batch": DEFAULT_BATCH[model]})]
    out += [(f"opt level {lv}", {"opt": lv}) for lv in ("disable", "basic", "extended")]
    out += [("arena off", {"arena": False}), ("prepacking off", {"prepack": False})]
    out += [("intra 1", {"intra": 1}), ("inter 2", {"inter": 2})]
    out += [(f"batch {b}", {"batch": b}) for b in batches]
    out += [("saved optimised model, opt disable", {"saved": True, "opt": "disable"})]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--vggish", default=str(ROOT / "models" / "vggish.onnx"))
    ap.add_argument("--openl3", default=str(ROOT / "models" / "openl3-mel256-music-512.onnx"))
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, path in (("vggish", a.vggish), ("openl3", a.openl3)):
            saved = str(Path(tmp) / f"{model}-optimised.onnx")
            run({**BASE, "model": model, "path": path, "save_to": saved})  # writes the optimised graph
            for label, over in settings(model):
                cfg = {**BASE, **over, "model": model, "path": saved if over.get("saved") else path}
                if cfg["batch"] is None:
                    cfg["batch"] = DEFAULT_BATCH[model]
                r = run(cfg)
                rows.append({"model": model, "setting": label, **{k: cfg[k] for k in BASE}, **r})
                print(f"{model:7s} {label:38s} {json.dumps(r)}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ort_tuning.json").write_text(json.dumps({"reps": REPS, "work": WORK, "rows": rows}, indent=2) + "\n")
    lines = [
        "# ONNX Runtime settings, measured (`python bench/ort_tuning.py`)",
        "",
        f"Each row is a fresh process; warm time = median of {REPS} runs over {WORK['vggish']} VGGish examples / "
        f"{WORK['openl3']} OpenL3 windows; load = session creation; peak RSS = VmHWM. Baseline (pqeval): "
        "opt level all, intra 2, inter 1, arena on, prepacking on; VGGish 16 examples per call, OpenL3 1 window "
        "(end to end, numpy's BLAS held to one thread while embedding: see pqeval/threads.py and README).",
        "",
        "| model | setting | load s | warm s | ms per unit | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['setting']} | error: {r['error']} | | | |")
        else:
            lines.append(
                f"| {r['model']} | {r['setting']} | {r['load_s']:.2f} | {r['median_s']:.3f} | "
                f"{r['per_unit_ms']:.1f} | {r['peak_rss_mb']:.0f} |"
            )
    (a.out / "ort_tuning.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out / 'ort_tuning.md'}")


if __name__ == "__main__":
    main()
