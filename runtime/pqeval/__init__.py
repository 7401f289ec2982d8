"""pqeval: perceptual-quality scores (OpenL3 / VGGish embedding similarity, PESQ, STOI) on numpy + ONNX Runtime.

The version has one source, the distribution's metadata (``pyproject.toml``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pqeval")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
