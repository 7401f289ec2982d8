"""Writing exported ONNX files with their provenance, atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_onnx(model_proto, path: str | os.PathLike, metadata: dict[str, str]) -> str:
    """Attach ``metadata`` (string values) to the model, write ``path`` and ``path.json``; return sha256.

    The sidecar ``<name>.onnx.json`` holds the same metadata plus the file's sha256 and size, so
    that ``pqeval models`` can list provenance without loading the model and the runtime can
    refuse a truncated or modified file.
    """
    import hashlib

    import onnx

    del model_proto.metadata_props[:]
    for k, v in metadata.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    data = model_proto.SerializeToString()
    digest = hashlib.sha256(data).hexdigest()
    path = Path(path)
    atomic_write_bytes(path, data)
    side = {"file": path.name, "sha256": digest, "size": len(data), "metadata": dict(metadata)}
    atomic_write_bytes(path.with_name(path.name + ".json"), (json.dumps(side, indent=2) + "\n").encode())
    return digest


def versions(*names: str) -> dict[str, str]:
    """Installed versions of the given distributions (missing ones omitted)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    return out
