"""Where pqeval's cold start goes, and which ONNX Runtime / OpenVINO options shorten it exactly.

    python bench/cold_start.py --models DIR [--reps 5] [--src RUNTIME_DIR] [--work DIR]
                               [--sections imports,cli,ort,openvino,first,e2e] [--out FILE]

Cold start = a fresh process: interpreter + imports + model load (session creation) + first
embedding of a 10 s clip (what ``bench/worker.py`` ``_cold`` times). Every measurement runs in its
own fresh subprocess (bounded by ``--timeout``); the variants of a section are run alternately,
round after round (``--reps`` rounds, each round starting at a different variant), and the
tables show the median [min–max]. Outputs of every ONNX Runtime variant are compared with
``np.array_equal`` to those of today's session (``pqeval.session.OnnxModel.session``) on the
same input; OpenVINO's are compared numerically.

Sections:

* ``imports``: ``python -X importtime`` of ``pqeval score`` and of the bench's cold path, and the
  wall time of single imports in fresh processes (each after its prerequisites).
* ``cli``: wall time of ``pqeval score CLEAN DEGRADED --metrics vggish --json`` as it is, with
  ``scipy.signal`` imported only when called (simulated), and with the session of the cached
  optimised model (patched in); optionally (py-spy installed) where its samples fall.
* ``ort``: session creation, first run, warm run, peak RSS and exactness for each session option
  (VGGish: 10 examples in one run; OpenL3: 20 windows, one per run, as the embedders call them).
* ``openvino``: import, read+compile (with and without CACHE_DIR), first and warm run, the
  difference from ONNX Runtime's outputs.
* ``first``: the first VGGish embedding step by step against the second.
* ``e2e``: the bench's cold path (timed from process spawn) with today's session and with the
  recommended combinations; its frames compared with today's.

Models are read from ``--models`` (``PQEVAL_MODELS``, ``PQEVAL_MODELS_ONLY=1``); pqeval is imported
from ``--src`` (default: this checkout's ``runtime``). Scratch files (clips, optimised-model
caches, outputs, ``cold_start.json`` with every number) go to ``--work``. Writes
``bench/results/cold_start.md`` (``--out``); a part of it below the hand-written marker is kept
when it is regenerated (``--report-only WORK/cold_start.json`` re-renders without measuring).
"""

from __future__ import annotations

import os
import sys
import time

T_PROCESS = time.time()  # as early as a script can take it (children: compared with the spawn time)

VGGISH = "vggish.onnx"
OPENL3 = "openl3-mel256-music-512.onnx"
HOP = 0.5  # OpenL3 hop (pqeval's default): 20 windows for 10 s
CLIP_SECONDS = 10.0
THP_ENV = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}  # malloc'd memory in transparent huge pages
RESULT_TAG = "@@RESULT "


# ================================================================================================
# shared by parent and children
# ================================================================================================


def vm_kb(field: str = "VmHWM") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_signature() -> str:
    """What makes an optimised ORT graph specific to this machine: the CPU's ISA flags (NCHWc
    block size, MLAS kernels) and architecture."""
    import hashlib
    import platform

    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1] for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    norm = " ".join(sorted(flags.split()))
    return hashlib.sha256(f"{platform.machine()}|{norm}".encode()).hexdigest()[:12]


def cache_key(model_sha256: str, ort_version: str) -> str:
    """Directory name of a model's optimised copy: its sha256, the ORT version, the CPU."""
    return f"{model_sha256[:16]}-ort{ort_version}-{cpu_signature()}"


def cached_optimized(model: str, cache_root: str, ort_version: str) -> str:
    """Path of the cached optimised copy of ``model`` (may not exist)."""
    import json

    with open(model + ".json") as f:
        side = json.load(f)
    return os.path.join(cache_root, cache_key(side["sha256"], ort_version), "model.onnx")


