"""The one place that finds model files and creates inference sessions (lazily; the engines' own
session classes are in :mod:`pqeval.inference`).

Where models live (:func:`search_dirs`), in lookup order:

1. each directory in ``$PQEVAL_MODELS`` (``os.pathsep``-separated);
2. the user models directory, :func:`user_models_dir` (platformdirs' user data directory:
   ``~/.local/share/pqeval/models`` on Linux or ``$XDG_DATA_HOME/pqeval/models``,
   ``~/Library/Application Support/pqeval/models`` on macOS, ``%LOCALAPPDATA%\\pqeval\\models`` on
   Windows);
3. in a source checkout only, the checkout's ``models/`` (never a folder inside an installed package).

``PQEVAL_MODELS_ONLY=1`` hides 2 and 3: only ``$PQEVAL_MODELS`` is searched (a pinned set of models
on a cluster, a test). New models (``pqeval export``, ``pqeval models install``) are written to
:func:`install_dir`: the first ``$PQEVAL_MODELS`` directory if set, else the user models directory.

Each model is ``<key>.onnx`` with a sidecar ``<key>.onnx.json`` holding its metadata and sha256
(and, for VGGish, its weights in ``<key>.onnx.data``). The sidecar is what makes a model visible:
an install writes it last, so a model whose sidecar is not there yet never shadows a complete one
further down the search path. The file is checked against its sidecar (:mod:`pqeval.integrity`)
before a session is made.
"""

from __future__ import annotations

import json
import os
import threading
from functools import cached_property
from pathlib import Path

import numpy as np

from . import inference, integrity
from .errors import ModelError, UsageError
from .provenance import Provenance
from .registry import DEFAULT_ENGINE, DEFAULT_PRECISION, export_hint

WEIGHTS_KEY = "pqeval.weights"
SIDECAR_SUFFIX = ".json"  # <key>.onnx.json
DATA_SUFFIX = ".data"  # <key>.onnx.data (external weights)


def _checkout_models() -> Path | None:
    """``models/`` of the source checkout this module runs from, or None in an installed package."""
    root = Path(__file__).resolve().parents[2]
    is_checkout = (root / "pyproject.toml").is_file() and (root / "runtime" / "pqeval").is_dir()
    return root / "models" if is_checkout else None


CHECKOUT_MODELS: Path | None = _checkout_models()


def user_models_dir() -> Path:
    """The user models directory (platformdirs' user data directory + ``/models``)."""
    import platformdirs

    return platformdirs.user_data_path("pqeval", appauthor=False) / "models"


def _env_dirs() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get("PQEVAL_MODELS", "").split(os.pathsep) if p.strip()]


