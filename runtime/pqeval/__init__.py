"""pqeval: perceptual-quality scores (OpenL3 / VGGish embedding similarity, PESQ, STOI) on numpy + ONNX Runtime."""

__version__ = "0.1.0"
