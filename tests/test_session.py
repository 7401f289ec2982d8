"""Model lookup and integrity."""

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
    for n in ("vggish.onnx", "vggish.onnx.json"):
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
    assert s.get_providers() == ["CPUExecutionProvider"] and m.session is s
    out = m.run({"examples": np.zeros((2, 1, 96, 64), np.float32)}, ["postprocessed"])[0]
    assert out.shape == (2, 128)


def test_external_data_is_checked(models_dir, tmp_path):
    """The compact `ext` variant keeps weights in a .data file; a modified one is refused too."""
    from pqeval_export.compact import export_compact

    for n in ("vggish.onnx", "vggish.onnx.json"):
        shutil.copy(models_dir / n, tmp_path / n)
    path, _ = export_compact(tmp_path / "vggish.onnx", "ext")
    m = OnnxModel(path)
    out = m.run({"examples": np.zeros((1, 1, 96, 64), np.float32)}, ["postprocessed"])[0]
    ref = OnnxModel(tmp_path / "vggish.onnx").run({"examples": np.zeros((1, 1, 96, 64), np.float32)}, ["postprocessed"])[0]
    assert np.array_equal(out, ref)
    data = path.with_name(path.name + ".data")
    with open(data, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelError, match="external weights missing or not matching"):
        OnnxModel(path).session
