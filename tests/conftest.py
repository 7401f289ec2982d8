"""Shared fixtures: tiny stand-in models for everything that runs a model, and the real seeded
exports (torch/TensorFlow) for the parity tests only.

Two tiers (``pytest -m "not parity"`` / ``pytest -m parity``):

* not parity: numpy + ONNX Runtime + onnx only. Models come from ``models_dir`` / ``use_models``:
  tiny ONNX models with the real names, shapes, metadata and sidecars (tests/tiny_models.py),
  built in a fraction of a second. Nothing here may import torch, TensorFlow, openl3, resampy or
  tf2onnx; a run selected with ``-m "not parity"`` fails at the end if anything did.
* parity (``pytestmark = pytest.mark.parity``): comparisons with the original frameworks. Their
  fixtures (``seeded_vggish_files``, ``vggish_reference``, ``exported_models_dir``,
  ``use_exported_models``) import the export stack lazily, so collecting tests never needs it.
"""

from __future__ import annotations

import os
import sys

import pytest

from helpers import AUDIO, HEAVY, ROOT, read, shared  # noqa: F401  (helpers also puts runtime/ and export/ on sys.path)


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_dirs(tmp_path_factory):
    """Model verification records, the user models directory and downloads go to per-run
    directories (inherited by subprocesses), never to the user's own ~/.cache or ~/.local/share."""
    os.environ["PQEVAL_VERIFY_CACHE"] = str(tmp_path_factory.mktemp("verify") / "verified.json")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    os.environ.pop("PQEVAL_MODEL_SOURCE", None)


def _point_lookup_at(models, monkeypatch):
    import pqeval.session as session

    monkeypatch.setenv("PQEVAL_MODELS", str(models))
    monkeypatch.setattr(session, "CHECKOUT_MODELS", models)
    session._OPEN.clear()


# --- the runtime tier: tiny models -----------------------------------------------------------


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """A models directory with a tiny vggish.onnx (+ .data, .json) and a tiny
    openl3-mel256-music-512.onnx: real I/O names, shapes, metadata and sidecars, ``seeded:0``
    weights, variant ``tiny-test-model``. Not VGGish or OpenL3: never compare their numbers with
    the originals' (that is what ``exported_models_dir`` is for)."""
    from tiny_models import write_tiny_models

    return write_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture()
def use_models(models_dir, monkeypatch):
    """Point pqeval's model lookup at the tiny models (for this test and its subprocesses)."""
    import pqeval.session as session

    _point_lookup_at(models_dir, monkeypatch)
    yield models_dir
    session._OPEN.clear()


# --- the parity tier: the real seeded exports (torch, TensorFlow) -----------------------------


@pytest.fixture(scope="session")
def seeded_vggish_files(tmp_path_factory):
    """Seeded torchvggish weights written by torch in the upstream formats: (vggish.pth, pca.pth)."""
    from pqeval_export.vggish import make_seeded_weights  # imports torch

    return make_seeded_weights(0, tmp_path_factory.mktemp("vggish-weights"))


@pytest.fixture(scope="session")
def exported_models_dir(tmp_path_factory, seeded_vggish_files):
    """A models directory with vggish.onnx (seeded weights, through the real-file path) and the
    default OpenL3 model (seeded weights), as `pqeval export ... --seeded 0` writes them."""
    from pqeval_export.openl3 import export_openl3  # TensorFlow, openl3, tf2onnx
    from pqeval_export.vggish import export_vggish  # torch, torchvggish

    d = tmp_path_factory.mktemp("exported-models")
    export_vggish(weights=seeded_vggish_files[0], out_dir=d)
    export_openl3("mel256", "music", 512, seeded=0, out_dir=d)  # the default OpenL3 model
    return d


@pytest.fixture()
def use_exported_models(exported_models_dir, monkeypatch):
    """Point pqeval's model lookup at the real seeded exports."""
    import pqeval.session as session

    _point_lookup_at(exported_models_dir, monkeypatch)
    yield exported_models_dir
    session._OPEN.clear()


@pytest.fixture(scope="session")
def vggish_reference(seeded_vggish_files):
    """torchvggish's own model (postprocessing on) with the same seeded weights."""
    from pqeval_export.vggish import load_weights, reference_model

    model, pca, _ = load_weights(*seeded_vggish_files)
    return reference_model(model, pca), pca


# --- the tier boundary ----------------------------------------------------------------------


def _runtime_tier_only(config) -> bool:
    return " ".join((config.getoption("markexpr") or "").split()) == "not parity"


def pytest_sessionfinish(session, exitstatus):
    """Under ``-m "not parity"``: fail the run if any test (or collecting one) imported an
    original framework. Checked once, after everything ran, so test order does not matter."""
    if not _runtime_tier_only(session.config):
        return
    loaded = sorted(m for m in HEAVY if m in sys.modules)
    if loaded:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = (
            f"the runtime tier (-m 'not parity') imported {', '.join(loaded)}: mark those tests parity or import lazily"
        )
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"ERROR: {msg}", red=True)
        else:
            print(f"ERROR: {msg}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_PARITY_FIXTURES = {"seeded_vggish_files", "exported_models_dir", "use_exported_models", "vggish_reference"}


def pytest_collection_modifyitems(config, items):
    """A test that uses a fixture of the export stack must be marked parity (else the runtime
    tier would try to run torch/TensorFlow)."""
    unmarked = [
        i.nodeid
        for i in items
        if _PARITY_FIXTURES & set(getattr(i, "fixturenames", ())) and i.get_closest_marker("parity") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"tests using the seeded exports must be marked parity: {', '.join(unmarked)}")
