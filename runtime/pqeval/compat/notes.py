"""The provenance warning of the compat layer: pqeval's note, as a Python warning, once per model.

pqeval itself carries notes as data (``Embedding.notes``); the compat functions return bare
arrays, as the originals do, so the one thing a caller must not miss, that the weights are not
the published ones, becomes a :class:`NotPerceptualWarning`.
"""

from __future__ import annotations

import threading
import warnings

from ..session import OnnxModel


class NotPerceptualWarning(UserWarning):
    """Results from weights that are not the published ones (seeded, custom or unrecorded)."""


_WARNED: set[tuple[str, str]] = set()
_LOCK = threading.Lock()


def warn_once(model: OnnxModel, stacklevel: int = 2) -> None:
    """Warn with the model's provenance note unless its weights are perceptual or it warned before.

    ``stacklevel`` counts from the caller of ``warn_once`` (2: the caller's caller), as in
    :func:`warnings.warn`.
    """
    prov = model.provenance
    if prov.perceptual:
        return
    key = (str(model.path), prov.raw)
    with _LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    warnings.warn(f"{model.key} ({model.path}): {prov.note}", NotPerceptualWarning, stacklevel=stacklevel + 1)


def reset() -> None:
    """Forget which models warned (each warns again on its next result)."""
    with _LOCK:
        _WARNED.clear()
