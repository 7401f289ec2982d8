"""One measurement in a fresh process: ``python bench/worker.py TASK 'JSON-ARGS'``.

Prints its result as one line ``@@RESULT {json}`` on stdout. Tasks:

* ``prepare``: seeded weight files for the originals, the same weights exported for pqeval,
  compact variants (with their accuracy on real recordings), the bench clips as WAV files.
* ``pipeline``: cold start (imports, model load, first embedding of the WAV clip, timed from
  process start), then warm latency (``reps`` runs on the in-memory clip after a warm-up), stage
  shares (ours) or inference-only time (originals), and peak RSS (VmHWM).
* ``scale``: pqeval on a WAV clip of ``seconds`` streamed from disk (warm-up on 2 s, timed runs), peak RSS.
* ``cold``: the cold-start part of ``pipeline`` alone (repeated in fresh processes).
* ``gemm``: numpy float32 matrix-multiply peak (GFLOP/s) with the BLAS threads of the environment.
* ``accuracy``: each engine × precision against ORT fp32 on real and synthetic pairs (bench/accuracy.py).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

T_PROCESS = time.time()  # as close to interpreter start as a script can get; the parent also passes its spawn time

ROOT = Path(__file__).resolve().parents[1]
for sub in ("runtime", "export", "bench"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

RESULT_TAG = "@@RESULT "
GEMM_N = 2048
GEMM_REPS = 7
BREAKDOWN_RATES = (16000, 44100)  # input rates whose stage shares are measured


def vm_kb(field: str = "VmHWM") -> int:
    """A /proc/self/status memory field in kB (VmHWM: peak resident set so far)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mb(kb: int) -> float:
    return round(kb / 1024, 1)


def _median(v: list[float]) -> float:
    import numpy as np

    return float(np.median(v))


# --- tasks -------------------------------------------------------------------------------------


def task_prepare(a: dict) -> dict:
    """Write weights, models, compact variants and clips under a['work'] (reused when current)."""
    from clips import bench_clip, clip_path, degraded_clip
    from pqeval.atomic import atomic_write_audio

    work = Path(a["work"])
    (work / "weights").mkdir(parents=True, exist_ok=True)
    models = work / "models"
    out: dict = {"timings_s": {}}
    t = time.perf_counter()
    from pqeval_export.vggish import export_vggish, make_seeded_weights

    if not list((work / "weights").glob("vggish-seeded*.pth")):
        make_seeded_weights(a["seed"], work / "weights")
    side = models / "vggish.onnx.json"
    if not side.exists() or "external_data" not in json.loads(side.read_text()):  # missing, or an older format
        export_vggish(weights=next((work / "weights").glob("vggish-seeded*.pth")), out_dir=models)
    out["timings_s"]["vggish_export"] = time.perf_counter() - t
    t = time.perf_counter()
    from pqeval_export.openl3 import export_openl3
    from pqeval_export.openl3 import make_seeded_weights as l3_weights

    h5 = list((work / "weights").glob("openl3_audio_mel256_music-seeded*.h5"))
    if not h5:
        h5 = [l3_weights(a["seed"], "mel256", work / "weights", "music")]
    if not (models / "openl3-mel256-music-512.onnx").exists():
        export_openl3("mel256", "music", 512, weights=h5[0], out_dir=models)
    out["timings_s"]["openl3_export"] = time.perf_counter() - t

    from pqeval_export.compact import COMPACT_KEY, audio_files, compact_path, export_compact

    files = audio_files(a["audio_dir"])
    if a.get("quick"):
        files = files[:2]
    out["compact"] = {}
    for src, kind in a["variants"]:
        t = time.perf_counter()
        srcp = models / src
        dst = compact_path(srcp, kind)
        side = dst.with_name(dst.name + ".json")
        src_sha = json.loads(srcp.with_name(srcp.name + ".json").read_text())["sha256"]
        info = json.loads(json.loads(side.read_text())["metadata"][COMPACT_KEY]) if side.exists() else {}
        if info.get("source_sha256") != src_sha or info.get("accuracy") is None:
            export_compact(srcp, kind, files, quick=bool(a.get("quick")))
            info = json.loads(json.loads(side.read_text())["metadata"][COMPACT_KEY])
        out["compact"][dst.name] = {**info, "export_s": time.perf_counter() - t}
    (work / "clips").mkdir(exist_ok=True)
    wanted = [("clip", a["seconds"]), ("degraded", a["seconds"])] + [("scale", s) for s in a.get("scale_seconds", [])]
    for name, seconds in wanted:
        p = clip_path(work, name, seconds)
        if not p.exists():
            x = degraded_clip(seconds, a["audio_dir"]) if name == "degraded" else bench_clip(seconds, a["audio_dir"])
            atomic_write_audio(p, x, 16000)  # a half-written clip would be reused as if whole
    out["first_verify_s"] = _record_verification(models)
    return out


