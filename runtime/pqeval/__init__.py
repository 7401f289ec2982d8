"""pqeval: perceptual-quality scores (OpenL3 / VGGish embedding similarity, PESQ, STOI) on numpy + ONNX Runtime.

The Python API::

    import pqeval

    pqeval.score("clean.wav", "degraded.wav").as_dict()       # every default metric, as `pqeval score --json`
    pqeval.score((x, 16000), (y, 16000), metrics="vggish,stoi", openl3_hop=0.1)
    pqeval.embed("clean.wav", model="openl3", hop=0.5).frames  # [N, 512] float32

    scorer = pqeval.Scorer(pqeval.ScoreOptions(metrics=("vggish", "pesq_wb")))   # many pairs
    scorer.score(pqeval.open_audio("a.wav"), pqeval.open_audio("b.wav"))

Failures pqeval reports on purpose are :class:`PqevalError` (:class:`AudioError`,
:class:`ModelError`, :class:`UsageError`). ``import pqeval`` stays light: numpy, ONNX Runtime
and the rest load on first use of a name below (module ``__getattr__``).

The version has one source, the distribution's metadata (``pyproject.toml``).
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import AudioError, ModelError, PqevalError, UsageError


def _version() -> str:
    """The distribution's version (read on first use of ``__version__``: the metadata lookup costs
    ~30 ms at every start)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pqeval")
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        return "0+unknown"


if TYPE_CHECKING:
    __version__: str
    from .api import embed, score
    from .audio import Audio, from_array, load_audio, open_audio
    from .embedding import Embedding
    from .metrics import MetricResult
    from .scoring import PairScore, ScoreOptions, Scorer

#: Names loaded on first use: name -> the submodule that defines it.
_LAZY: dict[str, str] = {
    "score": ".api",
    "embed": ".api",
    "Scorer": ".scoring",
    "ScoreOptions": ".scoring",
    "PairScore": ".scoring",
    "MetricResult": ".metrics",
    "Embedding": ".embedding",
    "Audio": ".audio",
    "load_audio": ".audio",
    "open_audio": ".audio",
    "from_array": ".audio",
}

__all__ = [
    "Audio",
    "AudioError",
    "Embedding",
    "MetricResult",
    "ModelError",
    "PairScore",
    "PqevalError",
    "ScoreOptions",
    "Scorer",
    "UsageError",
    "__version__",
    "embed",
    "from_array",
    "load_audio",
    "open_audio",
    "score",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use, and keep the name here."""
    if name == "__version__":
        value: Any = _version()
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names and the submodules imported so far."""
    submodules = {n for n, v in globals().items() if isinstance(v, ModuleType) and not n.startswith("_")}
    return sorted(set(__all__) | submodules)
