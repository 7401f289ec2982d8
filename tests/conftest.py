"""Shared fixtures: real recordings from ../shared/audio and a seeded VGGish exported once per run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
for sub in ("runtime", "export"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

AUDIO = Path(os.environ.get("PQEVAL_TEST_AUDIO", ROOT.parent / "shared" / "audio"))


def shared(name: str) -> Path:
    p = AUDIO / name
    if not p.exists():
        pytest.fail(f"test recording {p} is missing (set PQEVAL_TEST_AUDIO to the shared audio folder)")
    return p


def read(name: str) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(shared(name)), dtype="float64")
    return x, sr


@pytest.fixture(scope="session", autouse=True)
def _isolated_verify_cache(tmp_path_factory):
    """Model verification records go to a per-run file (inherited by subprocesses), not ~/.cache."""
    os.environ["PQEVAL_VERIFY_CACHE"] = str(tmp_path_factory.mktemp("verify") / "verified.json")


@pytest.fixture(scope="session")
def seeded_vggish_files(tmp_path_factory):
    """Seeded torchvggish weights written by torch in the upstream formats: (vggish.pth, pca.pth)."""
    from pqeval_export.vggish import make_seeded_weights

    return make_seeded_weights(0, tmp_path_factory.mktemp("vggish-weights"))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, seeded_vggish_files):
    """A models directory with vggish.onnx (seeded weights, through the real-file path) and the
    default OpenL3 model (seeded weights), as `pqeval export ... --seeded 0` would write them."""
    from pqeval_export.vggish import export_vggish

    from pqeval_export.openl3 import export_openl3

    d = tmp_path_factory.mktemp("models")
    export_vggish(weights=seeded_vggish_files[0], out_dir=d)
    export_openl3("mel256", "music", 512, seeded=0, out_dir=d)  # the default OpenL3 model
    return d


@pytest.fixture(scope="session")
def vggish_reference(seeded_vggish_files):
    """torchvggish's own model (postprocessing on) with the same seeded weights."""
    from pqeval_export.vggish import load_weights, reference_model

    model, pca, _ = load_weights(*seeded_vggish_files)
    return reference_model(model, pca), pca


@pytest.fixture()
def use_models(models_dir, monkeypatch):
    """Point pqeval's model lookup at the test models directory (for this test and its subprocesses)."""
    import pqeval.session as session

    monkeypatch.setenv("PQEVAL_MODELS", str(models_dir))
    monkeypatch.setattr(session, "CHECKOUT_MODELS", models_dir)
    session._OPEN.clear()
    yield models_dir
    session._OPEN.clear()
