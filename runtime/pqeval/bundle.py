"""Model bundles: exported models in one archive with a manifest; pack, install, verify, remove.

A bundle is a zip archive (stored, not compressed: float weights do not compress) holding
``manifest.json``, ``NOTICE.txt`` (each model's weight source, licence and, for the published weights, the
attribution their licence asks for) and each model's files
under their own names: ``<key>.onnx``, ``<key>.onnx.data`` (external weights, VGGish) and the
sidecar ``<key>.onnx.json``. ``manifest.json``::

    {"format": "pqeval-model-bundle", "format_version": 1, "packed_by": "pqeval 0.1.0",
     "files": [{"key": "vggish", "family": "vggish", "name": "vggish.onnx", "role": "graph", "size": 1234,
                "sha256": "…", "weights": "pretrained:…", "perceptual": true,
                "frontend": {…}, "pqeval_version": "0.1.0", "license": "Apache-2.0 (…)"}, …]}

Installing (:func:`install`) copies every file into a staging directory inside the destination
while hashing it, and checks each against the manifest's size and sha256 and then pqeval's own
sidecar checks (graph and weights against the sidecar, the provenance inside the ONNX file
against the sidecar's) before anything becomes visible. Only then is each model moved into place,
its sidecar last: a model is visible only with its sidecar (:func:`pqeval.session.find_model`), so
an install that stops half-way never shadows a good model, and a failed one changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import __version__, integrity
from .atomic import atomic_open
from .errors import ModelError, UsageError
from .provenance import Provenance
from .registry import CUSTOM_WEIGHTS_LICENSE, FAMILIES, SEEDED_WEIGHTS_LICENSE
from .session import DATA_SUFFIX, SIDECAR_SUFFIX, WEIGHTS_KEY, OnnxModel, embedded_metadata, find_model

FORMAT = "pqeval-model-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
NOTICE = "NOTICE.txt"
STAGING_PREFIX = ".pqeval-install-"
ROLES = {"graph": ".onnx", "external_data": ".onnx" + DATA_SUFFIX, "sidecar": ".onnx" + SIDECAR_SUFFIX}
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_COPY_CHUNK = 1 << 22


def weights_license(model_id: str, weights: str) -> str:
    """The licence of a model's weights, from its family and provenance."""
    prov = Provenance.parse(weights)
    if prov.kind == "pretrained" and model_id in FAMILIES:
        return FAMILIES[model_id].weights_license
    return SEEDED_WEIGHTS_LICENSE if prov.kind == "seeded" else CUSTOM_WEIGHTS_LICENSE


def model_entries(model: OnnxModel) -> list[dict]:
    """Manifest entries of one exported model's files (graph, external weights, sidecar), from its
    sidecar; the sidecar's own hash is computed."""
    meta, side = model.metadata, model.sidecar
    try:
        frontend = json.loads(meta.get("pqeval.frontend", "{}") or "{}")
    except ValueError:
        frontend = {}
    common = {
        "key": model.key,
        "family": meta.get("pqeval.model_id", ""),
        "weights": model.weights,
        "perceptual": model.provenance.perceptual,
        "frontend": frontend,
        "pqeval_version": meta.get("pqeval.version") or "not recorded",  # (exports before 0.1.0)
        "license": weights_license(meta.get("pqeval.model_id", ""), model.weights),
    }
    sidecar = model.path.with_name(model.path.name + SIDECAR_SUFFIX)
    files = [("graph", model.path.name, side["size"], side["sha256"])]
    if side.get("external_data"):
        ext = side["external_data"]
        files.append(("external_data", ext["file"], ext["size"], ext["sha256"]))
    files.append(("sidecar", sidecar.name, sidecar.stat().st_size, integrity.sha256_file(sidecar)))
    return [{**common, "name": n, "role": r, "size": size, "sha256": sha} for r, n, size, sha in files]


def _notice(entries: list[dict]) -> str:
    lines = ["Models in this pqeval bundle, their weight sources and licences.", ""]
    for e in entries:
        if e["role"] == "graph":
            prov = Provenance.parse(e["weights"])
            lines.append(f"{e['key']}: weights {e['weights']}")
            lines.append(f"  licence: {e['license']}")
            if prov.perceptual and e.get("family") in FAMILIES:
                lines += [f"  {ln}" for ln in FAMILIES[e["family"]].weights_attribution.splitlines()]
            if prov.note:
                lines.append(f"  {prov.note}")
    return "\n".join(lines) + "\n"