def session_options(ort, spec: dict):
    """SessionOptions from a variant spec: level, threads, arena, config entries, saving."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(spec.get("threads", os.cpu_count() or 1))
    so.inter_op_num_threads = 1
    so.enable_cpu_mem_arena = bool(spec.get("arena", True))
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[spec.get("level", "all")]
    so.log_severity_level = 3
    if spec.get("save"):
        so.optimized_model_filepath = spec["save"]
    for k, v in spec.get("config", {}).items():
        so.add_session_config_entry(k, str(v))
    return so


def make_cached_optimized(model: str, cache_root: str, threads: int) -> dict:
    """Write the optimised copy (level ALL, weights in model.onnx.data) atomically: into a fresh
    directory, renamed into place when complete. Returns timings and sizes."""
    import shutil
    import tempfile

    import onnxruntime as ort

    final = os.path.dirname(cached_optimized(model, cache_root, ort.__version__))
    if os.path.isdir(final):
        return {"path": final, "reused": True}
    os.makedirs(cache_root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=cache_root)
    spec = {
        "threads": threads,
        "level": "all",
        "save": os.path.join(tmp, "model.onnx"),
        "config": {
            "session.optimized_model_external_initializers_file_name": "model.onnx.data",
            "session.optimized_model_external_initializers_min_size_in_bytes": 1024,
        },
    }
    t = time.perf_counter()
    ort.InferenceSession(model, session_options(ort, spec), providers=["CPUExecutionProvider"])
    dt = time.perf_counter() - t
    try:
        os.rename(tmp, final)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(os.path.getsize(os.path.join(final, f)) for f in os.listdir(final))
    return {"path": final, "seconds": dt, "bytes": size, "reused": False}


# ================================================================================================
# children (python bench/cold_start.py --child TASK JSON)
# ================================================================================================


def _inputs(work: str):
    import numpy as np

    with np.load(os.path.join(work, "inputs.npz")) as z:
        return {"vggish": z["vggish"], "openl3": z["openl3"]}


def _run_model(sess, kind: str, x):
    """One 'embedding' worth of runs: VGGish all 10 examples in one run (the embedder's batch of
    16), OpenL3 the 20 windows one by one (its batch of 1). Returns the outputs as arrays."""
    import numpy as np

    if kind == "vggish":
        outs = sess.run(None, {"examples": x})
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, outs, strict=True))
    return {"embedding": np.concatenate([sess.run(None, {"spectrogram": x[i : i + 1]})[0] for i in range(len(x))])}


def child_ort(a: dict) -> dict:
    """Session creation / first run / warm run / peak RSS of one ORT variant; outputs saved."""
    import numpy as np
    import onnxruntime as ort

    kind = a["kind"]
    x = _inputs(a["work"])[kind]
    r: dict = {}
    t = time.perf_counter()
    c = time.process_time()
    if a["variant"] == "today":  # pqeval's own session (pqeval.session.OnnxModel), no integrity check
        from pqeval.session import OnnxModel

        m = OnnxModel(a["path"], a["threads"], verify=False)
        t, c = time.perf_counter(), time.process_time()
        sess = m.session
        so = sess.get_session_options()
        r["options"] = {
            "intra": so.intra_op_num_threads,
            "inter": so.inter_op_num_threads,
            "level": str(so.graph_optimization_level),
            "arena": so.enable_cpu_mem_arena,
        }
    else:
        spec = a["spec"]
        so = session_options(ort, spec)
        if spec.get("bytes"):
            with open(a["path"], "rb") as f:
                data = f.read()
            t, c = time.perf_counter(), time.process_time()
            sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        else:
            sess = ort.InferenceSession(a["path"], so, providers=["CPUExecutionProvider"])
    r["session_s"] = time.perf_counter() - t
    r["session_cpu_s"] = time.process_time() - c  # CPU time of the process (all threads)
    t = time.perf_counter()
    out = _run_model(sess, kind, x)
    r["first_s"] = time.perf_counter() - t
    warm = []
    for _ in range(a["warm_reps"]):
        t = time.perf_counter()
        _run_model(sess, kind, x)
        warm.append(time.perf_counter() - t)
    r["warm_s"] = float(np.median(warm))
    r["peak_rss_mb"] = vm_kb() / 1024
    np.savez(a["out"], **out)
    return r


def child_ort_prepare(a: dict) -> dict:
    """One-time conversions: optimised ONNX (cache layout), with pre-packed weights, ORT format."""
    import subprocess

    import onnxruntime as ort

    work, model, threads = a["work"], a["path"], a["threads"]
    r: dict = {"ort_version": ort.__version__}
    r["optimized"] = make_cached_optimized(model, os.path.join(work, "cache"), threads)
    stem = os.path.basename(model).removesuffix(".onnx")
    pdir = os.path.join(work, "prepacked", stem)
    os.makedirs(pdir, exist_ok=True)
    target = os.path.join(pdir, "model.onnx")
    if not os.path.exists(target):
        spec = {
            "threads": threads,
            "level": "all",
            "save": target,
            "config": {
                "session.optimized_model_external_initializers_file_name": "model.onnx.data",
                "session.optimized_model_external_initializers_min_size_in_bytes": 1024,
                "session.save_external_prepacked_constant_initializers": 1,
            },
        }
        t = time.perf_counter()
        ort.InferenceSession(model, session_options(ort, spec), providers=["CPUExecutionProvider"])
        r["prepacked"] = {"seconds": time.perf_counter() - t}
    r.setdefault("prepacked", {})["bytes"] = sum(os.path.getsize(os.path.join(pdir, f)) for f in os.listdir(pdir))
    odir = os.path.join(work, "ortformat", stem)
    ort_path = os.path.join(odir, "out", stem + ".ort")
    if not os.path.exists(ort_path):
        os.makedirs(os.path.join(odir, "in"), exist_ok=True)
        for f in (os.path.basename(model), os.path.basename(model) + ".data"):
            src, dst = os.path.join(os.path.dirname(model), f), os.path.join(odir, "in", f)
            if os.path.exists(src) and not os.path.exists(dst):
                os.symlink(src, dst)
        t = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "onnxruntime.tools.convert_onnx_models_to_ort",
            "--output_dir",
            os.path.join(odir, "out"),
            "--optimization_style",
            "Fixed",
            "--target_platform",
            "amd64",
            os.path.join(odir, "in", os.path.basename(model)),
        ]  # amd64: keep the NCHWc layout of today's session
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        r["ortformat"] = {"seconds": time.perf_counter() - t, "rc": p.returncode}
    r.setdefault("ortformat", {})["bytes"] = os.path.getsize(ort_path) if os.path.exists(ort_path) else 0
    r["paths"] = {"optimized": r["optimized"]["path"] + "/model.onnx", "prepacked": target, "ortformat": ort_path}
    return r


def child_import(a: dict) -> dict:
    """Wall time of one import (and optional call) after its prerequisites, in a fresh process."""
    import importlib

    for m in a["pre"]:
        importlib.import_module(m)
    t = time.perf_counter()
    mod = importlib.import_module(a["target"])
    if a.get("call") == "threadpoolctl":
        mod.ThreadpoolController()
    dt = time.perf_counter() - t
    return {"seconds": dt, "process_s": time.time() - a["t_spawn"]}


def child_openvino(a: dict) -> dict:
    """OpenVINO: import, compile (optionally with CACHE_DIR), first and warm run, outputs saved."""
    t0 = time.perf_counter()
    import openvino as ov

    t1 = time.perf_counter()
    import numpy as np

    kind = a["kind"]
    x = _inputs(a["work"])[kind]
    core = ov.Core()
    if a.get("cache_dir"):
        core.set_property({"CACHE_DIR": a["cache_dir"]})
    t2 = time.perf_counter()
    cm = core.compile_model(
        a["path"], "CPU", {"INFERENCE_NUM_THREADS": a["threads"], "INFERENCE_PRECISION_HINT": "f32"}
    )
    t3 = time.perf_counter()
    req = cm.create_infer_request()

    def run():
        if kind == "vggish":
            res = req.infer({0: x})
            return {o.get_any_name(): np.array(res[o]) for o in cm.outputs}
        return {
            "embedding": np.concatenate([np.array(req.infer({0: x[i : i + 1]})[cm.outputs[0]]) for i in range(len(x))])
        }

    out = run()
    t4 = time.perf_counter()
    warm = []
    for _ in range(a["warm_reps"]):
        t = time.perf_counter()
        run()
        warm.append(time.perf_counter() - t)
    np.savez(a["out"], **out)
    return {
        "import_s": t1 - t0,
        "core_s": t2 - t1,
        "compile_s": t3 - t2,
        "first_s": t4 - t3,
        "warm_s": float(np.median(warm)),
        "peak_rss_mb": vm_kb() / 1024,
        "version": ov.__version__,
        "precision": str(cm.get_property("INFERENCE_PRECISION_HINT")),
        "threads": int(cm.get_property("INFERENCE_NUM_THREADS")),
    }


def child_first(a: dict) -> dict:
    """The first VGGish embedding of the clip, step by step, and the same steps a second time."""
    import numpy as np
    import soundfile as sf

    from pqeval import threads as pthreads
    from pqeval.audio import as_signal
    from pqeval.resample import output_length, resample_range
    from pqeval.session import OnnxModel
    from pqeval.vggish import SAMPLE_RATE, VGGishEmbedder, _frame

    m = OnnxModel(a["path"], a["threads"], verify=False)
    m.session  # noqa: B018
    x, sr = sf.read(a["clip"], dtype="float64")
    steps: dict = {}

    def timed(name, fn, *args):
        t = time.perf_counter()
        v = fn(*args)
        steps.setdefault(name, []).append(time.perf_counter() - t)
        return v

    for _ in range(2):
        e = timed("VGGishEmbedder() (frontend: window, mel matrix)", VGGishEmbedder, m)
        timed("threadpoolctl controller (first blas_single_thread)", pthreads._controller)
        fe = e.frontend
        with pthreads.blas_single_thread():
            sig = as_signal(x)
            n16 = output_length(len(sig), sr, SAMPLE_RATE, fe.resampler)
            n_ex = (1 + (n16 - fe.window_length) // fe.hop_length) // fe.example_frames
            hi = (n_ex * fe.example_frames - 1) * fe.hop_length + fe.window_length
            block = timed(
                "resample_range (a slice at 16 kHz)", resample_range, sig, sr, SAMPLE_RATE, 0, hi, fe.resampler
            )
            lm = timed("log_mel (frames, rfft, mel, log)", fe.log_mel, block)
            ex = _frame(lm, fe.example_frames, fe.example_frames)
            xin = timed("examples -> float32 [10,1,96,64]", np.ascontiguousarray, ex[:, None, :, :], np.float32)
            timed("ORT run (10 examples, postprocessed)", m.run, {"examples": xin}, [e.output])
        steps.setdefault("blas_single_thread enter+exit", []).append(_time_ctx(pthreads.blas_single_thread))
    # the whole embed() twice more, for the totals
    e = VGGishEmbedder(m)
    for _ in range(2):
        t = time.perf_counter()
        e.embed(x, sr)
        steps.setdefault("whole embed() (3rd, 4th call)", []).append(time.perf_counter() - t)
    return {"steps": steps}


def _time_ctx(ctx) -> float:
    t = time.perf_counter()
    with ctx():
        pass
    return time.perf_counter() - t


def _first_run_ort(a: dict) -> dict:
    """ORT alone: first vs second run on the same input, fresh session (today's options)."""
    import numpy as np

    from pqeval.session import OnnxModel

    m = OnnxModel(a["path"], a["threads"], verify=False)
    s = m.session
    x = _inputs(a["work"])["vggish"]
    runs = []
    for _ in range(4):
        t = time.perf_counter()
        s.run(["postprocessed"], {"examples": x})
        runs.append(time.perf_counter() - t)
    rss = vm_kb("VmRSS") / 1024
    return {"runs": runs, "rss_mb": rss, "x_shape": list(np.shape(x))}


def child_e2e(a: dict) -> dict:
    """The bench's cold path (bench/worker.py _cold) from process spawn, with one session variant:
    imports, integrity check, session, read the clip, first embedding. Frames saved."""
    v = a["variant"]
    kind = a["kind"]
    T: dict = {}
    t0 = time.perf_counter()
    cached = "cached" in v
    overlap = "overlap" in v
    box: dict = {}
    # --- imports (as pipelines.Ours*.imports), the integrity check, the session ---
    import pqeval.session as S

    model = S.OnnxModel(a["path"], a["threads"], verify=False)
    model.check_integrity()  # sha256 by stat record, as every run after the first
    t_int = time.perf_counter()

    def create():
        import onnxruntime as ort

        t = time.perf_counter()
        if not cached:
            box["sess"] = model.session
        else:
            from pqeval import integrity

            path = cached_optimized(a["path"], a["cache"], ort.__version__)
            side = a["cached_sha"]  # recorded when the cache entry was made
            if not all(integrity.has_sha256(p, side[os.path.basename(p)]) for p in (path, path + ".data")):
                raise RuntimeError("cached model does not match its record")
            spec = {"threads": a["threads"], "level": "disable", "config": a.get("config", {})}
            sess = ort.InferenceSession(path, session_options(ort, spec), providers=["CPUExecutionProvider"])
            model._check_embedded(sess.get_modelmeta().custom_metadata_map.get(S.WEIGHTS_KEY))
            model._session = sess
            box["sess"] = sess
        box["session_s"] = time.perf_counter() - t

    if overlap:
        import threading

        import onnxruntime  # noqa: F401  (imported here so that the thread only creates the session)

        th = threading.Thread(target=create)
        th.start()
    else:
        th = None
    if kind == "vggish":
        import pqeval.audio
        import pqeval.vggish
    else:
        import pqeval.audio
        import pqeval.openl3  # noqa: F401
    t_imp = time.perf_counter()
    if th is None:
        create()
    import soundfile as sf

    x, sr = sf.read(a["clip"], dtype="float64")
    if kind == "vggish":
        from pqeval.vggish import VGGishEmbedder

        emb = VGGishEmbedder(model)
    else:
        from pqeval.openl3 import OpenL3Embedder

        emb = OpenL3Embedder(model, hop=HOP)
    if th is not None:
        from pqeval import threads as pthreads

        pthreads._controller()  # work the first embed() would do anyway, while the session is made
        t_wait = time.perf_counter()
        th.join()
        T["waited_for_session_s"] = time.perf_counter() - t_wait
    t_load = time.perf_counter()
    frames = emb.embed(x, sr).frames
    t_end = time.perf_counter()
    total = time.time() - a["t_spawn"]
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    import numpy as np

    np.save(a["out"], frames)
    T.update(
        {
            "interpreter_s": max(0.0, T_PROCESS - a["t_spawn"]),
            "import_and_verify_s": t_int - t0,
            "imports_s": t_imp - t0,
            "session_s": box["session_s"],
            "until_session_ready_s": t_load - t0,
            "first_embed_s": t_end - t_load,
            "total_s": total,
            "cpu_s": ru.ru_utime + ru.ru_stime,  # all threads; ORT's workers spin while they wait
            "peak_rss_mb": vm_kb() / 1024,
        }
    )
    return T


def lazy_scipy_signal() -> None:
    """Make ``from scipy.signal import resample_poly`` cheap: a stand-in module whose
    resample_poly imports the real scipy.signal on its first call (simulates a lazy import in
    pqeval.delay, which calls it only for input rates of 32 kHz and above)."""
    import types

    stub = types.ModuleType("scipy.signal")

    def resample_poly(*args, **kw):
        del sys.modules["scipy.signal"]
        import importlib

        real = importlib.import_module("scipy.signal")
        return real.resample_poly(*args, **kw)

    stub.resample_poly = resample_poly
    sys.modules["scipy.signal"] = stub


def early_session(key: str) -> None:
    """Start creating the session of model ``key`` in a thread now (as the CLI could, right after
    parsing its options): the scorer's own ``open_model(key).session`` then waits for it."""
    import threading

    import pqeval.session as S

    model = S.open_model(key)
    threading.Thread(target=lambda: model.session, daemon=True).start()


def patch_cached_session(cache_root: str, threads: int) -> None:
    """Replace OnnxModel.session by the recommended one (cached optimised copy, opt. disabled)."""
    import pqeval.session as S

    def session(self):
        with self._lock:
            if self._session is None:
                if self._verify:
                    self.check_integrity()
                import onnxruntime as ort

                path = cached_optimized(str(self.path), cache_root, ort.__version__)
                spec = {"threads": self.threads, "level": "disable"}
                sess = ort.InferenceSession(path, session_options(ort, spec), providers=["CPUExecutionProvider"])
                self._check_embedded(sess.get_modelmeta().custom_metadata_map.get(S.WEIGHTS_KEY))
                self._session = sess
            return self._session

    S.OnnxModel.session = property(session)


CHILDREN = {
    "ort": child_ort,
    "ort_prepare": child_ort_prepare,
    "import": child_import,
    "openvino": child_openvino,
    "first": child_first,
    "first_ort": _first_run_ort,
    "e2e": child_e2e,
}


def child_main() -> None:
    import json

    task, args = sys.argv[2], json.loads(sys.argv[3])
    result = CHILDREN[task](args)
    print(RESULT_TAG + json.dumps(result), flush=True)


# ================================================================================================
# parent
# ================================================================================================


class Runner:
    """Fresh subprocesses with the environment of the run; results parsed from @@RESULT lines."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "PQEVAL_THREADS", "PYTHONPATH")}
        env.update(
            {
                "PQEVAL_MODELS": cfg.models,
                "PQEVAL_MODELS_ONLY": "1",
                "PQEVAL_VERIFY_CACHE": os.path.join(cfg.work, "verified.json"),
                "PYTHONPATH": cfg.src,
                "PYTHONDONTWRITEBYTECODE": "",
            }
        )
        env.pop("PYTHONDONTWRITEBYTECODE")
        self.env = env
        self.failures: list[str] = []

    def child(self, task: str, args: dict, env: dict | None = None) -> dict | None:
        import json
        import subprocess

        args = {**args, "t_spawn": time.time()}
        cmd = [sys.executable, os.path.abspath(__file__), "--child", task, json.dumps(args)]
        try:
            p = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.cfg.timeout, env={**self.env, **(env or {})}
            )
        except subprocess.TimeoutExpired:
            self.failures.append(f"{task} {args.get('variant', args.get('target', ''))}: timeout")
            return None
        for line in p.stdout.splitlines():
            if line.startswith(RESULT_TAG):
                return json.loads(line[len(RESULT_TAG) :])
        err = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
        self.failures.append(f"{task} {args.get('variant', args.get('target', ''))}: rc {p.returncode}: {err[:200]}")
        return {"error": f"rc {p.returncode}: {err[:200]}"}

    def wall(self, cmd: list[str], env: dict | None = None) -> tuple[float, str]:
        import subprocess

        t = time.perf_counter()
        p = subprocess.run(
            cmd, capture_output=True, text=True, timeout=self.cfg.timeout, env={**self.env, **(env or {})}
        )
        return time.perf_counter() - t, p.stdout if p.returncode in (
            0,
            3,
        ) else f"ERROR rc {p.returncode}: {p.stderr[-300:]}"


def loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def med(v):
    import statistics

    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt_s(v, digits: int = 3) -> str:
    v = [x for x in v if x is not None]
    if not v:
        return "–"
    m = med(v)
    if len(v) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{min(v):.{digits}f}–{max(v):.{digits}f}]"


def rounds(cfg, names: list[str]):
    """Round r runs every name once, starting at a different one each round (alternation)."""
    for r in range(cfg.reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            yield r, name


# --- preparation --------------------------------------------------------------------------------


def prepare(cfg, run: Runner) -> dict:
    """Clips, model inputs, the verify record, the one-time conversions."""
    import json
    import subprocess

    os.makedirs(os.path.join(cfg.work, "out"), exist_ok=True)
    code = f"""
import sys, os, numpy as np
sys.dont_write_bytecode = True  # no __pycache__ in the checkout's bench/
sys.path.insert(0, {os.path.join(ROOT, "bench")!r})
from clips import bench_clip, degraded_clip
from pqeval.atomic import atomic_write_audio
from pathlib import Path
work = Path({cfg.work!r}); (work / 'clips').mkdir(parents=True, exist_ok=True)
for name, f in (('clip', bench_clip), ('degraded', degraded_clip)):
    p = work / 'clips' / f'{{name}}-{CLIP_SECONDS:g}s.wav'
    if not p.exists():
        atomic_write_audio(p, f({CLIP_SECONDS}), 16000)
import soundfile as sf
from pqeval.vggish import VGGishFrontend
from pqeval import openl3 as L
x, sr = sf.read(str(work / 'clips' / 'clip-{CLIP_SECONDS:g}s.wav'), dtype='float64')
ex = VGGishFrontend().examples(x, sr)[:, None].astype(np.float32)
x48 = L.resample_to_48k(x, sr)
n = L.num_windows(len(x48), {HOP})
spec = L.OpenL3Frontend('mel256')(L.cut_windows(x48, 0, n, {HOP}))
np.savez(work / 'inputs.npz', vggish=ex, openl3=spec)
from pqeval.session import OnnxModel
for m in ({VGGISH!r}, {OPENL3!r}):
    OnnxModel(os.path.join({cfg.models!r}, m)).check_integrity()  # hashed once, then checked by stat
print(ex.shape, spec.shape)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=run.env)
    if p.returncode:
        raise SystemExit(f"preparation failed: {p.stderr[-2000:]}")
    prep = {}
    for kind, m in (("vggish", VGGISH), ("openl3", OPENL3)):
        prep[kind] = run.child(
            "ort_prepare", {"work": cfg.work, "path": os.path.join(cfg.models, m), "threads": cfg.threads}
        )
        # record the cached copy's sha256 (what a cache entry's sidecar would hold)
        import hashlib

        opt = prep[kind]["paths"]["optimized"]
        shas = {}
        for f in (opt, opt + ".data"):
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    h.update(chunk)
            shas[os.path.basename(f)] = h.hexdigest()
        prep[kind]["cached_sha"] = shas
    # record the cached copies as verified (as a user's second run finds them): after
    # integrity.RACY_SECONDS, so that their stat can be recorded
    time.sleep(2.5)
    files = {
        p["paths"]["optimized"] + s: sha
        for p in prep.values()
        for s, sha in (("", p["cached_sha"]["model.onnx"]), (".data", p["cached_sha"]["model.onnx.data"]))
    }
    code = f"from pqeval.integrity import has_sha256\nfor p, s in {files!r}.items(): assert has_sha256(p, s), p"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=run.env)
    if p.returncode:
        raise SystemExit(f"verifying the cached copies failed: {p.stderr[-2000:]}")
    with open(os.path.join(cfg.work, "prep.json"), "w") as f:
        json.dump(prep, f, indent=1)
    return prep