def _record_verification(models: Path) -> dict:
    """Hash every model once (timed: what a user's first run pays) so that the timed runs see the
    steady state, where an unchanged file is checked by its stat (pqeval/session.py)."""
    import os

    from pqeval.integrity import RACY_SECONDS
    from pqeval.session import OnnxModel

    newest = max((f.stat().st_mtime for f in models.iterdir()), default=0.0)
    time.sleep(max(0.0, newest + RACY_SECONDS + 0.1 - time.time()))  # files this fresh are not recorded
    Path(os.environ["PQEVAL_VERIFY_CACHE"]).unlink(missing_ok=True)  # so each file is hashed (and recorded) now
    timings = {}
    for path in sorted(models.glob("*.onnx")):
        t = time.perf_counter()
        OnnxModel(path).check_integrity()
        timings[path.name] = time.perf_counter() - t
    return timings


def _cold(a: dict):
    """Imports, model load and first embedding of the clip from disk, timed from process start."""
    t_spawn = a.get("t_spawn", T_PROCESS)
    from pipelines import make

    p = make(a["pipeline"], Path(a["work"]), a["threads"], a["hop"])
    t0 = time.perf_counter()
    p.imports()
    t1 = time.perf_counter()
    p.load()
    t2 = time.perf_counter()
    import soundfile as sf

    from clips import clip_path

    x, sr = sf.read(str(clip_path(Path(a["work"]), "clip", a["seconds"])), dtype="float64")
    first = p.embed(x, sr)
    t3 = time.perf_counter()
    cold = {
        "interpreter_s": max(0.0, T_PROCESS - t_spawn),
        "import_s": t1 - t0,
        "load_s": t2 - t1,
        "first_embed_s": t3 - t2,
        "total_s": time.time() - t_spawn,
        "load_detail": p.load_detail,
        "peak_rss_mb": mb(vm_kb()),
    }
    return p, cold, x, sr, first


def task_cold(a: dict) -> dict:
    """Only the cold start (run.py repeats it in fresh processes and keeps the median)."""
    return _cold(a)[1]


def task_pipeline(a: dict) -> dict:
    """Cold start, warm latency, stage shares / inference time and peak RSS of one pipeline."""
    p, cold, x, sr, first = _cold(a)
    r: dict = {
        "pipeline": a["pipeline"],
        "kind": p.kind,
        "family": p.family,
        "variant": p.variant,
        "threads": a["threads"],
        "hop": a["hop"] if p.kind == "openl3" else None,
        "cold": cold,
    }
    r["units"] = len(first)  # examples (VGGish) / windows (OpenL3) of the clip
    r["output_shape"] = list(first.shape)
    r["seconds"] = len(x) / sr
    p.embed(x, sr)  # warm-up
    times = []
    for _ in range(a["reps"]):
        t = time.perf_counter()
        p.embed(x, sr)
        times.append(time.perf_counter() - t)
    r["warm_s"] = times
    r["warm_median_s"] = _median(times)
    inf = [p.inference_only(x, sr) for _ in range(max(1, min(3, a["reps"])))]
    r["inference_s"] = _median([t for t, _ in inf])
    r["inference_units"] = inf[0][1]
    if p.family == "ours":
        r["stages"] = {}
        for rate in a.get("stage_rates", BREAKDOWN_RATES):
            xi = x if rate == sr else _at_rate(x, sr, rate)
            p.embed(xi, rate)  # warm-up at this rate (filter design is cached per rate pair)
            runs = [p.stages(xi, rate) for _ in range(max(1, min(3, a["reps"])))]
            r["stages"][str(rate)] = {k: _median([s[k] for s in runs]) for k in ("resample", "frontend", "inference")}
    r["peak_rss_mb"] = mb(vm_kb())
    return r