def pack(keys: list[str], out: Path, force: bool = False) -> dict:
    """Write the models ``keys`` (as :func:`find_model` resolves them, each verified against its
    sidecar first) into one bundle at ``out``, atomically; return the manifest.

    Refuses to overwrite an existing file unless ``force`` (and then only a pqeval bundle)."""
    if not keys:
        raise UsageError("name the models to pack (`pqeval models` lists the installed ones)")
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"{out}: is a directory; give the bundle's file name, e.g. {out / 'pqeval-models.zip'}")
    if out.exists():
        if not _is_bundle(out):
            raise UsageError(f"{out}: exists and is not a pqeval bundle; choose another name")
        if not force:
            raise UsageError(f"{out}: exists; pass --force to replace it")
    per_model = []
    for key in dict.fromkeys(keys):
        m = OnnxModel(find_model(key))
        m.check_integrity()  # never pack a file that no longer matches its sidecar
        per_model.append((m, model_entries(m)))
    entries = [e for _, es in per_model for e in es]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "packed_by": f"pqeval {__version__}",
        "files": entries,
    }
    with atomic_open(out, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
        zf.writestr(NOTICE, _notice(entries))
        for m, es in per_model:
            for e in es:
                zf.write(m.path.with_name(e["name"]), e["name"])
    return manifest


def _is_bundle(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read(MANIFEST)).get("format") == FORMAT
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, AttributeError):
        return False