# --- imports ------------------------------------------------------------------------------------

IMPORT_STEPS = [
    # (label, prerequisites, target, call)
    ("numpy", [], "numpy", None),
    ("onnxruntime (after numpy)", ["numpy"], "onnxruntime", None),
    ("soundfile (after numpy)", ["numpy"], "soundfile", None),
    ("threadpoolctl + ThreadpoolController() (after numpy)", ["numpy"], "threadpoolctl", "threadpoolctl"),
    ("platformdirs", [], "platformdirs", None),
    ("scipy.fft (after numpy)", ["numpy"], "scipy.fft", None),
    ("scipy.signal (after numpy, scipy.fft)", ["numpy", "scipy.fft"], "scipy.signal", None),
    ("typer", [], "typer", None),
    ("rich.console", [], "rich.console", None),
    ("pydantic (typer's _adapters imports it at command parsing)", ["typer"], "typer._adapters", None),
    ("importlib.metadata (pqeval/__init__ __version__)", [], "importlib.metadata", None),
    ("pqeval (package __init__)", [], "pqeval", None),
    ("pqeval.audio (after numpy, soundfile)", ["numpy", "soundfile", "pqeval"], "pqeval.audio", None),
    ("pqeval.session (after pqeval.audio)", ["pqeval.audio"], "pqeval.session", None),
    ("pqeval.vggish (after pqeval.session)", ["pqeval.audio", "pqeval.session"], "pqeval.vggish", None),
    ("pqeval.openl3 (after pqeval.session)", ["pqeval.audio", "pqeval.session"], "pqeval.openl3", None),
    (
        "pqeval.scoring (after pqeval.vggish)",
        ["pqeval.audio", "pqeval.session", "pqeval.vggish"],
        "pqeval.scoring",
        None,
    ),
    ("pqeval.cli (after pqeval.scoring)", ["pqeval.scoring"], "pqeval.cli", None),
    ("pqeval.cli (alone)", [], "pqeval.cli", None),
]


