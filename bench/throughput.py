#!/usr/bin/env python3
"""Pairs per second of ``pqeval batch`` on each engine, measured in one run on this machine.

Builds a corpus of pairs from the shared recordings (clean excerpts of 1-2 s, each with noise at
10 levels, as WAV), then scores it with ``run_batch`` on: one process (``--workers 1``), two local
worker processes (``--workers 2``) and a Dask LocalCluster of two worker processes
(``--dask local``), ROUNDS times in turn (the best time of each counts: the machine may be shared);
with the default metrics, and again with the classic metrics alone (no model: all on one core).
Also measures Dask's per-task overhead (no-op tasks on the same cluster) and each Dask worker's
peak memory, and writes bench/results/throughput.md with the command, the CPU, the per-pair cost,
the ratios and an estimate for a 16-core node and a 10-node cluster.

Models: the real exported models in ``--models`` (default /tmp/m: ``pqeval export vggish --seeded 0
--out /tmp/m`` and ``pqeval export openl3 --seeded 0 --out /tmp/m``; seeded weights cost the same
as pretrained ones), else the tests' tiny stand-ins (then the per-pair cost is not realistic).

    python bench/throughput.py [--pairs 60] [--classic-pairs 200] [--rounds 3] [--models /tmp/m]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
for sub in ("runtime", "export", "tests"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

AUDIO = Path(os.environ.get("PQEVAL_TEST_AUDIO", ROOT.parent / "shared" / "audio"))
LEVELS = 10
NOOP_TASKS = 2000  # no-op tasks for Dask's per-task overhead
SERIAL_ROUNDTRIPS = 100  # one-at-a-time submit + result, for its latency


def cpu() -> dict[str, str]:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("Flags", "").split())
    return {
        "model": info.get("Model name", platform.processor() or "unknown"),
        "cpus": info.get("CPU(s)", str(os.cpu_count())),
        "threads_per_core": info.get("Thread(s) per core", "?"),
        "hypervisor": info.get("Hypervisor vendor", "none"),
        "avx2": "yes" if "avx2" in flags else "no",
        "avx512": ", ".join(sorted(f for f in flags if f.startswith("avx512"))) or "no",
    }


def write_corpus(d: Path, n_pairs: int) -> tuple[list, float]:
    """Clean excerpts (1-2 s) of the shared recordings x LEVELS noise levels; (pairs, audio seconds)."""
    from pqeval.pairs import Pair

    (d / "clean").mkdir(parents=True, exist_ok=True)
    (d / "deg").mkdir(exist_ok=True)
    sources = sorted(p for p in AUDIO.iterdir() if p.suffix in (".wav", ".flac"))
    rng = np.random.default_rng(0)
    pairs, seconds = [], 0.0
    for i in range(-(-n_pairs // LEVELS)):
        src = sources[i % len(sources)]
        x, sr = sf.read(str(src), dtype="float64", always_2d=True)
        x = x.mean(axis=1)
        n = int((1.0 + (i % 5) * 0.25) * sr)
        start = int(rng.integers(0, max(1, len(x) - n)))
        clean = x[start : start + n]
        c = d / "clean" / f"c{i:03d}_{src.stem}.wav"
        sf.write(str(c), clean, sr, subtype="FLOAT")
        power = float(np.mean(clean**2)) or 1e-6
        for k in range(LEVELS):
            if len(pairs) == n_pairs:
                break
            snr = 30 - 3 * k
            deg = d / "deg" / f"{c.stem}__noise_{snr}.wav"
            sf.write(str(deg), clean + rng.standard_normal(n) * np.sqrt(power / 10 ** (snr / 10)), sr, subtype="FLOAT")
            pairs.append(Pair(c, deg))
            seconds += n / sr
    return pairs, seconds


def use_models(models: Path | None, work: Path) -> str:
    """Point model lookup at the real exports if present, else at tiny ones; say which."""
    needed = ("vggish.onnx.json", "openl3-mel256-music-512.onnx.json")
    if models is not None and all((models / f).is_file() for f in needed):
        os.environ["PQEVAL_MODELS"], os.environ["PQEVAL_MODELS_ONLY"] = str(models), "1"
        return f"the real exported VGGish and OpenL3 graphs in {models} (seeded weights: the same cost as pretrained)"
    from tiny_models import write_tiny_models

    tiny = write_tiny_models(work / "tiny-models")
    os.environ["PQEVAL_MODELS"], os.environ["PQEVAL_MODELS_ONLY"] = str(tiny), "1"
    return f"the tests' tiny stand-in models ({models} has no exported models): NOT a realistic per-pair cost"


class Clock:
    """A progress callback that records when each row came back."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.times: list[float] = []

    def __call__(self, done: int, total: int, label: str) -> None:
        self.times.append(time.perf_counter() - self.t0)