class _Reader:
    """Files of a bundle: a zip archive, an unpacked bundle (a directory with manifest.json), or
    a directory of exported models (the manifest made from their sidecars)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            if (path / MANIFEST).is_file():
                self.manifest = self._parse(self._read_dir_manifest())
            else:
                models = [OnnxModel(p) for p in sorted(path.glob("*.onnx"))]
                if not models:
                    raise ModelError(f"{path}: no models here (no *.onnx files and no {MANIFEST})")
                self.manifest = self._parse(
                    {
                        "format": FORMAT,
                        "format_version": FORMAT_VERSION,
                        "files": [e for m in models for e in model_entries(m)],
                    }
                )
            return
        try:
            self._zip = zipfile.ZipFile(path)
            raw = self._zip.read(MANIFEST)
        except zipfile.BadZipFile:
            raise ModelError(f"{path}: not a pqeval model bundle (not a zip archive, or truncated)") from None
        except KeyError:
            raise ModelError(f"{path}: not a pqeval model bundle (no {MANIFEST})") from None
        except OSError as e:
            raise ModelError(f"{path}: cannot read ({e.strerror or e})") from None
        try:
            self.manifest = self._parse(json.loads(raw))
        except ValueError:
            raise ModelError(f"{path}: its {MANIFEST} is not valid JSON") from None

    def _read_dir_manifest(self) -> dict:
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except ValueError:
            raise ModelError(f"{self.path / MANIFEST}: not valid JSON") from None

    def _parse(self, manifest: object) -> dict:
        where = f"{self.path}: {MANIFEST}"
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ModelError(f"{where} is not a pqeval model bundle manifest")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ModelError(
                f"{where} has format version {manifest.get('format_version')}; this pqeval reads "
                f"version {FORMAT_VERSION} (upgrade pqeval)"
            )
        files = manifest.get("files")
        if not isinstance(files, list) or not files:
            raise ModelError(f"{where} lists no files")
        for e in files:
            ok = isinstance(e, dict) and isinstance(e.get("key"), str) and bool(_KEY.match(e["key"]))
            ok = ok and e.get("role") in ROLES and isinstance(e.get("size"), int) and isinstance(e.get("sha256"), str)
            ok = ok and isinstance(e.get("name"), str) and e["name"] == e["key"] + ROLES[e["role"]]
            if not ok:  # (also refuses names with a path in them)
                raise ModelError(f"{where}: a malformed file entry ({json.dumps(e)[:120]})")
        for key in {e["key"] for e in files}:
            roles = [e["role"] for e in files if e["key"] == key]
            if sorted(roles) not in (["graph", "sidecar"], ["external_data", "graph", "sidecar"]):
                raise ModelError(f"{where}: model {key} has files {roles}; it needs a graph and a sidecar")
        return manifest

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        try:
            if self._zip is not None:
                with self._zip.open(name) as f:
                    yield f
            else:
                with open(self.path / name, "rb") as f:
                    yield f
        except KeyError:
            raise ModelError(f"{self.path}: {name} is listed in the manifest but missing") from None
        except FileNotFoundError:
            raise ModelError(f"{self.path / name}: listed in the manifest but missing") from None
        except zipfile.BadZipFile as e:
            raise ModelError(
                f"{self.path}: {name} is damaged ({e}); the bundle is truncated or tampered with"
            ) from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def read_manifest(path: Path) -> dict:
    """The manifest of a bundle file or directory (checked for shape), or ModelError."""
    reader = _Reader(Path(path))
    reader.close()
    return reader.manifest


@dataclass(frozen=True)
class Installed:
    """One model installed: its key, where its graph now is, its weight source, and whether it
    replaced an earlier copy in that directory."""

    key: str
    path: Path
    weights: str
    replaced: bool


def _copy_checked(reader: _Reader, entry: dict, dest: Path) -> None:
    h, size = hashlib.sha256(), 0
    with reader.open(entry["name"]) as src, open(dest, "wb") as out:
        while chunk := src.read(_COPY_CHUNK):
            h.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size != entry["size"] or h.hexdigest() != entry["sha256"]:
        raise ModelError(
            f"{reader.path}: {entry['name']} does not match the manifest's size and sha256 "
            "(tampered with or truncated); nothing installed"
        )


def _check_staged(stage: Path, key: str, entries: list[dict]) -> None:
    """pqeval's own checks on a staged model: files against the sidecar, provenance in the ONNX
    file against the sidecar and the manifest."""
    model = OnnxModel(stage / f"{key}.onnx")
    try:
        model.check_integrity()
        model._check_embedded(embedded_metadata(model.path).get(WEIGHTS_KEY))
    except ModelError as e:
        raise ModelError(f"{key}: {str(e).replace(str(stage) + os.sep, '')}; nothing installed") from None
    if any(e["weights"] != model.weights for e in entries if "weights" in e):
        raise ModelError(f"{key}: the manifest's weight source differs from the model's own; nothing installed")


def _commit(stage: Path, dest: Path, key: str) -> bool:
    """Move a verified model from ``stage`` into ``dest``: hide the old one (sidecar first), then
    weights, graph, and the new sidecar last. Returns whether a model was replaced."""
    old = stage / "replaced"
    old.mkdir(exist_ok=True)
    names = [key + ROLES[r] for r in ("sidecar", "graph", "external_data")]
    replaced = (dest / names[1]).exists()
    for name in names:
        if (dest / name).exists() or (dest / name).is_symlink():
            os.replace(dest / name, old / name)
    for name in reversed(names):  # external data, graph, sidecar
        if (stage / name).exists():
            os.replace(stage / name, dest / name)
    return replaced


def install(bundle: Path, dest: Path, keys: list[str] | None = None) -> list[Installed]:
    """Install the models of a bundle file or directory into ``dest`` (all, or only ``keys``).

    Every file is verified (manifest sha256, then the sidecar checks) in a staging directory
    inside ``dest`` before any model is moved into place; ModelError (nothing changed) otherwise."""
    reader = _Reader(Path(bundle))
    try:
        entries = reader.manifest["files"]
        available = list(dict.fromkeys(e["key"] for e in entries))
        wanted = list(dict.fromkeys(keys)) if keys else available
        missing = [k for k in wanted if k not in available]
        if missing:
            raise ModelError(f"{bundle}: has no model {', '.join(missing)} (it has {', '.join(available)})")
        try:
            dest.mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest))
        except OSError as err:
            raise UsageError(f"{dest}: cannot install here ({err.strerror or err})") from None
        try:
            for key in wanted:
                mine = [e for e in entries if e["key"] == key]
                for e in mine:
                    _copy_checked(reader, e, stage / e["name"])
                _check_staged(stage, key, mine)
            done = []
            for key in wanted:
                weights = next(e.get("weights", "") for e in entries if e["key"] == key)
                done.append(Installed(key, dest / f"{key}.onnx", weights, _commit(stage, dest, key)))
            return done
        except OSError as err:
            raise UsageError(f"{dest}: cannot install here ({err.strerror or err}); nothing installed") from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    finally:
        reader.close()


def verify(models: list[OnnxModel]) -> list[dict]:
    """Re-hash every file of each model (ignoring the verified-by-stat record) and check its
    provenance: ``[{"key", "path", "status"}]`` with status "ok" or what is wrong."""
    out = []
    for m in models:
        try:
            for path, sha, size in m.recorded_files():
                if not path.is_file():
                    raise ModelError(f"{path.name} is missing")
                if path.stat().st_size != size or integrity.sha256_file(path) != sha:
                    raise ModelError(f"{path.name} does not match its recorded sha256 (truncated or modified)")
            m._check_embedded(embedded_metadata(m.path).get(WEIGHTS_KEY))
            status = "ok"
        except ModelError as e:
            status = str(e)
        out.append(
            {"key": m.key, "path": str(m.path), "weights": m.weights if status == "ok" else "", "status": status}
        )
    return out


def leftovers(dirs: list[Path]) -> list[Path]:
    """Staging directories of installs that were interrupted (safe to delete)."""
    return [p for d in dirs if d.is_dir() for p in sorted(d.glob(STAGING_PREFIX + "*")) if p.is_dir()]


def remove(key: str, directory: Path | None = None) -> list[Path]:
    """Delete model ``key`` (its sidecar first, so it disappears at once) from ``directory``, or
    from where the lookup finds it; return the files deleted."""
    if directory is not None:
        graph = Path(directory) / f"{key}.onnx"
        if not graph.is_file():
            raise ModelError(f"model '{key}' is not in {directory}")
    else:
        graph = find_model(key)
    files = [graph.with_name(graph.name + SIDECAR_SUFFIX), graph, graph.with_name(graph.name + DATA_SUFFIX)]
    gone = []
    try:
        for p in files:
            if p.exists():
                p.unlink()
                gone.append(p)
    except OSError as e:
        raise UsageError(f"{graph.parent}: cannot remove {key} here ({e.strerror or e})") from None
    return gone