def _at_rate(x, sr: int, rate: int):
    """The clip at another input rate (for the stage shares), made with pqeval's resampler."""
    from pqeval.resample import resample

    return resample(x, sr, rate)


def task_scale(a: dict) -> dict:
    """pqeval on a WAV clip of a['seconds'] s at 16 kHz, read from disk as `pqeval score` reads it
    (``open_audio``: batch by batch): time of one run after a 2 s warm-up; peak RSS."""
    import numpy as np

    from clips import bench_clip, clip_path
    from pipelines import make

    p = make(a["pipeline"], Path(a["work"]), a["threads"], a["hop"])
    p.imports()
    p.load()
    p.embed(bench_clip(2.0, a["audio_dir"]), 16000)
    r = {
        "pipeline": a["pipeline"],
        "seconds": a["seconds"],
        "hop": a["hop"] if p.kind == "openl3" else None,
        "rss_after_load_mb": mb(vm_kb("VmRSS")),
        "peak_after_load_mb": mb(vm_kb()),
    }
    from pqeval.audio import open_audio

    path = clip_path(Path(a["work"]), "scale", a["seconds"])
    audio = open_audio(path)  # validates the whole file in blocks; samples are read on demand
    r["file_mb"] = round(path.stat().st_size / 2**20, 1)
    r["whole_input_mb"] = round(len(audio.samples) * 8 / 2**20, 1)  # what holding it as float64 would take
    r["peak_after_input_mb"] = mb(vm_kb())
    reps = max(1, min(a.get("reps", 3), int(30 / max(a["seconds"], 1))))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = p.embed(audio.samples, audio.sr)
        times.append(time.perf_counter() - t)
    r.update(
        {"units": int(len(out)), "times_s": times, "median_s": float(np.median(times)), "peak_rss_mb": mb(vm_kb())}
    )
    return r


def task_gemm(a: dict) -> dict:
    """Best float32 GEMM rate of numpy (OpenBLAS) at n x n x n, threads from the environment."""
    import numpy as np

    n = a.get("n", GEMM_N)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    x @ y
    best = min(_timed(lambda: x @ y) for _ in range(a.get("reps", GEMM_REPS)))
    return {"n": n, "threads": a["threads"], "best_s": best, "gflops": 2 * n**3 / best / 1e9}


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def task_flops(a: dict) -> dict:
    """Analytic FLOPs per example/window of the fp32 models (conv/gemm MACs from the ONNX graph)."""
    from flops import count_macs

    out = {}
    for key in ("vggish", "openl3-mel256-music-512"):
        c = count_macs(Path(a["work"]) / "models" / f"{key}.onnx")
        out[key] = {"gflop_per_unit": c["gflop"], "by_op_gmac": {k: v / 1e9 for k, v in c["by_op"].items()}}
    return {"models": out}


def task_accuracy(a: dict) -> dict:
    """Each engine × precision against ORT fp32, and openl3's float32 noise (bench/accuracy.py)."""
    from accuracy import measure

    return measure(Path(a["work"]), Path(a["audio_dir"]), a["seconds"], a["threads"], log=lambda m: None)


TASKS = {
    "accuracy": task_accuracy,
    "flops": task_flops,
    "prepare": task_prepare,
    "pipeline": task_pipeline,
    "cold": task_cold,
    "scale": task_scale,
    "gemm": task_gemm,
}

if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    task, args = sys.argv[1], json.loads(sys.argv[2])
    res = TASKS[task](args)
    sys.stdout.flush()
    print(RESULT_TAG + json.dumps(res), flush=True)