def importtime(run: Runner, cmd: list[str]) -> tuple[list, float]:
    """-X importtime rows (self us, cumulative us, depth, name) of a command, and its wall."""
    import subprocess

    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-X", "importtime", *cmd], capture_output=True, text=True, timeout=run.cfg.timeout, env=run.env
    )
    wall = time.perf_counter() - t
    rows = []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        s, c, name = line[len("import time:") :].split("|")
        rows.append((int(s), int(c), (len(name) - len(name.lstrip(" "))) // 2 - 0, name.strip()))
    return rows, wall


def importtime_summary(rows: list) -> list[tuple[str, float, float, str]]:
    """Selected modules: (name, cumulative ms, self ms, imported by)."""
    wanted = [
        "numpy",
        "onnxruntime",
        "soundfile",
        "scipy.fft",
        "scipy.signal",
        "scipy.stats",
        "threadpoolctl",
        "platformdirs",
        "typer",
        "rich",
        "pydantic",
        "typer._adapters",
        "importlib.metadata",
        "pqeval",
        "pqeval.cli",
        "pqeval.audio",
        "pqeval.session",
        "pqeval.vggish",
        "pqeval.openl3",
        "pqeval.scoring",
        "pqeval.delay",
        "pqeval.cli.batch",
        "pqeval.render",
        "__editable___pqeval_0_1_0_finder",
        "site",
    ]
    parent: dict[int, int] = {}
    for i, (_, _, d, _) in enumerate(rows):
        for j in range(i + 1, len(rows)):
            if rows[j][2] < d:
                parent[i] = j
                break
    out = []
    for i, (s, c, _, n) in enumerate(rows):
        if n in wanted:
            by = rows[parent[i]][3] if i in parent else "(top level)"
            out.append((n, c / 1000, s / 1000, by))
    return out


def section_imports(cfg, run: Runner, res: dict) -> None:
    clip, deg = cfg.clip, cfg.degraded
    res["importtime"] = {}
    cli = ["-m", "pqeval", "score", clip, deg, "--metrics", "vggish", "--json"]
    coldpath = ["-c", "import pqeval.audio, pqeval.session, pqeval.vggish, soundfile"]
    for name, cmd in (("pqeval score", cli), ("bench cold path imports", coldpath)):
        rows, wall = importtime(run, cmd)
        res["importtime"][name] = {
            "wall_s": wall,
            "total_top_ms": sum(c for _, c, d, _ in rows if d == 0) / 1000,
            "modules": importtime_summary(rows),
        }
    res["import_steps"] = {}
    labels = [s[0] for s in IMPORT_STEPS]
    steps = {s[0]: s for s in IMPORT_STEPS}
    empty = []
    for _, label in rounds(cfg, labels + ["(interpreter: python -c pass)"]):
        if label.startswith("(interpreter"):
            dt, _ = run.wall([sys.executable, "-c", "pass"])
            empty.append(dt)
            continue
        _, pre, target, call = steps[label]
        out = run.child("import", {"pre": pre, "target": target, "call": call})
        if out and "seconds" in out:
            res["import_steps"].setdefault(label, []).append(out["seconds"])
    res["interpreter_wall_s"] = empty


# --- CLI ----------------------------------------------------------------------------------------


def section_cli(cfg, run: Runner, res: dict, prep: dict) -> None:
    import json
    import shutil
    import subprocess

    base = ["score", cfg.clip, cfg.degraded, "--metrics", "vggish", "--json"]
    here = os.path.dirname(os.path.abspath(__file__))
    cache = os.path.join(cfg.work, "cache")

    def wrapper(lazy: bool, cached: bool, early: bool = False) -> list[str]:
        code = f"import sys; sys.dont_write_bytecode = True; sys.path.insert(0, {here!r}); import cold_start as c; "
        if lazy:
            code += "c.lazy_scipy_signal(); "
        if cached:
            code += f"c.patch_cached_session({cache!r}, {cfg.threads}); "
        if early:
            code += "c.early_session('vggish'); "
        code += f"sys.argv = ['pqeval'] + {base!r}; from pqeval.__main__ import main; sys.exit(main())"
        return [sys.executable, "-c", code]

    variants = {
        "as is (python -m pqeval score ...)": [sys.executable, "-m", "pqeval", *base],
        "scipy.signal lazy (simulated)": wrapper(True, False),
        "cached optimised model, opt. disabled (patched)": wrapper(False, True),
        "session created in a thread from the start (patched)": wrapper(False, False, True),
        "scipy.signal lazy + cached optimised": wrapper(True, True),
        "scipy.signal lazy + cached optimised + session thread": wrapper(True, True, True),
    }
    res["cli"] = {k: [] for k in variants}
    outputs = {}
    for r, name in rounds(cfg, list(variants)):
        dt, out = run.wall(variants[name])
        res["cli"][name].append(dt)
        if r == 0:
            outputs[name] = out
    ref = outputs.get("as is (python -m pqeval score ...)", "")
    res["cli_same_json"] = {}
    for k, v in outputs.items():
        try:
            same = (
                json.loads(v)["metrics"] == json.loads(ref)["metrics"]
                and json.loads(v)["delay"] == json.loads(ref)["delay"]
            )
        except (ValueError, KeyError):
            same = False
        res["cli_same_json"][k] = same
    # where the time of `pqeval score` goes: py-spy samples (if installed), by phase
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.path.exists(spy):
        raw = os.path.join(cfg.work, "cli.pyspy.txt")
        cmd = [
            spy,
            "record",
            "--nonblocking",
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            raw,
            "--",
            sys.executable,
            "-m",
            "pqeval",
            *base,
        ]
        shares = []
        for _ in range(min(3, cfg.reps)):
            try:
                t = time.perf_counter()
                subprocess.run(cmd, capture_output=True, timeout=cfg.timeout, env=run.env)
                shares.append(spy_phases(raw, time.perf_counter() - t))
            except (subprocess.TimeoutExpired, OSError):
                break
        if shares:
            keys = list(shares[0])
            res["cli_phases"] = {k: med([s.get(k, 0.0) for s in shares]) for k in keys}


PHASES = [
    # (phase, regular expression over one frame); the first phase with a matching frame wins
    ("import scipy.signal (pqeval.delay, line 37)", r"^<module> \(pqeval/delay.py:37\)"),
    ("import scipy.fft (pqeval.delay, line 36)", r"^<module> \(pqeval/delay.py:36\)"),
    (
        "import typer / click / pydantic / rich",
        r"^<module> \((typer|click|pydantic|pydantic_core|rich|annotated_types)/",
    ),
    ("import numpy", r"^<module> \(numpy/"),
    ("import onnxruntime", r"^<module> \(onnxruntime/"),
    ("import soundfile", r"^<module> \((soundfile|_soundfile|cffi)"),
    ("import pqeval modules (the rest)", r"^<module> \(pqeval/(?!__main__)"),
    ("ORT session creation", r"^InferenceSession\.__init__"),
    ("ORT runs (inference)", r"^Session\.run"),
    ("delay estimation", r"^estimate_delay"),
    ("embedding: resampling + log-mel (numpy)", r"^VGGishEmbedder\.embed"),
    ("reading / checking audio", r"^(open_audio|_Levels|_Source)"),
    ("integrity check (stat record)", r"^(OnnxModel\.check_integrity|has_sha256)"),
    ("command-line parsing (typer/click)", r"^(.*make_context|.*parse_args)"),
    ("interpreter start-up, site", r"^<module> \((site|__editable__)"),
]


def spy_phases(raw: str, wall: float) -> dict:
    """Seconds per phase from a py-spy raw file: each phase's share of the samples x the wall time."""
    import re

    pats = [(p, re.compile(rx)) for p, rx in PHASES]
    counts: dict[str, int] = {}
    with open(raw) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            frames = stack.split(";")
            phase = "other"
            for p, rx in pats:
                if any(rx.search(fr) for fr in frames):
                    phase = p
                    break
            counts[phase] = counts.get(phase, 0) + int(n)
    total = sum(counts.values()) or 1
    return {k: v / total * wall for k, v in counts.items()}


# --- ONNX Runtime options -----------------------------------------------------------------------


def ort_variants(prep: dict, kind: str, threads: int) -> dict[str, dict]:
    """name -> {"path": ..., "spec": ..., "env": ...}; paths None = the original model."""
    p = prep[kind]["paths"]
    orig = None
    no_pp = {"session.disable_prepacking": 1}
    par = {"session.prepack.enable_parallel": 1}
    ortf = {"session.load_model_format": "ORT"}
    v = {
        "today": {"path": orig, "spec": None},
        "level DISABLE_ALL": {"path": orig, "spec": {"level": "disable"}},
        "level BASIC": {"path": orig, "spec": {"level": "basic"}},
        "level EXTENDED": {"path": orig, "spec": {"level": "extended"}},
        "level ALL (today's options rebuilt)": {"path": orig, "spec": {"level": "all"}},
        "optimised .onnx saved once, DISABLE_ALL": {"path": p["optimized"], "spec": {"level": "disable"}},
        "ORT format .ort (path), DISABLE_ALL": {"path": p["ortformat"], "spec": {"level": "disable", "config": ortf}},
        "ORT format bytes + use_ort_model_bytes_directly": {
            "path": p["ortformat"],
            "spec": {"level": "disable", "bytes": True, "config": {**ortf, "session.use_ort_model_bytes_directly": 1}},
        },
        "ORT format bytes + ..._directly + ..._for_initializers": {
            "path": p["ortformat"],
            "spec": {
                "level": "disable",
                "bytes": True,
                "config": {
                    **ortf,
                    "session.use_ort_model_bytes_directly": 1,
                    "session.use_ort_model_bytes_for_initializers": 1,
                },
            },
        },
        "session.disable_prepacking": {"path": orig, "spec": {"level": "all", "config": no_pp}},
        "optimised saved + disable_prepacking": {"path": p["optimized"], "spec": {"level": "disable", "config": no_pp}},
        "pre-packed weights saved to external data (mmap), DISABLE_ALL": {
            "path": p["prepacked"],
            "spec": {"level": "disable"},
        },
        "enable_cpu_mem_arena off": {"path": orig, "spec": {"level": "all", "arena": False}},
        "intra_op threads 1": {"path": orig, "spec": {"level": "all", "threads": 1}},
        "session.intra_op.allow_spinning 0": {
            "path": orig,
            "spec": {"level": "all", "config": {"session.intra_op.allow_spinning": 0}},
        },
        "session.prepack.enable_parallel 1": {"path": orig, "spec": {"level": "all", "config": par}},
        "optimised saved + DISABLE_ALL + prepack.enable_parallel": {
            "path": p["optimized"],
            "spec": {"level": "disable", "config": par},
        },
        "malloc in huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1)": {"path": orig, "spec": None, "env": THP_ENV},
        "optimised saved + DISABLE_ALL + huge pages": {
            "path": p["optimized"],
            "spec": {"level": "disable"},
            "env": THP_ENV,
        },
        "optimised saved + DISABLE_ALL + prepack.enable_parallel + huge pages": {
            "path": p["optimized"],
            "spec": {"level": "disable", "config": par},
            "env": THP_ENV,
        },
    }
    for d in v.values():
        if d["spec"] is not None:
            d["spec"].setdefault("threads", threads)
    return v


def compare_npz(a: str, b: str) -> tuple[bool, float, dict]:
    """(all outputs equal, max abs difference, per output: [values differing, total, max abs, max abs / max |ref|])."""
    import numpy as np

    with np.load(a) as x, np.load(b) as y:
        if set(x.files) != set(y.files):
            return False, float("nan"), {}
        per = {}
        for k in x.files:
            d = np.abs(x[k].astype(np.float64) - y[k].astype(np.float64))
            per[k] = [
                int(np.count_nonzero(d)),
                int(d.size),
                float(d.max()),
                float(d.max() / max(np.abs(y[k]).max(), 1e-30)),
            ]
    return all(v[0] == 0 for v in per.values()), max(v[2] for v in per.values()), per


def section_ort(cfg, run: Runner, res: dict, prep: dict) -> None:
    out_dir = os.path.join(cfg.work, "out")
    os.makedirs(out_dir, exist_ok=True)
    res["ort"] = {}
    for kind, m in (("vggish", VGGISH), ("openl3", OPENL3)):
        if kind not in cfg.kinds:
            continue
        variants = ort_variants(prep, kind, cfg.threads)
        rows: dict = {k: {"runs": [], "exact": [], "maxdiff": [], "per_output": None} for k in variants}
        ref = os.path.join(out_dir, f"ort-{kind}-today-r0.npz")
        names = ["today"] + [k for k in variants if k != "today"]
        for r, name in rounds(cfg, names):  # round 0 starts with today's: the reference
            d = variants[name]
            out = os.path.join(out_dir, f"ort-{kind}-{_slug(name)}-r{r}.npz")
            args = {
                "kind": kind,
                "variant": "today" if d["spec"] is None else name,
                "path": d["path"] or os.path.join(cfg.models, m),
                "spec": d["spec"] or {},
                "threads": cfg.threads,
                "work": cfg.work,
                "warm_reps": 3 if kind == "vggish" else 1,
                "out": out,
            }
            o = run.child("ort", args, d.get("env"))
            rows[name]["runs"].append(o)
            if o and "error" not in o and os.path.exists(ref):
                same, diff, per = compare_npz(out, ref)
                rows[name]["exact"].append(same)
                rows[name]["maxdiff"].append(diff)
                if not same and rows[name]["per_output"] is None:
                    rows[name]["per_output"] = per
        res["ort"][kind] = rows
        res["ort_loadavg_" + kind] = loadavg()


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s)[:60]


# --- OpenVINO -----------------------------------------------------------------------------------


def section_openvino(cfg, run: Runner, res: dict) -> None:
    import shutil

    import numpy as np

    out_dir = os.path.join(cfg.work, "out")
    res["openvino"] = {}
    for kind, m in (("vggish", VGGISH), ("openl3", OPENL3)):
        if kind not in cfg.kinds:
            continue
        cache = os.path.join(cfg.work, f"ov-cache-{kind}")
        rows = {k: [] for k in ("no cache", "CACHE_DIR, 1st process (empty cache)", "CACHE_DIR, 2nd process")}
        for r in range(cfg.reps):
            shutil.rmtree(cache, ignore_errors=True)
            for name in rows:
                out = os.path.join(out_dir, f"ov-{kind}-{_slug(name)}-r{r}.npz")
                args = {
                    "kind": kind,
                    "path": os.path.join(cfg.models, m),
                    "threads": cfg.threads,
                    "work": cfg.work,
                    "warm_reps": 3 if kind == "vggish" else 1,
                    "out": out,
                    "cache_dir": None if name == "no cache" else cache,
                }
                rows[name].append(run.child("openvino", args))
        ref = os.path.join(out_dir, f"ort-{kind}-today-r0.npz")
        acc = {}
        ov_out = os.path.join(out_dir, f"ov-{kind}-no-cache-r0.npz")
        if os.path.exists(ref) and os.path.exists(ov_out):
            with np.load(ref) as a, np.load(ov_out) as b:
                for k in a.files:
                    x, y = a[k].astype(np.float64), b[k].astype(np.float64)
                    d = np.abs(x - y)
                    cos = np.sum(x * y, 1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-30)
                    acc[k] = {
                        "exact": bool(np.array_equal(a[k], b[k])),
                        "max_abs": float(d.max()),
                        "max_rel": float(d.max() / max(np.abs(x).max(), 1e-30)),
                        "cos_min": float(cos.min()),
                        "cos_mean": float(cos.mean()),
                        "differing": int(np.count_nonzero(d)),
                        "total": int(d.size),
                    }
            with np.load(os.path.join(out_dir, f"ov-{kind}-CACHE-DIR--2nd-process-r0.npz")) as c, np.load(ov_out) as b:
                acc["cache_same_as_no_cache"] = all(np.array_equal(c[k], b[k]) for k in b.files)
        res["openvino"][kind] = {"rows": rows, "accuracy": acc}


# --- first embedding ----------------------------------------------------------------------------


def section_first(cfg, run: Runner, res: dict) -> None:
    path = os.path.join(cfg.models, VGGISH)
    per: dict = {}
    ort_runs = []
    for _ in range(cfg.reps):
        o = run.child("first", {"path": path, "threads": cfg.threads, "clip": cfg.clip})
        if o and "steps" in o:
            for k, v in o["steps"].items():
                per.setdefault(k, []).append(v)
        o = run.child("first_ort", {"path": path, "threads": cfg.threads, "work": cfg.work})
        if o and "runs" in o:
            ort_runs.append(o["runs"])
    res["first"] = {"steps": per, "ort_runs": ort_runs}


# --- end to end ---------------------------------------------------------------------------------

E2E_VARIANTS = {
    "today (OnnxModel.session)": {},
    "today, session made in a thread (overlap)": {"overlap": True},
    "today + huge pages": {"env": THP_ENV},
    "cached optimised, DISABLE_ALL": {"cached": True},
    "cached optimised, DISABLE_ALL, prepack.enable_parallel": {
        "cached": True,
        "config": {"session.prepack.enable_parallel": 1},
    },
    "cached optimised, DISABLE_ALL, session made in a thread (overlap)": {"cached": True, "overlap": True},
    "cached optimised, DISABLE_ALL + huge pages": {"cached": True, "env": THP_ENV},
    "cached optimised, DISABLE_ALL + huge pages + overlap": {"cached": True, "overlap": True, "env": THP_ENV},
    "NOT EXACT: cached optimised, DISABLE_ALL, disable_prepacking": {
        "cached": True,
        "config": {"session.disable_prepacking": 1},
    },
    "NOT EXACT: cached optimised, DISABLE_ALL, disable_prepacking + overlap": {
        "cached": True,
        "overlap": True,
        "config": {"session.disable_prepacking": 1},
    },
}


def section_e2e(cfg, run: Runner, res: dict, prep: dict) -> None:
    import numpy as np

    out_dir = os.path.join(cfg.work, "out")
    res["e2e"] = {}
    for kind, m in (("vggish", VGGISH), ("openl3", OPENL3)):
        if kind not in cfg.kinds:
            continue
        names = [n for n in E2E_VARIANTS if not cfg.e2e_only or n in cfg.e2e_only.split("|")]
        if kind == "openl3":
            names = [n for n in names if "huge" not in n and "parallel" not in n and "NOT EXACT" not in n]
        rows: dict = {k: {"runs": [], "exact": []} for k in names}
        e2e_cfg = argparse_namespace(cfg, reps=cfg.e2e_reps)
        ref = os.path.join(out_dir, f"e2e-{kind}-today-r0.npy")
        for r, name in rounds(e2e_cfg, names):  # round 0 starts with today's: the reference
            d = E2E_VARIANTS[name]
            variant = ("cached" if d.get("cached") else "today") + ("-overlap" if d.get("overlap") else "")
            out = os.path.join(out_dir, f"e2e-{kind}-{'today' if name == names[0] else _slug(name)}-r{r}.npy")
            args = {
                "kind": kind,
                "variant": variant,
                "path": os.path.join(cfg.models, m),
                "threads": cfg.threads,
                "clip": cfg.clip,
                "cache": os.path.join(cfg.work, "cache"),
                "cached_sha": prep[kind]["cached_sha"],
                "config": d.get("config", {}),
                "out": out,
            }
            o = run.child("e2e", args, d.get("env"))
            rows[name]["runs"].append(o)
            if o and "error" not in o and os.path.exists(ref):
                rows[name]["exact"].append(bool(np.array_equal(np.load(out), np.load(ref))))
        res["e2e"][kind] = rows


SECTION_KEYS = {  # the results of each section (for --merge)
    "e2e": ["e2e"],
    "ort": ["ort", "ort_loadavg_vggish", "ort_loadavg_openl3"],
    "first": ["first"],
    "openvino": ["openvino"],
    "imports": ["importtime", "import_steps", "interpreter_wall_s"],
    "cli": ["cli", "cli_same_json", "cli_phases"],
}


SECTION_TASKS = {
    "e2e": ["e2e"],
    "ort": ["ort", "ort_prepare"],
    "first": ["first", "first_ort"],
    "openvino": ["openvino"],
    "imports": ["import"],
    "cli": [],
}


def merge_earlier(path: str, sections: list[str], res: dict, prep: dict) -> None:
    """Keep the sections of an earlier run's .json that this run did not measure (labelled in the
    report), and the one-time costs it measured where this run reused its files."""
    import json

    with open(path) as f:
        earlier = json.load(f)
    old_res, old_prep = earlier["results"], earlier.get("prep") or {}
    kept = []
    for name, keys in SECTION_KEYS.items():
        if name not in sections and any(k in old_res for k in keys):
            for k in keys:
                if k in old_res:
                    res[k] = old_res[k]
            res["section_load"][name] = old_res.get("section_load", {}).get(name)
            older = old_res.get("merged") or {}
            cmd = old_res.get("section_command", {}).get(name)
            if cmd is None:  # a run from before section_command was recorded
                cmd = older.get("command") if name in older.get("sections", []) else old_res["command"]
            res.setdefault("section_command", {})[name] = cmd
            kept.append(name)
    for name in ("e2e", "ort", "openvino"):  # a model this run left out (--kinds): the earlier run's rows
        if name in sections and name in res and isinstance(old_res.get(name), dict):
            for kind, rows in old_res[name].items():
                if kind not in res[name]:
                    res[name][kind] = rows
                    res.setdefault("kinds_merged", []).append(f"{name}/{kind}")
                elif name == "e2e":  # variants this run left out (--e2e-only): the earlier run's, marked
                    for variant, row in rows.items():
                        if variant.removesuffix(" †") not in res[name][kind]:
                            res[name][kind][variant.removesuffix(" †") + " †"] = row
                            res["e2e_dagger"] = True
    if kept:
        res["merged"] = {"sections": kept}
        tasks = {t for name in kept for t in SECTION_TASKS[name]}
        for f in old_res.get("failures", []):
            bare = f.removeprefix("(earlier run) ")
            if bare.split(" ", 1)[0] in tasks:
                res.setdefault("failures", []).append(f"(earlier run) {bare}")
    for kind, p in old_prep.items():
        for k in ("optimized", "prepacked", "ortformat"):
            if "seconds" not in prep.get(kind, {}).get(k, {}) and "seconds" in p.get(k, {}):
                prep[kind][k] = p[k]


def argparse_namespace(cfg, **changes):
    import argparse

    return argparse.Namespace(**{**vars(cfg), **changes})


# --- report -------------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return "unknown CPU"
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "unknown CPU")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{name} ({os.cpu_count()} logical cores; {', '.join(isa) or 'no AVX2'})"