def _env_only() -> bool:
    value = os.environ.get("PQEVAL_MODELS_ONLY", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        if not _env_dirs():
            raise UsageError("PQEVAL_MODELS_ONLY is set but PQEVAL_MODELS names no directory")
        return True
    raise UsageError(f"PQEVAL_MODELS_ONLY must be 1 or 0, got {value!r}")


def search_dirs() -> list[Path]:
    """Directories searched for model files, in order (see the module docstring)."""
    dirs = _env_dirs()
    if not _env_only():
        dirs.append(user_models_dir())
        if CHECKOUT_MODELS is not None:
            dirs.append(CHECKOUT_MODELS)
    return list(dict.fromkeys(dirs))


def install_dir() -> Path:
    """Where new models are written unless told: the first ``$PQEVAL_MODELS`` directory, else
    :func:`user_models_dir`."""
    env = _env_dirs()
    return env[0] if env else user_models_dir()


def _candidates(key: str) -> list[Path]:
    return [d / f"{key}.onnx" for d in search_dirs() if (d / f"{key}.onnx").is_file()]


def _missing_hint(key: str) -> str:
    from .sources import configured_source  # the default model source, if any

    source = configured_source()
    if source is not None:
        return f"install it with `pqeval models install` (source: {source.display})"
    return (
        f"install a model bundle with `pqeval models install BUNDLE.zip|URL` (or set PQEVAL_MODEL_SOURCE), "
        f"or export it with `{export_hint(key)}` (or `--seeded 0` for a test model that is not perceptual)"
    )


def find_model(key: str) -> Path:
    """Path of ``<key>.onnx`` in the first search directory that has it with its sidecar, else
    ModelError saying how to install it. (A graph without its sidecar anywhere is returned, so
    that loading it says what is wrong with it.)"""
    found = _candidates(key)
    for p in found:
        if p.with_name(p.name + SIDECAR_SUFFIX).is_file():
            return p
    if found:
        return found[0]
    raise ModelError(
        f"model '{key}' is not installed (looked for {key}.onnx in "
        f"{', '.join(str(d) for d in search_dirs())}); {_missing_hint(key)}"
    )


#: Most ONNX Runtime threads per session, as a multiple of the cores: ORT's workers busy-wait,
#: so far more threads than cores only fight each other (1000 on 2 cores did not finish in 120 s).
MAX_THREADS_PER_CORE = 4


def check_threads(n: int, what: str) -> int:
    """``n`` if it is a sensible thread count (1 .. MAX_THREADS_PER_CORE x cores), else UsageError."""
    most = MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    if not 1 <= n <= most:
        raise UsageError(f"{what} must be 1..{most} ({MAX_THREADS_PER_CORE} per core), got {n}")
    return n


def default_threads() -> int:
    """ONNX Runtime intra-op threads unless told: ``$PQEVAL_THREADS``, else every core."""
    env = os.environ.get("PQEVAL_THREADS", "").strip()
    if not env:
        return os.cpu_count() or 1
    try:
        n = int(env)
    except ValueError:
        raise UsageError(f"PQEVAL_THREADS must be a whole number of threads, got {env!r}") from None
    return check_threads(n, "PQEVAL_THREADS")


class OnnxModel:
    """An exported model file, its provenance and a lazily created ORT session."""

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        verify: bool = True,
        engine: str = DEFAULT_ENGINE,
        precision: str = DEFAULT_PRECISION,
    ):
        self.path = Path(path)
        self.key = self.path.name.removesuffix(".onnx")
        self.threads = threads or default_threads()
        self.engine = engine
        self.precision = precision
        self._verify = verify
        self._lock = threading.Lock()
        self._session: inference.Session | None = None

    @cached_property
    def sidecar(self) -> dict:
        """Contents of ``<key>.onnx.json`` (metadata and sha256), or ModelError if absent/unreadable."""
        side = self.path.with_name(self.path.name + ".json")
        try:
            data = json.loads(side.read_text())
        except FileNotFoundError:
            raise ModelError(f"{self.path}: its provenance file {side.name} is missing; re-export the model") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"{side}: unreadable provenance file ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("metadata", {}), dict):
            raise ModelError(f"{side}: not a provenance file (expected a JSON object with 'metadata'); re-export")
        return data

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

    def recorded_files(self) -> list[tuple[Path, str | None, int | None]]:
        """(path, sha256, size) the sidecar records: the graph, then its external weights if any."""
        files = [(self.path, self.sidecar.get("sha256"), self.sidecar.get("size"))]
        ext = self.sidecar.get("external_data")  # weights stored beside the graph (VGGish)
        if ext:
            files.append((self.path.with_name(ext["file"]), ext.get("sha256"), ext.get("size")))
        return files

    def check_integrity(self) -> None:
        """Refuse a file whose size or sha256 differs from what the export recorded."""
        (graph, want, recorded_size), *external = self.recorded_files()
        size = graph.stat().st_size
        if want is None:
            raise ModelError(f"{self.path}: provenance file records no sha256; re-export the model")
        if size != (recorded_size if recorded_size is not None else size) or not integrity.has_sha256(graph, want):
            raise ModelError(
                f"{self.path}: file does not match its recorded sha256 (truncated or modified); re-export it"
            )
        for data, sha, data_size in external:
            if not data.is_file() or data.stat().st_size != data_size or not sha or not integrity.has_sha256(data, sha):
                raise ModelError(f"{data}: external weights missing or not matching their recorded sha256; re-export")

    @property
    def session(self) -> inference.Session:
        """The inference session of this model's engine and precision, created on first use
        (after the integrity check) with explicit threads; its embedded provenance is checked."""
        with self._lock:
            if self._session is None:
                inference.check(self.engine, self.precision)  # before reading 300 MB for nothing
                if self._verify:
                    self.check_integrity()
                sess = inference.create(self.path, self.threads, self.engine, self.precision)
                self._check_embedded(sess.embedded.get(WEIGHTS_KEY))
                self._session = sess
            return self._session

    def _check_embedded(self, embedded: str | None) -> None:
        if embedded != self.weights:
            raise ModelError(
                f"{self.path}: weight provenance in the file ({embedded}) differs from its sidecar ({self.weights})"
            )

    def check(self, family: str | None = None) -> None:
        """Verify and load the model now (ModelError if unusable); with ``family``, also that the
        file is a model of that family (``pqeval.model_id``), so a VGGish option cannot run OpenL3."""
        model_id = self.metadata.get("pqeval.model_id")
        if family is not None and model_id != family:
            raise ModelError(f"{self.path}: a {model_id or 'unlabelled'} model, not a {family} model")
        self.session  # noqa: B018 - integrity, provenance and loading

    def run(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """One inference run: named float32 inputs -> the requested outputs (all when None)."""
        return self.session.run(inputs, outputs)

    def describe(self) -> dict:
        """What ``pqeval models`` lists: key, path, size (MB, with external weights), provenance,
        the export-time check against the original framework, and ``status`` ("ok" or why not)."""
        try:
            meta, status = self.metadata, "ok"
            ext_size = (self.sidecar.get("external_data") or {}).get("size", 0)
            self._check_embedded(embedded_metadata(self.path).get(WEIGHTS_KEY))
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


def _varint(buf, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


_METADATA_FIELD = 14  # onnx.proto ModelProto.metadata_props (StringStringEntryProto: key = 1, value = 2)


def embedded_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata written inside an ONNX file, read from its protobuf fields without loading the
    graph (ONNX Runtime and onnx are not needed; a 300 MB model is not read). ModelError if the
    file is not a well-formed protobuf message."""
    import mmap

    def fields(buf, i: int, end: int):
        while i < end:
            key, i = _varint(buf, i)
            kind = key & 7
            if kind == 0:
                _, i = _varint(buf, i)
            elif kind == 1:
                i += 8
            elif kind == 5:
                i += 4
            elif kind == 2:
                n, i = _varint(buf, i)
                yield key >> 3, i, i + n
                i += n
                continue
            else:
                raise ValueError(f"wire type {kind}")
            if i > end:
                raise ValueError("truncated")

    out: dict[str, str] = {}
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for number, a, b in fields(buf, 0, len(buf)):
                if b > len(buf):
                    raise ValueError("truncated")
                if number == _METADATA_FIELD:
                    entry = {k: bytes(buf[x:y]).decode("utf-8") for k, x, y in fields(buf, a, b)}
                    out[entry.get(1, "")] = entry.get(2, "")
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not a readable ONNX file ({e})") from None
    return out


_OPEN: dict[tuple[str, int, str, str], OnnxModel] = {}


def open_model(
    key: str, threads: int | None = None, engine: str = DEFAULT_ENGINE, precision: str = DEFAULT_PRECISION
) -> OnnxModel:
    """The OnnxModel for ``key`` on ``engine`` at ``precision`` (cached per process; the session
    itself is made on first run)."""
    path = find_model(key)
    k = (str(path), threads or 0, engine, precision)
    if k not in _OPEN:
        _OPEN[k] = OnnxModel(path, threads, engine=engine, precision=precision)
    return _OPEN[k]


def installed_models() -> list[OnnxModel]:
    """Every model in the search directories, each key once, as :func:`find_model` resolves it."""
    keys = {p.name.removesuffix(".onnx") for d in search_dirs() if d.is_dir() for p in d.glob("*.onnx")}
    return [OnnxModel(find_model(k)) for k in sorted(keys)]