def cpu_seconds(client=None) -> float:
    """CPU time so far of this process, its reaped children, and the workers of ``client``."""
    import resource

    total = time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    total += resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    if client is not None:
        total += sum(client.run(time.process_time).values())
    return total


def timed(pairs, options, out: Path, **engine) -> dict:
    from pqeval.batch import run_batch

    out.unlink(missing_ok=True)
    client = engine.get("client")
    load = os.getloadavg()[0]
    cpu0 = cpu_seconds(client)
    clock = Clock()
    res = run_batch(pairs, out, options, progress=clock, **engine)
    wall = time.perf_counter() - clock.t0
    cpu = cpu_seconds(client) - cpu0
    assert res.scored == len(pairs) and res.failed == 0, (res.scored, res.failed)
    t = clock.times
    half = len(t) // 2  # steady state: the second half of the rows, after every worker has started
    steady = (len(t) - half) / (t[-1] - t[half - 1]) if len(t) > 2 and t[-1] > t[half - 1] else float("nan")
    first = t[0] if t else float("nan")
    return {"wall": wall, "rate": len(pairs) / wall, "steady": steady, "first": first, "cpu": cpu, "load": load}


def noop(x: int) -> int:
    return x


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def dask_overhead(client) -> dict:
    """Per-task cost of Dask itself on ``client``'s cluster: many no-op tasks at once (throughput)
    and one at a time (latency of a submit + result round trip)."""
    client.gather(client.map(noop, range(50), pure=False))  # warm
    t0 = time.perf_counter()
    client.gather(client.map(noop, range(NOOP_TASKS), pure=False))
    bulk = (time.perf_counter() - t0) / NOOP_TASKS
    t0 = time.perf_counter()
    for i in range(SERIAL_ROUNDTRIPS):
        client.submit(noop, i, pure=False).result()
    one = (time.perf_counter() - t0) / SERIAL_ROUNDTRIPS
    return {"bulk_ms": bulk * 1e3, "roundtrip_ms": one * 1e3}


ENGINES = ("workers=1", "workers=2", "dask local (2)")


def measure(pairs, options, client, rounds: int, work: Path, label: str) -> dict[str, list[dict]]:
    """Each engine ``rounds`` times, in turn."""
    runs: dict[str, list[dict]] = {k: [] for k in ENGINES}
    for r in range(rounds):
        runs["workers=1"].append(timed(pairs, options, work / "w1.csv"))
        runs["workers=2"].append(timed(pairs, options, work / "w2.csv", workers=2))
        runs["dask local (2)"].append(timed(pairs, options, work / "dask.csv", client=client))
        print(f"{label} round {r + 1}: " + ", ".join(f"{k} {v[-1]['wall']:.1f} s" for k, v in runs.items()), flush=True)
    return runs


def section(title: str, runs: dict[str, list[dict]], n: int, seconds: float, cores: int) -> tuple[str, dict]:
    """A Markdown table of ``runs`` and the ratios read from it; also the best run of each engine."""
    best = {k: min(v, key=lambda x: x["wall"]) for k, v in runs.items()}
    w1, w2, dk = (best[k] for k in ENGINES)
    head = ["engine", "wall s (best)", "pairs/s incl. start-up", "pairs/s steady (2nd half)", "s to first row"]
    head += ["CPU s per pair", "cores busy (CPU / wall)", "each round: wall s (1-min load before it)"]
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k, v in runs.items():
        b = best[k]
        cells = [k, f"{b['wall']:.1f}", f"{b['rate']:.2f}", f"{b['steady']:.2f}", f"{b['first']:.1f}"]
        cells += [f"{b['cpu'] / n:.3f}", f"{b['cpu'] / b['wall']:.2f}"]
        cells.append(", ".join(f"{x['wall']:.1f} ({x['load']:.1f})" for x in v))
        table.append("| " + " | ".join(cells) + " |")
    busy = w1["cpu"] / w1["wall"]
    text = f"""### {title}

{n} pairs, {seconds:.0f} s of degraded audio (mean {seconds / n:.2f} s per pair).

{chr(10).join(table)}

- `--workers 2` / `--workers 1`: **{w2["rate"] / w1["rate"]:.2f}x** pairs/s including start-up,
  **{w2["steady"] / w1["steady"]:.2f}x** steady. One process kept {busy:.2f} of the {cores} cores busy
  (its CPU seconds over its wall time), so more processes could gain at most {cores / busy:.2f}x here.
- `--dask local` (2 worker processes) / `--workers 2`: **{dk["rate"] / w2["rate"]:.2f}x** including
  start-up, **{dk["steady"] / w2["steady"]:.2f}x** steady.
"""
    return text, best


