"""Writing exported ONNX files with their provenance, atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pqeval.atomic import atomic_write_bytes


def write_onnx(model_proto, path: str | os.PathLike, metadata: dict[str, str]) -> str:
    """Attach ``metadata`` (string values) to the model, write ``path`` and ``path.json``; return sha256.

    The sidecar ``<name>.onnx.json`` holds the same metadata plus the file's sha256 and size, so
    that ``pqeval models`` can list provenance without loading the model and the runtime can
    refuse a truncated or modified file.
    """
    import hashlib

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
