"""The real-weights loading path of the VGGish export, exercised on torch-written files.

Parity tier (torch writes the files); torch is imported inside the tests so that collecting this
file needs no torch.
"""

import shutil

import numpy as np
import pytest

import pqeval_export.vggish as xv  # no torch at import time
from pqeval.errors import ModelError

pytestmark = pytest.mark.parity


def test_seeded_files_are_upstream_format(seeded_vggish_files):
    import torch

    vpath, ppath = seeded_vggish_files
    assert xv.hash_prefix(vpath) and xv.verify_file(vpath).startswith(xv.hash_prefix(vpath))
    state = torch.load(vpath, weights_only=True)
    assert set(state) == set(xv.load_weights(vpath, ppath)[0].state_dict())
    pca = xv._torch_load(ppath)
    assert isinstance(pca["pca_eigen_vectors"], np.ndarray) and pca["pca_eigen_vectors"].shape == (128, 128)


def test_provenance_strings(seeded_vggish_files):
    assert xv.load_weights(*seeded_vggish_files)[2] == "seeded:0"
    assert xv.provenance({xv.VGGISH_FILE: "10086976" + "0" * 56, xv.PCA_FILE: "970ea276" + "0" * 56}).startswith(
        "pretrained:"
    )
    assert xv.provenance({"vggish-abc.pth": "1" * 64, "vggish_pca_params-abc.pth": "2" * 64}).startswith("custom:")


def test_wrong_hash_refused(seeded_vggish_files, tmp_path):
    bad = tmp_path / "vggish-deadbeef.pth"
    shutil.copy(seeded_vggish_files[0], bad)
    with pytest.raises(ModelError, match="does not match the deadbeef"):
        xv.load_weights(bad, seeded_vggish_files[1])


def test_wrong_architecture_refused(tmp_path, seeded_vggish_files):
    import torch

    p = tmp_path / "vggish-x.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), p)
    with pytest.raises(ModelError, match="not a torchvggish state dict"):
        xv.load_weights(p, seeded_vggish_files[1])
    q = tmp_path / "notes.pth"
    q.write_text("not a torch file")
    with pytest.raises(ModelError, match="not a loadable torch file"):
        xv.load_weights(q, seeded_vggish_files[1])


def test_pca_file_from_numpy_1x_pickles_loads(tmp_path, seeded_vggish_files):
    """The upstream PCA file pickles numpy arrays (numpy.core names); weights_only loading allows them."""
    import torch

    arrays = xv._torch_load(seeded_vggish_files[1])
    p = tmp_path / "vggish_pca_params-x.pth"
    torch.save({k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}, p)
    np.testing.assert_array_equal(xv._torch_load(p)["pca_means"], arrays["pca_means"])


def test_download_checks_hash(seeded_vggish_files, tmp_path, monkeypatch):
    """download() fetches the pinned URLs (here file:// stand-ins) and verifies the hash in the name."""
    vpath, ppath = seeded_vggish_files
    monkeypatch.setattr(xv, "VGGISH_URL", vpath.as_uri())
    monkeypatch.setattr(xv, "PCA_URL", ppath.as_uri())
    got = xv.download(tmp_path / "dl")
    assert [p.name for p in got] == [vpath.name, ppath.name]
    bad = tmp_path / "src" / "vggish-00000000.pth"
    bad.parent.mkdir()
    shutil.copy(vpath, bad)
    monkeypatch.setattr(xv, "VGGISH_URL", bad.as_uri())
    with pytest.raises(ModelError, match="cannot download"):
        xv.download(tmp_path / "dl2")
    assert not (tmp_path / "dl2" / bad.name).exists()


def test_offline_download_message(tmp_path, monkeypatch):
    monkeypatch.setattr(xv, "VGGISH_URL", "http://127.0.0.1:9/vggish-10086976.pth")
    with pytest.raises(ModelError, match="offline machine copy vggish-10086976.pth"):
        xv.download(tmp_path)


def test_locate_and_sources(tmp_path, seeded_vggish_files):
    with pytest.raises(ModelError, match="exactly one weight source"):
        xv.export_vggish(weights=tmp_path, seeded=0, out_dir=tmp_path)
    with pytest.raises(ModelError, match="expected vggish-10086976.pth"):
        xv.export_vggish(weights=tmp_path, out_dir=tmp_path)
    d = tmp_path / "w"
    d.mkdir()
    for p in seeded_vggish_files:
        shutil.copy(p, d)
    assert xv._locate(d) == (d / seeded_vggish_files[0].name, d / seeded_vggish_files[1].name)


def test_exported_metadata(exported_models_dir):
    import json

    import onnx

    models_dir = exported_models_dir
    m = onnx.load(str(models_dir / "vggish.onnx"), load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["pqeval.model_id"] == "vggish" and meta["pqeval.weights"] == "seeded:0"
    v = json.loads(meta["pqeval.verify"])
    assert v["max_abs_diff"] <= 1e-4 and v["cosine_min"] >= 0.99999
    assert json.loads(meta["pqeval.frontend"])["mel_bins"] == 64
    assert "torch" in json.loads(meta["pqeval.versions"])
    side = json.loads((models_dir / "vggish.onnx.json").read_text())
    assert side["metadata"] == meta and len(side["sha256"]) == 64