def versions(run: Runner) -> str:
    import subprocess

    code = (
        "import importlib.metadata as m\n"
        "out=[]\n"
        "for p in ('numpy','scipy','onnxruntime','openvino','soundfile','typer','pydantic','rich','threadpoolctl'):\n"
        "    try: out.append(f'{p} {m.version(p)}')\n"
        "    except Exception: pass\n"
        "import sys; print(f'Python {sys.version.split()[0]}, ' + ', '.join(out))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=run.env)
    return p.stdout.strip()


def _runs(rows: list, key: str) -> list:
    return [r.get(key) for r in rows if r and "error" not in r]


def report(cfg, res: dict, prep: dict | None) -> str:
    L: list[str] = []
    w = L.append
    w("# Cold start: where it goes and what shortens it (`python bench/cold_start.py`)")
    w("")
    w(f"Command: `{res['command']}` ({res['minutes']:.1f} min). Machine: {res['cpu']}. {res['versions']}.")
    w(
        f"Load average at start {res['load_start']}, at end {res['load_end']}: another job shared the "
        f"{os.cpu_count()} cores during the run, so every number is the median [min–max] of {cfg.reps} fresh "
        f"processes (end to end: {_e2e_n(res, cfg)}), variants run alternately round by round. pqeval imported from "
        f"`{res['src']}`{res.get('src_note', '')}. Models: seeded weights (`seeded:0`); times do not depend on "
        "weight values."
    )
    if res.get("merged"):
        by_cmd: dict = {}
        for name, cmd in res.get("section_command", {}).items():
            if cmd != res["command"]:
                by_cmd.setdefault(cmd, []).append(name)
        for cmd, names in by_cmd.items():
            w(f"Sections {', '.join(names)} are kept from an earlier run on the same machine: `{cmd}`.")
    if res.get("e2e_dagger"):
        w("† = end-to-end row from the earlier run (other load; compare rows of the same run).")
    if res.get("kinds_merged"):
        w(f"Rows kept from the earlier run for: {', '.join(res['kinds_merged'])}.")
    if res.get("section_load"):
        w(
            "Load average before / after each section: "
            + "; ".join(f"{k} {v[0]} / {v[1]} ({v[2] / 60:.1f} min)" for k, v in res["section_load"].items() if v)
            + "."
        )
    w("")
    w(
        "Cold start = interpreter + imports + model load (session creation) + first embedding of a 10 s clip "
        "(16 kHz, 10 VGGish examples / 20 OpenL3 windows at hop 0.5 s)."
    )
    w("")
    summary(res, w)
    if "e2e" in res:
        w("## End to end: the bench's cold path (timed from process spawn)")
        w("")
        w(
            "As `bench/worker.py` `_cold` for `pqeval-vggish` / `pqeval-openl3`: import pqeval.audio/session/vggish "
            "(openl3), integrity check (sha256 by stat record), session, read the WAV, first embedding. "
            "`cached optimised` = the model optimised once at level ALL by this ORT on this CPU, saved with "
            "its weights as external data (one-time cost below), loaded with DISABLE_ALL after checking the copy's "
            "sha256 by stat record; `overlap` = session created in a thread while the main thread imports "
            "the rest, reads the clip and builds the embedder (ORT releases the GIL while it creates a session). "
            "`bit-identical` = frames `np.array_equal` to today's."
        )
        w("")
        w(
            "| model | variant | total s | process CPU s | interpreter | imports + verify | session "
            "| waited for session | first embedding | peak RSS MB | bit-identical |"
        )
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for kind, rows in res["e2e"].items():
            for name, d in rows.items():
                runs = d["runs"]
                ex = d["exact"]
                w(
                    f"| {kind} | {name} | {fmt_s(_runs(runs, 'total_s'))} | {fmt_s(_runs(runs, 'cpu_s'))} | "
                    f"{fmt_s(_runs(runs, 'interpreter_s'))} | "
                    f"{fmt_s(_runs(runs, 'import_and_verify_s'))} | {fmt_s(_runs(runs, 'session_s'))} | "
                    f"{fmt_s(_runs(runs, 'waited_for_session_s')) if 'overlap' in name else '–'} | "
                    f"{fmt_s(_runs(runs, 'first_embed_s'))} | {fmt_s(_runs(runs, 'peak_rss_mb'), 0)} | "
                    f"{_exact(ex)} |"
                )
        w("")
        w(
            "Targets (10× the originals, bench/results/results.md): VGGish ≤ 0.32 s (torchvggish 3.20 s), OpenL3 ≤ "
            "0.92 s (openl3/TF 9.19 s)."
        )
        w("")
    if prep:
        w("One-time preparation per model (measured once, in a fresh process): ")
        w("")
        w("| model | optimised .onnx + .data (cache entry) | with pre-packed weights | ORT format (.ort) |")
        w("|---|---|---|---|")
        for kind, p in prep.items():
            o, pp, of = p.get("optimized", {}), p.get("prepacked", {}), p.get("ortformat", {})
            w(f"| {kind} | {_prep(o)} | {_prep(pp)} | {_prep(of)} |")
        w("")
    if "ort" in res:
        w("## ONNX Runtime session options")
        w("")
        w(
            "Each row a fresh process: session creation, first run (VGGish: the 10 examples in one run, all three "
            "outputs; OpenL3: 20 windows, one run each, as the embedders call them), warm run (same input; VGGish "
            "median "
            "of 3), peak RSS (VmHWM), and whether every output is bit-identical (`np.array_equal`) to today's session "
            "on the same input (max |difference| when not). `today` = `pqeval.session.OnnxModel.session`."
        )
        w("")
        for kind, rows in res["ort"].items():
            w(f"### {kind}")
            w("")
            w(
                "| variant | session s | session CPU s | first run s | warm run s | peak RSS MB | bit-identical (max "
                "abs diff) |"
            )
            w("|---|---|---|---|---|---|---|")
            for name, d in rows.items():
                runs = d["runs"]
                errs = [r["error"] for r in runs if r and "error" in r]
                if errs and len(errs) == len(runs):
                    w(f"| {name} | fails: {errs[0][:90]} | | | | | |")
                    continue
                ex = d["exact"]
                md = max([x for x in d["maxdiff"] if x == x] or [0.0])
                w(
                    f"| {name} | {fmt_s(_runs(runs, 'session_s'))} | {fmt_s(_runs(runs, 'session_cpu_s'))} | "
                    f"{fmt_s(_runs(runs, 'first_s'))} | "
                    f"{fmt_s(_runs(runs, 'warm_s'))} | {fmt_s(_runs(runs, 'peak_rss_mb'), 0)} | "
                    f"{_exact(ex)}{'' if all(ex) else f' ({md:.3g})'} |"
                )
            diffs = [(n, d["per_output"]) for n, d in rows.items() if d.get("per_output")]
            if diffs:
                w("")
                w(
                    "Variants whose outputs differ, per output (values differing / total, max abs diff, relative to "
                    "max |today|):"
                )
                w("")
                for n, per in diffs:
                    w(f"- {n}: " + "; ".join(f"`{k}` {v[0]}/{v[1]}, {v[2]:.3g} ({v[3]:.2g})" for k, v in per.items()))
            opts = next((r.get("options") for r in rows["today"]["runs"] if r and "options" in r), None)
            if opts:
                w("")
                w(
                    f"today's options: intra-op {opts['intra']}, inter-op {opts['inter']}, {opts['level']}, arena "
                    f"{opts['arena']}."
                )
            w("")
    if "openvino" in res:
        w("## OpenVINO (CPU plugin)")
        w("")
        w(
            "`core.compile_model(path, 'CPU', {INFERENCE_NUM_THREADS: threads, INFERENCE_PRECISION_HINT: f32})`, "
            "optionally after `core.set_property({'CACHE_DIR': dir})` (1st process: empty cache, 2nd: the cache the "
            "1st wrote). Same inputs and call pattern as the ORT table."
        )
        w("")
        w("| model | variant | import openvino s | read+compile s | first run s | warm run s | peak RSS MB |")
        w("|---|---|---|---|---|---|---|")
        for kind, d in res["openvino"].items():
            for name, runs in d["rows"].items():
                w(
                    f"| {kind} | {name} | {fmt_s(_runs(runs, 'import_s'))} | {fmt_s(_runs(runs, 'compile_s'))} | "
                    f"{fmt_s(_runs(runs, 'first_s'))} | {fmt_s(_runs(runs, 'warm_s'))} | "
                    f"{fmt_s(_runs(runs, 'peak_rss_mb'), 0)} |"
                )
        w("")
        w("Outputs against ONNX Runtime (today's session), same input:")
        w("")
        w(
            "| model | output | bit-identical | max abs diff | max abs diff / max abs | cosine per frame min / mean "
            "| values differing |"
        )
        w("|---|---|---|---|---|---|---|")
        for kind, d in res["openvino"].items():
            for k, a in d["accuracy"].items():
                if not isinstance(a, dict):
                    continue
                w(
                    f"| {kind} | {k} | {'yes' if a['exact'] else 'no'} | {a['max_abs']:.3g} | {a['max_rel']:.3g} | "
                    f"{a['cos_min']:.9f} / {a['cos_mean']:.9f} | {a['differing']} of {a['total']} |"
                )
        w("")
    if "first" in res:
        w("## The first VGGish embedding, step by step (fresh process, today's session)")
        w("")
        w(
            "The steps of `VGGishEmbedder.embed` timed one by one, first time vs the same steps again in the same "
            "process (ms):"
        )
        w("")
        w("| step | 1st ms | 2nd ms |")
        w("|---|---|---|")
        for k, v in res["first"]["steps"].items():
            firsts = [x[0] * 1000 for x in v]
            seconds = [x[1] * 1000 for x in v if len(x) > 1]
            w(f"| {k} | {fmt_s(firsts, 1)} | {fmt_s(seconds, 1)} |")
        runs = res["first"]["ort_runs"]
        if runs:
            w("")
            w(
                "ORT alone, fresh session, the same 10 examples four times (ms): "
                + ", ".join(f"run {i + 1} {fmt_s([r[i] * 1000 for r in runs], 1)}" for i in range(len(runs[0])))
                + "."
            )
        w("")
    if "import_steps" in res:
        w("## Imports")
        w("")
        w(
            "Wall time of one import in a fresh process, after its prerequisites were imported (ms). "
            "Interpreter alone (`python -c pass`, process wall incl. exit): "
            f"{fmt_s([x * 1000 for x in res['interpreter_wall_s']], 1)} ms."
        )
        w("")
        w("| import | ms |")
        w("|---|---|")
        for k, v in res["import_steps"].items():
            w(f"| {k} | {fmt_s([x * 1000 for x in v], 1)} |")
        w("")
        for name, d in res["importtime"].items():
            w(
                f"`python -X importtime` of {name} (one run; importtime itself inflates times, shares are what "
                "matter): "
                f"top-level imports {d['total_top_ms']:.0f} ms."
            )
            w("")
            w("| module | cumulative ms | self ms | imported by |")
            w("|---|---|---|---|")
            for n, c, s, by in sorted(d["modules"], key=lambda t: -t[1]):
                w(f"| {n} | {c:.1f} | {s:.1f} | {by} |")
            w("")
    if "cli" in res:
        w("## `pqeval score CLEAN DEGRADED --metrics vggish --json` (fresh process, wall incl. exit)")
        w("")
        w("| variant | wall s | JSON metrics + delay identical |")
        w("|---|---|---|")
        for k, v in res["cli"].items():
            same = res.get("cli_same_json", {}).get(k)
            w(f"| {k} | {fmt_s(v)} | {'yes' if same else 'no' if same is not None else '–'} |")
        w("")
        if "cli_phases" in res:
            w(
                "Where the time of the unchanged command goes: py-spy's samples (`--nonblocking`, 250 Hz, Python "
                "stacks) by phase, as shares of "
                "the wall time of that run (median of 3 runs; sampling slows the process a little; 'other' = "
                "interpreter "
                "start-up and exit, unattributed native time):"
            )
            w("")
            w("| phase | s |")
            w("|---|---|")
            for k, v in sorted(res["cli_phases"].items(), key=lambda kv: -kv[1]):
                w(f"| {k} | {v:.3f} |")
            w("")
    if res.get("failures"):
        counts: dict = {}
        for f in res["failures"]:
            counts[f] = counts.get(f, 0) + 1
        w("Failed children: " + "; ".join(f"{f} (×{n})" for f, n in counts.items()))
        w("")
    return "\n".join(L)


def summary(res: dict, w) -> None:
    """The headline numbers, computed from the tables below."""
    lines = []
    e2e = res.get("e2e", {}).get("vggish")
    if e2e:

        def stat(name):
            t = _runs(e2e[name]["runs"], "total_s")
            return (med(t), min(t)) if t else (None, None)

        today = next(iter(e2e))
        exact = [n for n, d in e2e.items() if d["exact"] and all(d["exact"]) and "NOT EXACT" not in n and "†" not in n]
        best = min(exact, key=lambda n: stat(n)[0])
        robust = [n for n in exact if "huge" not in n]
        best_robust = min(robust, key=lambda n: stat(n)[0])
        inexact = [n for n in e2e if "NOT EXACT" in n and "†" not in n]
        lines.append(
            f"VGGish cold start (bench path, median / fastest of the processes): today {stat(today)[0]:.3f} / "
            f"{stat(today)[1]:.3f} s; best bit-identical variant without huge pages ({best_robust}) "
            f"{stat(best_robust)[0]:.3f} / {stat(best_robust)[1]:.3f} s"
            + (
                f"; best bit-identical variant ({best}) {stat(best)[0]:.3f} / {stat(best)[1]:.3f} s"
                if best != best_robust
                else ""
            )
            + (
                f"; fastest with changed float outputs ({inexact[0].removeprefix('NOT EXACT: ')}) "
                f"{stat(inexact[0])[0]:.3f} / {stat(inexact[0])[1]:.3f} s"
                if inexact
                else ""
            )
            + ". Target ≤ 0.32 s."
        )
    ort = res.get("ort", {})
    if "vggish" in ort:
        rows = ort["vggish"]

        def cpu(name):
            return med(_runs(rows[name]["runs"], "session_cpu_s"))

        keys = ["today", "optimised .onnx saved once, DISABLE_ALL", "optimised saved + DISABLE_ALL + huge pages"]
        if all(k in rows for k in keys):
            lines.append(
                "VGGish session creation, CPU seconds (robust to the other job): today "
                f"{cpu(keys[0]):.3f}, cached optimised copy {cpu(keys[1]):.3f}, + huge pages {cpu(keys[2]):.3f}, "
                f"without pre-packing (outputs change) {cpu('optimised saved + disable_prepacking'):.3f}."
            )
    if "openl3" in ort and "today" in ort["openl3"]:
        rows = ort["openl3"]
        lines.append(
            "OpenL3 session creation: today "
            f"{med(_runs(rows['today']['runs'], 'session_s')):.3f} s, cached optimised copy "
            f"{med(_runs(rows['optimised .onnx saved once, DISABLE_ALL']['runs'], 'session_s')):.3f} s; its first "
            f"embedding (20 windows) {med(_runs(rows['today']['runs'], 'first_s')):.2f} s is compute."
        )
    cli = res.get("cli")
    if cli:
        names = list(cli)
        lines.append(
            "`pqeval score` (VGGish): as is "
            + "; ".join(f"{n.split(' (')[0] if i else 'as is'} {med(cli[n]):.2f} s" for i, n in enumerate(names))[
                len("as is ") :
            ]
            + "."
        )
    if lines:
        w("## Summary")
        w("")
        for ln in lines:
            w(f"- {ln}")
        w("")


HAND_WRITTEN = "<!-- hand-written: kept when the tables above are regenerated -->"


def write_report(path: str, text: str) -> None:
    """Write the report, keeping a hand-written part of the existing file (from HAND_WRITTEN on)."""
    kept = ""
    try:
        with open(path) as f:
            old = f.read()
        if HAND_WRITTEN in old:
            kept = "\n" + old[old.index(HAND_WRITTEN) :].rstrip("\n") + "\n"
    except OSError:
        pass
    with open(path, "w") as f:
        f.write(text + "\n" + kept)


def _e2e_n(res: dict, cfg) -> int:
    """Processes per end-to-end variant in these results."""
    for rows in res.get("e2e", {}).values():
        for d in rows.values():
            return len(d["runs"])
    return cfg.e2e_reps


def _exact(ex: list) -> str:
    if not ex:
        return "–"
    if all(ex):
        return f"yes ({len(ex)}/{len(ex)})"
    return f"**no** ({sum(ex)}/{len(ex)} equal)"


def _prep(d: dict) -> str:
    if not d:
        return "–"
    s = f"{d['bytes'] / 1e6:.0f} MB" if d.get("bytes") else ""
    if d.get("seconds") is not None:
        s += f", {d['seconds']:.2f} s"
    if d.get("reused"):
        s += " (reused)"
    return s


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    import argparse
    import json
    import shlex

    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--models", required=True, help="directory with vggish.onnx(+.data) and openl3-mel256-music-512.onnx"
    )
    ap.add_argument("--reps", type=int, default=5, help="fresh processes per variant (median)")
    ap.add_argument("--e2e-reps", type=int, default=7, help="fresh processes per end-to-end variant")
    ap.add_argument("--src", default=os.path.join(ROOT, "runtime"), help="directory that holds the pqeval package")
    ap.add_argument("--work", default="/tmp/cold", help="scratch directory (clips, caches, outputs)")
    ap.add_argument("--sections", default="imports,cli,ort,openvino,first,e2e")
    ap.add_argument("--kinds", default="vggish,openl3")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per child process")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "cold_start.md"))
    ap.add_argument("--src-note", default="", help="text appended after the --src path in the report")
    ap.add_argument("--e2e-only", default="", help="'|'-separated names: only these end-to-end variants")
    ap.add_argument("--report-only", default="", help="re-render the report of a results .json (no measurement)")
    ap.add_argument(
        "--merge",
        default="",
        help="results .json of an earlier run: its sections that this run does not measure are kept (and labelled)",
    )
    cfg = ap.parse_args()
    cfg.models = os.path.abspath(cfg.models)
    cfg.src = os.path.abspath(cfg.src)
    cfg.work = os.path.abspath(cfg.work)
    cfg.kinds = cfg.kinds.split(",")
    cfg.clip = os.path.join(cfg.work, "clips", f"clip-{CLIP_SECONDS:g}s.wav")
    cfg.degraded = os.path.join(cfg.work, "clips", f"degraded-{CLIP_SECONDS:g}s.wav")
    sections = cfg.sections.split(",")
    if cfg.report_only:
        with open(cfg.report_only) as f:
            saved = json.load(f)
        cfg.reps, cfg.e2e_reps = saved["results"].get("reps") or [cfg.reps, cfg.e2e_reps]
        text = report(cfg, saved["results"], saved.get("prep"))
        write_report(cfg.out, text)
        print(text)
        return
    t_start = time.time()
    run = Runner(cfg)
    res: dict = {
        "command": "python " + " ".join(shlex.quote(a) for a in ["bench/cold_start.py", *sys.argv[1:]]),
        "cpu": cpu_name(),
        "versions": versions(run),
        "load_start": loadavg(),
        "src": cfg.src,
        "src_note": cfg.src_note,
    }
    print(f"{res['cpu']}; {res['versions']}; load {res['load_start']}", flush=True)
    prep = prepare(cfg, run)
    print(
        "prepared:",
        json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "cached_sha"} for k, v in prep.items()}),
        flush=True,
    )
    steps = [
        ("e2e", lambda: section_e2e(cfg, run, res, prep)),
        ("ort", lambda: section_ort(cfg, run, res, prep)),
        ("first", lambda: section_first(cfg, run, res)),
        ("openvino", lambda: section_openvino(cfg, run, res)),
        ("imports", lambda: section_imports(cfg, run, res)),
        ("cli", lambda: section_cli(cfg, run, res, prep)),
    ]
    res["section_load"] = {}
    for name, fn in steps:
        if name in sections:
            t, before = time.time(), loadavg()
            fn()
            res["section_load"][name] = [before, loadavg(), time.time() - t]
            res.setdefault("section_command", {})[name] = res["command"]
            print(f"section {name}: {time.time() - t:.0f} s, load {loadavg()}", flush=True)
    res["load_end"] = loadavg()
    res["minutes"] = (time.time() - t_start) / 60
    res["failures"] = run.failures
    res["reps"] = [cfg.reps, cfg.e2e_reps]
    if cfg.merge:
        merge_earlier(cfg.merge, sections, res, prep)
    text = report(cfg, res, prep)
    os.makedirs(os.path.dirname(cfg.out), exist_ok=True)
    write_report(cfg.out, text)
    with open(os.path.join(cfg.work, "cold_start.json"), "w") as f:  # all numbers (for --merge / --report-only)
        json.dump({"results": res, "prep": prep}, f, indent=1, default=str)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main()
    else:
        main()
