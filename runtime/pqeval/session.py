"""The one place that finds model files and creates ONNX Runtime sessions (lazily).

Lookup order for ``models/<key>.onnx``: the directories in ``$PQEVAL_MODELS`` (os.pathsep-
separated), then the checkout's ``models/``, then the user cache ``$XDG_CACHE_HOME/pqeval/models``
(default ``~/.cache/pqeval/models``). Each exported model has a sidecar ``<key>.onnx.json``
holding its metadata and sha256; the file is checked against it before a session is made.

Hashing VGGish's 289 MB of weights takes ~0.2 s, a fifth of a cold ``pqeval score``. A file
whose stat (size, mtime, ctime, inode, device) is unchanged since it last hashed correctly is
not hashed again: the stat is recorded in ``$XDG_CACHE_HOME/pqeval/verified.json`` (or
``$PQEVAL_VERIFY_CACHE``; ``off`` hashes every time). Any write to the file changes its ctime,
which no user can set; a file changed within 2 s of its verification is never recorded (git's
"racily clean" rule, for filesystems with coarse timestamps).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import ModelError

CHECKOUT_MODELS = Path(__file__).resolve().parents[2] / "models"
WEIGHTS_KEY = "pqeval.weights"
_HASH_CHUNK = 1 << 22
RACY_SECONDS = 2.0


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pqeval" / "models"


def search_dirs() -> list[Path]:
    """Directories searched for model files, in order."""
    env = [Path(p) for p in os.environ.get("PQEVAL_MODELS", "").split(os.pathsep) if p]
    return env + [CHECKOUT_MODELS, user_cache_dir()]


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _verify_cache() -> Path | None:
    env = os.environ.get("PQEVAL_VERIFY_CACHE")
    if env == "off":
        return None
    return Path(env) if env else user_cache_dir().parent / "verified.json"


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def has_sha256(path: str | os.PathLike, want: str) -> bool:
    """Whether the file's sha256 is ``want``; skips hashing a file unchanged since it last matched."""
    from .atomic import atomic_write_text

    path = Path(path).resolve()
    cache_file = _verify_cache()
    stat = _stat_key(path)
    entries: dict = {}
    if cache_file is not None:
        try:
            entries = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            entries = {}
        if not isinstance(entries, dict):  # not ours, or damaged: start a new record
            entries = {}
        if entries.get(str(path)) == {"stat": stat, "sha256": want}:
            return True
    if sha256_file(path) != want:
        return False
    racy = max(stat[1], stat[2]) > time.time_ns() - int(RACY_SECONDS * 1e9)
    if cache_file is not None and not racy and _stat_key(path) == stat:
        entries = {k: v for k, v in entries.items() if os.path.exists(k)}
        entries[str(path)] = {"stat": stat, "sha256": want}
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_file, json.dumps(entries, indent=1))
        except OSError:
            pass  # a read-only cache only costs the hashing next time
    return True


def find_model(key: str) -> Path:
    """Path of ``<key>.onnx`` in the first search directory that has it, else ModelError."""
    for d in search_dirs():
        p = d / f"{key}.onnx"
        if p.is_file():
            return p
    parts = key.split("-")
    if key == "vggish":
        hint = "pqeval export vggish --weights DIR"
    elif parts[0] == "openl3" and len(parts) == 4:
        hint = f"pqeval export openl3 --input-repr {parts[1]} --content-type {parts[2]} --embedding-size {parts[3]} --weights FILE"
    else:
        hint = f"pqeval export {parts[0]} --weights FILE"
    raise ModelError(
        f"model '{key}' is not installed (looked for {key}.onnx in "
        f"{', '.join(str(d) for d in search_dirs())}); get it with `{hint}` "
        f"(or `--seeded 0` for a test model that is not perceptual)"
    )


def default_threads() -> int:
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
        return self.metadata.get(WEIGHTS_KEY, "unknown")

    def check_integrity(self) -> None:
        """Refuse a file whose size or sha256 differs from what the export recorded."""
        want = self.sidecar.get("sha256")
        size = self.path.stat().st_size
        if want is None:
            raise ModelError(f"{self.path}: provenance file records no sha256; re-export the model")
        if size != self.sidecar.get("size", size) or not has_sha256(self.path, want):
            raise ModelError(
                f"{self.path}: file does not match its recorded sha256 (truncated or modified); re-export it"
            )
        ext = self.sidecar.get("external_data")  # weights stored beside the graph (VGGish)
        if ext:
            data = self.path.with_name(ext["file"])
            if not data.is_file() or data.stat().st_size != ext.get("size") or not has_sha256(data, ext.get("sha256")):
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
                so.enable_cpu_mem_arena = True  # ORT's default; on or off: same speed and VGGish RSS (bench/ort_tuning.py)
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                so.log_severity_level = 3
                try:
                    sess = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
                except Exception as e:  # ORT raises its own exception types for corrupt files
                    raise ModelError(f"{self.path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None
                embedded = sess.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)
                if embedded != self.weights:
                    raise ModelError(
                        f"{self.path}: weight provenance in the file ({embedded}) differs from its sidecar ({self.weights})"
                    )
                self._session = sess
            return self._session

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        return self.session.run(outputs, inputs)


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