def malloc_trim_effect(pairs, work: Path) -> dict[str, float]:
    """Wall seconds of the classic metrics on ``pairs`` in one fresh process, with and without
    MALLOC_TRIM_THRESHOLD_=65536 (what Dask's nanny gives its workers by default)."""
    import csv

    listing = work / "malloc-pairs.csv"
    with open(listing, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clean", "degraded"])
        w.writerows([str(p.clean), str(p.degraded)] for p in pairs)
    code = (
        "import sys, time\n"
        "from pqeval.batch import pairs_from_csv, run_batch\n"
        "from pqeval.scoring import ScoreOptions\n"
        "t = time.perf_counter()\n"
        "run_batch(pairs_from_csv(sys.argv[1]), sys.argv[2], ScoreOptions(metrics=('pesq_wb', 'stoi', 'estoi')))\n"
        "print(time.perf_counter() - t)\n"
    )
    out = {}
    for label, value in (("unset", None), ("65536", "65536")):
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
        env["PYTHONPATH"] = os.pathsep.join(str(ROOT / d) for d in ("runtime", "export"))
        if value is not None:
            env["MALLOC_TRIM_THRESHOLD_"] = value
        res = work / f"malloc-{label}.csv"
        res.unlink(missing_ok=True)
        cmd = [sys.executable, "-c", code, str(listing), str(res)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        out[label] = float(p.stdout.strip().splitlines()[-1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=60, help="pairs scored with the default metrics")
    ap.add_argument("--classic-pairs", type=int, default=200, help="pairs scored with PESQ/STOI/ESTOI only")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", type=Path, default=Path("/tmp/m"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "throughput.md")
    args = ap.parse_args()

    from pqeval.engines import MAX_TASK_PAIRS, TASKS_PER_SLOT, dask_client, usable_cores
    from pqeval.registry import DEFAULT_METRICS
    from pqeval.scoring import ScoreOptions

    work = Path(tempfile.mkdtemp(prefix="pqeval-throughput-"))
    models = use_models(args.models, work)
    options = ScoreOptions(metrics=DEFAULT_METRICS)
    classic = ScoreOptions(metrics=("pesq_wb", "stoi", "estoi"))
    pairs, seconds = write_corpus(work / "corpus", args.pairs)
    cpairs, cseconds = write_corpus(work / "corpus-classic", args.classic_pairs)
    cores = usable_cores()
    info = cpu()
    load0 = os.getloadavg()
    with dask_client("local", 2) as client:  # what `--dask local --workers 2` starts
        runs = measure(pairs, options, client, args.rounds, work, "default metrics")
        cruns = measure(cpairs, classic, client, args.rounds, work, "classic metrics")
        overhead = dask_overhead(client)
        rss = sorted(client.run(vm_hwm_mb).values())
    malloc = malloc_trim_effect(cpairs, work)
    load1 = os.getloadavg()

    n = len(pairs)
    main_text, best = section(f"Default metrics ({', '.join(DEFAULT_METRICS)})", runs, n, seconds, cores)
    classic_text, _ = section(
        "Classic metrics only (pesq_wb, stoi, estoi: no model)", cruns, len(cpairs), cseconds, cores
    )
    w1, dk = best["workers=1"], best["dask local (2)"]
    clip = seconds / n
    per_pair_1 = w1["wall"] / n  # s per pair, one process using every core (ORT threads)
    per_core = dk["cpu"] / n  # core-seconds per pair: warm worker processes with one ORT thread each
    node16 = 16 / per_core
    cluster10 = 160 / per_core
    task_pairs = max(1, min(MAX_TASK_PAIRS, -(-100_000 // (160 * TASKS_PER_SLOT))))
    sched_pairs_per_s = task_pairs / (overhead["bulk_ms"] / 1e3)
    task_here = max(1, min(MAX_TASK_PAIRS, -(-n // (2 * TASKS_PER_SLOT))))
    overhead_share = overhead["bulk_ms"] / 1e3 / per_core * 100
    cmd = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]))] + sys.argv[1:])
    text = f"""# Throughput of `pqeval batch` per engine

`{cmd}`

Measured in one run, {args.rounds} rounds of the three engines in turn (best of each), on
**{info["model"]}**, {info["cpus"]} CPUs ({info["threads_per_core"]} thread per core, hypervisor:
{info["hypervisor"]}; AVX2: {info["avx2"]}, AVX-512: {info["avx512"]}); {cores} usable cores. 1-minute load
average before / after: {load0[0]:.2f} / {load1[0]:.2f} (other work on the machine lowers the wall-clock
numbers, the 2-process ones most; the load before each round is in the tables).

- models: {models}
- pairs: clean excerpts (1-2 s of the shared recordings) x {LEVELS} noise levels, WAV
- wall: from `run_batch` called to returned, including the start of the worker processes and their
  model loading (the Dask LocalCluster was started once, before the rounds, as a running cluster
  would be); steady: the rate over the second half of the rows; CPU: of this process, its reaped
  worker processes and the Dask workers.

{main_text}
{classic_text}
Where one process already keeps every core busy (ONNX Runtime's threads in the model runs),
more processes cannot gain on this machine; the work that runs on one core (PESQ, STOI, reading,
resampling) is where extra processes pay. The 2-process engines also pay a few seconds of start-up
(spawning, loading the models in each process: "s to first row").

## Dask's MALLOC_TRIM_THRESHOLD_

Dask's nanny starts its workers with `MALLOC_TRIM_THRESHOLD_=65536`; any such setting also freezes
glibc's mmap threshold at 128 KiB, so each numpy array of a pair is mapped and unmapped afresh. The
classic metrics on the {len(cpairs)} pairs above, in one fresh process: **{malloc["unset"]:.1f} s** without
it, **{malloc["65536"]:.1f} s** with it ({malloc["65536"] / malloc["unset"]:.2f}x). `--dask local` starts its
cluster without it (so do the runs above); workers you start yourself: docs/cluster.md.

## Measured costs (default metrics)

- per pair, one process with every core: **{per_pair_1:.3f} s** wall ({per_pair_1 / clip:.3f} s per
  second of audio)
- per pair, per core: **{per_core:.3f} core-s** (the CPU time of the `--dask local` run per pair: two
  warm worker processes with one ORT thread each, plus the scheduler; {per_core / clip:.3f} core-s per
  second of audio)
- Dask's own cost per task on this cluster: **{overhead["bulk_ms"]:.2f} ms** per task with {NOOP_TASKS}
  no-op tasks submitted at once (scheduler + 2 workers: throughput), **{overhead["roundtrip_ms"]:.2f} ms**
  for one submit + result round trip at a time (latency). A pqeval task holds up to {MAX_TASK_PAIRS}
  pairs ({task_here} here), so Dask's cost is {overhead_share:.2f} % of even a one-pair task.
- peak memory (VmHWM) of each Dask worker process after the runs: {", ".join(f"{m:.0f} MB" for m in rss)}

## What a bigger machine or a cluster would give (estimates, not measurements)

Assumptions: the per-core cost above ({per_core:.3f} core-s per pair of {clip:.1f} s; it grows about
linearly with the clip's duration, OpenL3 dominating); the same per-core speed ({info["model"]},
AVX2); one worker process per core with one ONNX Runtime thread (`--workers N`, or Dask
`processes=N, threads_per_worker=1`), which is how that cost was measured; linear scaling in
cores (pairs are independent; only the scheduler and the file system are shared; one process with
16 ORT threads need not scale so: its work outside the models runs on one core, and ORT's own
scaling was not measured past 2 cores);
~{max(rss):.0f} MB per worker process as measured.

- **one 16-core node** (`--workers 16`, or 16 Dask worker processes): ~16 / {per_core:.3f} =
  **{node16:.0f} pairs/s** (~{node16 * 3600:,.0f} pairs per hour), ~{16 * max(rss) / 1024:.1f} GB for the workers.
- **10 such nodes** with Dask (160 worker processes): ~160 / {per_core:.3f} = **{cluster10:.0f} pairs/s**
  (~{cluster10 * 3600:,.0f} pairs per hour; 100k pairs in ~{100_000 / cluster10 / 60:.0f} min plus the
  workers' start). Dask is not the limit: at the measured {overhead["bulk_ms"]:.2f} ms per task and
  {task_pairs} pairs per task (100k pairs on 160 workers), one scheduler hands out ~{sched_pairs_per_s:,.0f}
  pairs/s, {sched_pairs_per_s / cluster10:.0f}x what the workers use. The shared file system must deliver
  ~{cluster10 * 2 * clip * 16000 * 4 / 1e6:.0f} MB/s of audio at that rate (two 16 kHz float WAVs per pair).
- On this machine the speed-up over one process is bounded by its {cores} cores (measured above).
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
