"""pqeval benchmark: the original frameworks vs pqeval's runtime, side by side in one run.

    python bench/run.py [--quick] [--out bench/results] [--work DIR] [--threads N]

Every measurement runs in its own fresh subprocess (``bench/worker.py``), one after another, so
cold starts are real process starts and peak RSS (VmHWM) belongs to one pipeline. Writes
``results.json`` (everything), ``results.md`` (tables), ``results.png`` (plot) and
``accuracy.json`` / ``accuracy.md`` (each engine × precision against ORT fp32, ``bench/accuracy.py``)
to ``--out``, by default ``bench/results/<cpu>/`` (:func:`cpu_dir`: results of each kind of CPU
side by side). Pipelines ``pqeval-<model>@<engine>-<precision>`` run every engine × precision
this CPU can run (the others are listed as refused, with why). Models use seeded weights
(``seeded:0``): latency and memory do not depend on weight values; the accuracy of compact
variants and fast paths is against the fp32 model with the same seeded weights.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from clips import audio_dir  # noqa: E402

RESULTS = HERE / "results"
DEFAULT_WORK = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pqeval" / "bench"
SEED = 0
VARIANTS = [("vggish.onnx", "int8fc"), ("vggish.onnx", "fp16"), ("openl3-mel256-music-512.onnx", "int8qdq")]
#: Engine × precision rows besides ORT fp32 (the plain rows) and ORT int8 (the int8 compact variants).
ENGINE_ROWS = [("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8")]


def engine_rows(quick: bool) -> tuple[list[str], dict[str, str]]:
    """Pipelines ``pqeval-<model>@<engine>-<precision>`` this machine runs, and those it refuses
    (pipeline -> the one-line reason)."""
    from pqeval.inference import refusal
    from pqeval.registry import ACCURACY

    run, refused = [], {}
    for kind in ("vggish", "openl3"):
        for engine, precision in ENGINE_ROWS[:1] if quick else ENGINE_ROWS:
            name = f"pqeval-{kind}@{engine}-{precision}"
            why = refusal(engine, precision)
            if why is None and (kind, engine, precision) not in ACCURACY:
                why = f"{engine} has no {precision} path for {kind} (pqeval.registry.ACCURACY)"
            if why is None:
                run.append(name)
            else:
                refused[name] = why
    return run, refused


class Config:
    """What one run measures (full or --quick)."""

    def __init__(self, quick: bool, threads: int) -> None:
        self.quick = quick
        self.threads = threads
        self.seconds = 2.0 if quick else 10.0  # the side-by-side clip
        self.reps = 1 if quick else 5
        self.cold_runs = 1 if quick else 3
        self.hop = 0.5  # OpenL3 hop for the side-by-side runs (pqeval's default)
        self.scale_seconds = [1.0, 3.0] if quick else [1.0, 10.0, 60.0, 600.0]
        self.scale_hop = 1.0 if quick else 5.0  # coarse OpenL3 hop so 10 min stays affordable
        self.thread_counts = [] if quick else sorted({1, threads})
        # --quick leaves out fp16/ext (tests/test_bench.py exports and checks them directly)
        self.variants = [v for v in VARIANTS if not quick or v[1] in ("int8fc", "int8qdq")]
        # each original twice: as shipped, and with numpy's OpenBLAS at one thread (what pqeval does
        # internally, pqeval/threads.py; it speeds the originals up too); ratios use the faster
        blas1 = [] if quick else ["-blas1"]
        engines, self.refused = engine_rows(quick)
        self.pipelines = (
            [f"torchvggish{b}" for b in [""] + blas1]
            + ["pqeval-vggish"]
            + [f"pqeval-vggish-{k}" for s, k in self.variants if s == "vggish.onnx"]
            + [p for p in engines if p.startswith("pqeval-vggish@")]
            + [f"openl3-tf{b}" for b in [""] + blas1]
            + ["pqeval-openl3"]
            + [f"pqeval-openl3-{k}" for s, k in self.variants if s != "vggish.onnx"]
            + [p for p in engines if p.startswith("pqeval-openl3@")]
        )
        self.accuracy_seconds = 2.0 if quick else 5.0
        self.stage_rates = [16000] if quick else [16000, 44100]
        self.cli_models = ["vggish"] if quick else ["vggish", "openl3"]


def spawn(cmd: list[str], env: dict) -> tuple[int, str, str, int]:
    """Run cmd to completion; (exit code, stdout, stderr, the child's own ru_maxrss in kB via wait4)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, cwd=str(ROOT), text=True)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        return proc.returncode, fo.read(), fe.read(), ru.ru_maxrss


def run_worker(task: str, args: dict, threads: int, log) -> dict:
    """Run bench/worker.py TASK in a fresh process; its result plus the parent's wall time and ru_maxrss."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    if str(args.get("pipeline", "")).endswith("-blas1"):
        env["OPENBLAS_NUM_THREADS"] = "1"
    if "work" in args:  # model files verified once by prepare, then by stat (pqeval/session.py)
        env["PQEVAL_VERIFY_CACHE"] = str(Path(args["work"]) / "verified.json")
    env["TF_USE_LEGACY_KERAS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONWARNINGS"] = "ignore"
    t_spawn = time.time()
    args = {**args, "t_spawn": t_spawn, "threads": threads}
    cmd = [sys.executable, str(HERE / "worker.py"), task, json.dumps(args)]
    code, out, err, maxrss_kb = spawn(cmd, env)
    wall = time.time() - t_spawn
    if code != 0:
        raise RuntimeError(f"worker {task} {args.get('pipeline', '')} failed ({code}):\n{err[-3000:]}")
    line = next(x for x in reversed(out.splitlines()) if x.startswith("@@RESULT "))
    res = json.loads(line[len("@@RESULT ") :])
    res["process_wall_s"] = wall
    res["ru_maxrss_mb"] = round(maxrss_kb / 1024, 1)
    log(f"  {task} {args.get('pipeline', '')} {args.get('seconds', '')} done in {wall:.1f} s")
    return res


def score_cli(work: Path, seconds: float, model: str, threads: int, hop: float) -> dict:
    """Wall time and peak RSS of ``pqeval score clean degraded --model M`` (a user's cold start, 2 clips)."""
    from clips import clip_path

    env = dict(
        os.environ,
        PQEVAL_MODELS=str(work / "models"),
        PQEVAL_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
        PQEVAL_VERIFY_CACHE=str(work / "verified.json"),
    )
    cmd = [
        sys.executable,
        "-m",
        "pqeval",
        "score",
        str(clip_path(work, "clip", seconds)),
        str(clip_path(work, "degraded", seconds)),
        "--model",
        model,
        "--metrics",
        model,
        "--json",
        "--hop",
        str(hop),
    ]
    t = time.time()
    code, out, err, maxrss_kb = spawn(cmd, env)
    wall = time.time() - t
    if code not in (0, 3):
        raise RuntimeError(f"pqeval score failed ({code}): {err[-2000:]}")
    value = json.loads(out)["metrics"][model]["value"]
    return {
        "model": model,
        "command": " ".join(["pqeval"] + cmd[3:]),
        "wall_s": wall,
        "score": value,
        "peak_rss_mb": round(maxrss_kb / 1024, 1),
    }


def run(cfg: Config, out: Path, work: Path, log=print) -> dict:
    """Every measurement of one benchmark run; returns the results dict (also written to out/)."""
    from report import write_report

    t_start = time.time()
    adir = str(audio_dir())
    common = {
        "work": str(work),
        "audio_dir": adir,
        "seconds": cfg.seconds,
        "reps": cfg.reps,
        "hop": cfg.hop,
        "stage_rates": cfg.stage_rates,
    }
    log(f"prepare models and clips in {work}")
    prep = run_worker(
        "prepare",
        {**common, "seed": SEED, "quick": cfg.quick, "variants": cfg.variants, "scale_seconds": cfg.scale_seconds},
        cfg.threads,
        log,
    )
    res: dict = {"config": dict(vars(cfg)), "machine": machine(), "prepare": prep, "refused": cfg.refused}
    res["flops"] = run_worker("flops", {"work": str(work)}, cfg.threads, log)["models"]
    res["files"] = model_files(work / "models")
    log("gemm peak")
    res["gemm"] = {
        str(t): run_worker("gemm", {"reps": 2 if cfg.quick else 7}, t, log) for t in sorted({1, cfg.threads})
    }
    log("pipelines (cold start, warm latency, stages, peak RSS)")
    res["pipelines"] = {p: run_worker("pipeline", {**common, "pipeline": p}, cfg.threads, log) for p in cfg.pipelines}
    for p, r in res["pipelines"].items():  # cold start: median of cfg.cold_runs fresh processes
        runs = [r["cold"]] + [
            run_worker("cold", {**common, "pipeline": p}, cfg.threads, log) for _ in range(cfg.cold_runs - 1)
        ]
        r["cold_runs"] = runs
        r["cold"] = {
            **sorted(runs, key=lambda c: c["total_s"])[len(runs) // 2],
            "peak_rss_mb": r["cold"]["peak_rss_mb"],
        }
    log("accuracy of each engine × precision (bench/accuracy.py)")
    res["accuracy"] = run_worker(
        "accuracy", {"work": str(work), "audio_dir": adir, "seconds": cfg.accuracy_seconds}, cfg.threads, log
    )
    log("pqeval score CLI")
    res["score_cli"] = [score_cli(work, cfg.seconds, m, cfg.threads, cfg.hop) for m in cfg.cli_models]
    log("threads")
    res["threads"] = {
        f"{p}@{t}": run_worker(
            "pipeline", {**common, "pipeline": p, "reps": max(1, cfg.reps - 2), "stage_rates": []}, t, log
        )  # warm latency is all it reads
        for t in cfg.thread_counts
        for p in ("pqeval-vggish", "pqeval-openl3")
    }
    log("scaling with audio length")
    res["scale"] = [
        run_worker("scale", {**common, "pipeline": p, "seconds": s, "hop": cfg.scale_hop}, cfg.threads, log)
        for p in ("pqeval-vggish", "pqeval-openl3")
        for s in cfg.scale_seconds
    ]
    res["elapsed_s"] = time.time() - t_start
    res["machine"]["load_avg_at_end"] = os.getloadavg()
    res["command"] = "python bench/run.py" + (" --quick" if cfg.quick else "") + f" --threads {cfg.threads}"
    write_report(res, out)
    from accuracy import write as write_accuracy

    write_accuracy(res["accuracy"], out, res["command"] + " (accuracy part)")
    return res


def model_files(models: Path) -> dict:
    """Size in MB of each model file (external data included)."""
    out = {}
    for p in sorted(models.glob("*.onnx")):
        data = p.with_name(p.name + ".data")
        out[p.name] = round((p.stat().st_size + (data.stat().st_size if data.exists() else 0)) / 1e6, 1)
    return out


def cpu_dir() -> Path:
    """``bench/results/<cpu>``: e.g. ``amd-epyc-avx2``, ``intel-xeon-platinum-8480-amx`` (the
    model name, then the widest instruction set family that matters for the fast paths)."""
    import re

    from pqeval import cpu

    have = set(cpu.summary())
    isa = next((n for n, f in (("amx", "amx_bf16"), ("avx512", "avx512f"), ("avx2", "avx2")) if f in have), "base")
    name = re.sub(r"\(r\)|\(tm\)|cpu|@.*|processor|\d+-core", " ", cpu.name().lower())
    slug = "-".join(re.findall(r"[a-z0-9]+", name)[:4])
    return RESULTS / f"{slug or 'cpu'}-{isa}"


def machine() -> dict:
    """CPU model, instruction sets, cores, memory and the library versions that matter."""
    cpu = ""
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    flags = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    with open("/proc/meminfo") as f:
        mem = next((int(line.split()[1]) for line in f if line.startswith("MemTotal")), 0)
    from importlib.metadata import PackageNotFoundError, version

    vers = {}
    for n in (
        "numpy",
        "scipy",
        "onnxruntime",
        "openvino",
        "torch",
        "torchvggish",
        "tensorflow",
        "tf-keras",
        "kapre",
        "resampy",
    ):
        with contextlib.suppress(PackageNotFoundError):
            vers[n] = version(n)
    from pqeval.cpu import summary

    return {
        "cpu": cpu,
        "instruction_sets": summary(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**20, 1),
        "avx2": " avx2" in flags,
        "avx512f": " avx512f" in flags,
        "vnni": "vnni" in flags,
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
        "versions": vers,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 s clip, 1 repetition, short scaling")
    ap.add_argument("--out", type=Path, default=None, help="where results go (default bench/results/<cpu>/)")
    ap.add_argument("--work", type=Path, default=None, help=f"models and clips (default {DEFAULT_WORK}[-quick])")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every pipeline")
    a = ap.parse_args()
    work = a.work or (DEFAULT_WORK.with_name(DEFAULT_WORK.name + "-quick") if a.quick else DEFAULT_WORK)
    cfg = Config(a.quick, a.threads)
    out = a.out or cpu_dir()
    m = machine()
    print(f"CPU: {m['cpu']}; instruction sets: {' '.join(m['instruction_sets']) or 'none of note'}", flush=True)
    for name, why in cfg.refused.items():
        print(f"  not run: {name}: {why}", flush=True)
    res = run(cfg, out, work, log=lambda msg: print(msg, flush=True))
    print(f"wrote {out / 'results.json'}, results.md, results.png, accuracy.md in {res['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
