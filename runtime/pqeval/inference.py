"""Inference sessions for each engine (ONNX Runtime, OpenVINO), made only by :mod:`pqeval.session`.

A session runs named float32 inputs to the requested outputs: :meth:`Session.run`. ``fp32`` on
ONNX Runtime is the parity reference; the other engine × precision pairs are fast paths whose
accuracy against it is measured (``bench/accuracy.py``, docs/engines.md) and bounded
(:data:`pqeval.registry.ACCURACY`). :func:`check` refuses, with one line, a pair that this
machine cannot run natively: an unknown or uninstalled engine, a precision the engine does not
offer, or one the CPU lacks the instructions for (:mod:`pqeval.cpu`).

OpenVINO's compiled models are cached (``CACHE_DIR``) in the user cache directory
(:func:`openvino_cache_dir`), keyed by OpenVINO itself on the model file, its options and the
CPU, so a second process skips compilation.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import cpu
from .errors import ModelError, UsageError
from .registry import ENGINES, PRECISIONS

#: OpenVINO's inference-precision hint per ``--precision``. fp32 is set explicitly: on CPUs with
#: AMX or AVX512_BF16 OpenVINO would otherwise choose bf16 by itself. int8 models carry their
#: quantisation in the graph (QDQ) and run with the f32 hint for everything else.
OPENVINO_HINTS: dict[str, str] = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
#: OpenVINO layer types that do the arithmetic (their runtime precision tells whether a fast path
#: is real), and the runtime precisions that count as int8 / bf16.
COMPUTE_LAYERS: frozenset[str] = frozenset({"Convolution", "FullyConnected", "MatMul", "Gemm"})
INT8_TYPES: frozenset[str] = frozenset({"u8", "i8"})


class Session(Protocol):
    """What :class:`pqeval.session.OnnxModel` runs: named inputs -> the requested outputs."""

    engine: str
    precision: str
    input_names: list[str]
    output_names: list[str]
    embedded: Mapping[str, str]  # the metadata written inside the ONNX file

    def run(self, inputs: Mapping[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]: ...


def installed(engine: str) -> bool:
    """Whether the engine's Python package is importable here."""
    return importlib.util.find_spec(ENGINES[engine].module) is not None


def refusal(engine: str, precision: str) -> str | None:
    """None if this machine can run ``engine`` at ``precision`` natively, else why not (one line)."""
    if engine not in ENGINES:
        return f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}"
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}"
    e = ENGINES[engine]
    if precision not in e.precisions:
        return f"--engine {engine} has no {precision} path: {e.refusals.get(precision, 'not offered')}"
    if not installed(engine):
        return f"--engine {engine} needs the {e.module} package: pip install 'pqeval[{e.extra}]'"
    lacking = cpu.missing_for(precision)
    if lacking is not None:
        known = "" if cpu.flags_known() or precision != "bf16" else " (instruction sets could not be read here)"
        return f"--precision {precision} needs {lacking}, which this CPU ({cpu.name()}) lacks{known}"
    return None


def check(engine: str, precision: str) -> None:
    """UsageError (exit 2) if :func:`refusal` gives a reason."""
    reason = refusal(engine, precision)
    if reason is not None:
        raise UsageError(reason)


def engine_table() -> dict[str, Any]:
    """This machine's CPU (name, notable instruction sets) and, per engine × precision, whether it
    runs here (``ok``) or why not (``reason``): what ``pqeval engines`` shows."""
    from .registry import DEFAULT_ENGINE, DEFAULT_PRECISION

    rows = []
    for name, e in ENGINES.items():
        for precision in PRECISIONS:
            reason = refusal(name, precision)
            rows.append(
                {
                    "engine": name,
                    "precision": precision,
                    "ok": reason is None,
                    "default": (name, precision) == (DEFAULT_ENGINE, DEFAULT_PRECISION),
                    "reason": reason or "",
                    "description": e.description,
                }
            )
    return {"cpu": cpu.name(), "instruction_sets": cpu.summary(), "engines": rows}


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


