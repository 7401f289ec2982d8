"""Model lookup and integrity."""

import json
import shutil

import numpy as np
import pytest

from pqeval.errors import ModelError
from pqeval.session import OnnxModel, find_model


def test_lookup_order(models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PQEVAL_MODELS", f"{tmp_path}{__import__('os').pathsep}{models_dir}")
    assert find_model("vggish") == models_dir / "vggish.onnx"
    with pytest.raises(ModelError, match="is not installed.*pqeval export"):
        find_model("openl3-linear-env-6144")


def _copy(models_dir, tmp_path):
    for n in ("vggish.onnx", "vggish.onnx.json", "vggish.onnx.data"):
        shutil.copy(models_dir / n, tmp_path / n)
    return tmp_path / "vggish.onnx"


def test_tampered_model_refused(models_dir, tmp_path):
    p = _copy(models_dir, tmp_path)
    with open(p, "r+b") as f:
        f.seek(p.stat().st_size // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ModelError, match="does not match its recorded sha256"):
        OnnxModel(p).session


def test_truncated_model_refused(models_dir, tmp_path):
    p = _copy(models_dir, tmp_path)
    with open(p, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ModelError, match="truncated or modified"):
        OnnxModel(p).session


def test_missing_sidecar_refused(models_dir, tmp_path):
    p = _copy(models_dir, tmp_path)
    (tmp_path / "vggish.onnx.json").unlink()
    with pytest.raises(ModelError, match="provenance file vggish.onnx.json is missing"):
        OnnxModel(p).session


def test_session_is_lazy_and_explicit(models_dir):
    m = OnnxModel(models_dir / "vggish.onnx", threads=1)
    assert m._session is None and m.weights == "seeded:0"
    s = m.session
    assert s.ort.get_providers() == ["CPUExecutionProvider"] and m.session is s
    out = m.run({"examples": np.zeros((2, 1, 96, 64), np.float32)}, ["postprocessed"])[0]
    assert out.shape == (2, 128)


def test_external_data_is_checked(models_dir, tmp_path):
    """VGGish keeps its weights in vggish.onnx.data; a modified or missing one is refused too."""
    path = _copy(models_dir, tmp_path)
    assert json.loads((tmp_path / "vggish.onnx.json").read_text())["external_data"]["file"] == "vggish.onnx.data"
    assert path.stat().st_size < 1e6  # the graph file is small; the weights are beside it
    data = path.with_name(path.name + ".data")
    with open(data, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelError, match="external weights missing or not matching"):
        OnnxModel(path).session
    data.unlink()
    with pytest.raises(ModelError, match="external weights missing or not matching"):
        OnnxModel(path).session


def _copy_counting_hashes(models_dir, tmp_path, monkeypatch, racy_seconds: float):
    """A private copy of VGGish, a private verification record, and a list of every file hashed."""
    import pqeval.integrity as integrity

    monkeypatch.setenv("PQEVAL_VERIFY_CACHE", str(tmp_path / "verified.json"))
    monkeypatch.setattr(integrity, "RACY_SECONDS", racy_seconds)
    (tmp_path / "m").mkdir()
    path = _copy(models_dir, tmp_path / "m")
    calls = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: calls.append(p) or real(p))
    return path, calls


def test_unchanged_model_is_not_hashed_again(models_dir, tmp_path, monkeypatch):
    """The stat of a file that hashed correctly is remembered; any write to it re-arms the check."""
    path, calls = _copy_counting_hashes(models_dir, tmp_path, monkeypatch, racy_seconds=0.0)
    OnnxModel(path).check_integrity()
    assert len(calls) == 2  # graph + weights
    OnnxModel(path).check_integrity()
    assert len(calls) == 2  # remembered
    data = path.with_name(path.name + ".data")
    with open(data, "r+b") as f:  # same size, new content
        f.seek(5000)
        f.write(b"\x07" * 8)
    with pytest.raises(ModelError, match="external weights missing or not matching"):
        OnnxModel(path).check_integrity()
    monkeypatch.setenv("PQEVAL_VERIFY_CACHE", "off")
    n = len(calls)
    OnnxModel(models_dir / "vggish.onnx").check_integrity()
    OnnxModel(models_dir / "vggish.onnx").check_integrity()
    assert len(calls) == n + 4  # off: hashed every time


def test_recently_changed_model_is_hashed_every_time(models_dir, tmp_path, monkeypatch):
    """A file changed within RACY_SECONDS of its check is not remembered (coarse timestamps)."""
    path, calls = _copy_counting_hashes(models_dir, tmp_path, monkeypatch, racy_seconds=3600.0)
    OnnxModel(path).check_integrity()
    OnnxModel(path).check_integrity()
    assert len(calls) == 4
    assert not (tmp_path / "verified.json").exists()
