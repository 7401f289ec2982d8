"""pqeval's build-machine step: original models (torchvggish, openl3) -> ONNX files with provenance."""