class OrtSession:
    """ONNX Runtime on the CPU execution provider, explicit threads, all graph optimisations."""

    engine = "ort"

    def __init__(self, path: Path, threads: int, precision: str) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.enable_cpu_mem_arena = True  # ORT's default; on or off: same speed and VGGish RSS (bench/ort_tuning.py)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            self.ort = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for corrupt files
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({_first_line(e)})") from None
        self.precision = precision
        self.input_names = [i.name for i in self.ort.get_inputs()]
        self.output_names = [o.name for o in self.ort.get_outputs()]
        self.embedded = self.ort.get_modelmeta().custom_metadata_map

    def run(self, inputs: Mapping[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        return self.ort.run(outputs, dict(inputs))


def openvino_cache_dir() -> Path:
    """Where OpenVINO keeps compiled models: ``$PQEVAL_OPENVINO_CACHE``, else platformdirs' user
    cache directory + ``/openvino`` (``~/.cache/pqeval/openvino`` on Linux)."""
    env = os.environ.get("PQEVAL_OPENVINO_CACHE", "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("pqeval", appauthor=False) / "openvino"


class OpenVINOSession:
    """OpenVINO's CPU plugin on the same ONNX file: latency mode, one stream, explicit threads and
    inference precision, compiled models cached on disk. Refuses a precision whose fast path the
    compiled model does not actually use (no compute layer in int8 / bf16)."""

    engine = "openvino"

    def __init__(self, path: Path, threads: int, precision: str) -> None:
        import openvino as ov

        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        core = ov.Core()
        cache = openvino_cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache)})
        except (OSError, RuntimeError):
            pass  # no cache: every process compiles (slower start, same numbers)
        try:
            self._compiled = core.compile_model(str(path), "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with multi-line text
            raise ModelError(f"{path}: OpenVINO cannot load it ({_first_line(e)})") from None
        self.precision = precision
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one request: ORT sessions may be run from several threads, so this too
        self._outputs = {o.get_any_name(): o for o in self._compiled.outputs}
        self.input_names = [i.get_any_name() for i in self._compiled.inputs]
        self.output_names = list(self._outputs)
        self.embedded = _embedded(path)
        self._check_fast_path(path)

    def compute_precisions(self) -> set[str]:
        """The runtime precisions of the compiled model's compute layers (e.g. ``{"u8"}``)."""
        found = set()
        for op in self._compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if str(info["layerType"].astype(str)) in COMPUTE_LAYERS:
                found.add(str(info["runtimePrecision"].astype(str)))
        return found

    def _check_fast_path(self, path: Path) -> None:
        if self.precision == "fp32":
            return
        want = INT8_TYPES if self.precision == "int8" else {"bf16"}
        got = self.compute_precisions()
        if not got & want:
            raise ModelError(
                f"{path}: OpenVINO runs none of its compute layers in {self.precision} "
                f"(they run in {', '.join(sorted(got)) or 'nothing'}); use --engine ort for this model"
            )

    def run(self, inputs: Mapping[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        names = self.output_names if outputs is None else outputs
        with self._lock:
            result = self._request.infer({k: np.ascontiguousarray(v) for k, v in inputs.items()})
            return [np.array(result[self._outputs[n]], copy=True) for n in names]  # the request reuses its buffers


def _embedded(path: Path) -> dict[str, str]:
    from .session import embedded_metadata

    return embedded_metadata(path)


SESSIONS: dict[str, type] = {"ort": OrtSession, "openvino": OpenVINOSession}


def create(path: Path, threads: int, engine: str, precision: str) -> Session:
    """A session of ``engine`` on ``path`` at ``precision`` (the caller, :class:`pqeval.session.OnnxModel`,
    has run :func:`check` before reading the file)."""
    session: Session = SESSIONS[engine](path, threads, precision)
    return session
