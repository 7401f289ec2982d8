"""The one place that finds model files and creates ONNX Runtime sessions (lazily).

Lookup order for ``<key>.onnx``: the directories in ``$PQEVAL_MODELS`` (os.pathsep-separated),
then the checkout's ``models/``, then the user cache ``$XDG_CACHE_HOME/pqeval/models`` (default
``~/.cache/pqeval/models``). Each exported model has a sidecar ``<key>.onnx.json`` holding its
metadata and sha256; the file is checked against it (:mod:`pqeval.integrity`) before a session
is made.
"""

from __future__ import annotations

import json
import os
import threading
from functools import cached_property
from pathlib import Path

import numpy as np

from . import integrity
from .errors import ModelError
from .provenance import Provenance
from .registry import export_hint

CHECKOUT_MODELS = Path(__file__).resolve().parents[2] / "models"
WEIGHTS_KEY = "pqeval.weights"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pqeval/models``: exported and installed models of this user."""
    return integrity.user_cache_dir() / "models"


def search_dirs() -> list[Path]:
    """Directories searched for model files, in order."""
    env = [Path(p) for p in os.environ.get("PQEVAL_MODELS", "").split(os.pathsep) if p]
    return env + [CHECKOUT_MODELS, user_cache_dir()]


def find_model(key: str) -> Path:
    """Path of ``<key>.onnx`` in the first search directory that has it, else ModelError."""
    for d in search_dirs():
        p = d / f"{key}.onnx"
        if p.is_file():
            return p
    raise ModelError(
        f"model '{key}' is not installed (looked for {key}.onnx in "
        f"{', '.join(str(d) for d in search_dirs())}); get it with `{export_hint(key)}` "
        f"(or `--seeded 0` for a test model that is not perceptual)"
    )


def default_threads() -> int:
    """ONNX Runtime intra-op threads unless told: ``$PQEVAL_THREADS``, else every core."""
    return int(os.environ.get("PQEVAL_THREADS", 0)) or (os.cpu_count() or 1)


class OnnxModel:
    """An exported model file, its provenance and a lazily created ORT session."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, verify: bool = True):
        self.path = Path(path)
        self.key = self.path.name.removesuffix(".onnx")
        self.threads = threads or default_threads()
        self._verify = verify
        self._lock = threading.Lock()
        self._session = None

    @cached_property
    def sidecar(self) -> dict:
        """Contents of ``<key>.onnx.json`` (metadata and sha256), or ModelError if absent/unreadable."""
        side = self.path.with_name(self.path.name + ".json")
        try:
            return json.loads(side.read_text())
        except FileNotFoundError:
            raise ModelError(f"{self.path}: its provenance file {side.name} is missing; re-export the model") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"{side}: unreadable provenance file ({e})") from None

    @property
    def metadata(self) -> dict[str, str]:
        return self.sidecar.get("metadata", {})

    @property
    def weights(self) -> str:
        """The recorded weight source (``pretrained:…``, ``seeded:<seed>``, ``custom:…``)."""
        return self.metadata.get(WEIGHTS_KEY, "unknown")

    @property
    def provenance(self) -> Provenance:
        return Provenance.parse(self.weights)

    def check_integrity(self) -> None:
        """Refuse a file whose size or sha256 differs from what the export recorded."""
        want = self.sidecar.get("sha256")
        size = self.path.stat().st_size
        if want is None:
            raise ModelError(f"{self.path}: provenance file records no sha256; re-export the model")
        if size != self.sidecar.get("size", size) or not integrity.has_sha256(self.path, want):
            raise ModelError(
                f"{self.path}: file does not match its recorded sha256 (truncated or modified); re-export it"
            )
        ext = self.sidecar.get("external_data")  # weights stored beside the graph (VGGish)
        if ext:
            data = self.path.with_name(ext["file"])
            if (
                not data.is_file()
                or data.stat().st_size != ext.get("size")
                or not integrity.has_sha256(data, ext.get("sha256"))
            ):
                raise ModelError(f"{data}: external weights missing or not matching their recorded sha256; re-export")

    @property
    def session(self):
        """The ORT session, created on first use with explicit threads and the CPU provider."""
        with self._lock:
            if self._session is None:
                if self._verify:
                    self.check_integrity()
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.intra_op_num_threads = self.threads
                so.inter_op_num_threads = 1
                so.enable_cpu_mem_arena = (
                    True  # ORT's default; on or off: same speed and VGGish RSS (bench/ort_tuning.py)
                )
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                so.log_severity_level = 3
                try:
                    sess = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
                except Exception as e:  # ORT raises its own exception types for corrupt files
                    raise ModelError(
                        f"{self.path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})"
                    ) from None
                embedded = sess.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)
                if embedded != self.weights:
                    raise ModelError(
                        f"{self.path}: weight provenance in the file ({embedded}) "
                        f"differs from its sidecar ({self.weights})"
                    )
                self._session = sess
            return self._session

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """One ORT run: named float32 inputs -> the requested outputs (all when None)."""
        return self.session.run(outputs, inputs)

    def describe(self) -> dict:
        """What ``pqeval models`` lists: key, path, size (MB, with external weights), provenance,
        the export-time check against the original framework, and ``status`` ("ok" or why not)."""
        try:
            meta, status = self.metadata, "ok"
            ext_size = (self.sidecar.get("external_data") or {}).get("size", 0)
        except ModelError as e:
            meta, status, ext_size = {}, str(e), 0
        prov = Provenance.parse(meta.get(WEIGHTS_KEY, "unknown"))
        try:
            verify = json.loads(meta.get("pqeval.verify", "{}") or "{}")
        except ValueError:
            verify = {}
        return {
            "key": self.key,
            "path": str(self.path),
            "size_mb": round((self.path.stat().st_size + ext_size) / 1e6, 1),
            "weights": prov.raw,
            "perceptual": prov.perceptual,
            "note": prov.note,
            "variant": meta.get("pqeval.variant", ""),
            "verify": verify,
            "status": status,
        }


_OPEN: dict[tuple[str, int], OnnxModel] = {}


def open_model(key: str, threads: int | None = None) -> OnnxModel:
    """The OnnxModel for ``key`` (cached per process; the session itself is made on first run)."""
    path = find_model(key)
    k = (str(path), threads or 0)
    if k not in _OPEN:
        _OPEN[k] = OnnxModel(path, threads)
    return _OPEN[k]


def installed_models() -> list[OnnxModel]:
    """Every ``*.onnx`` in the search directories (first occurrence of each key wins)."""
    seen: dict[str, OnnxModel] = {}
    for d in search_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.onnx")):
                seen.setdefault(p.name.removesuffix(".onnx"), OnnxModel(p))
    return list(seen.values())
