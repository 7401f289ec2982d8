"""The runtime stands alone: a fresh venv made from the built wheel alone (plus the ``pesq``
extra), in which neither torch nor TensorFlow can be imported, installs a bundle that the export
environment packed (seeded exports through the real export path) and scores two real recordings
to exactly the numbers the export environment's pqeval gives.

Marked parity: it needs the seeded exports (torch, TensorFlow). It builds a venv with pip from
the package registry (the pip cache makes a rerun fast).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from helpers import ROOT, cli, shared

pytestmark = pytest.mark.parity

NUMERIC = ("numpy", "scipy", "onnxruntime", "soundfile", "pystoi")
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")


def _run(cmd: list[str], env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return p


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A venv with the pqeval wheel (built now from this checkout) and the pesq extra, nothing else."""
    work = tmp_path_factory.mktemp("standalone")
    env = {**os.environ, "PIP_CACHE_DIR": PIP_CACHE, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(work), str(ROOT)])
    (whl,) = work.glob("pqeval-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    # the numeric libraries at the export environment's versions, so that "the same numbers"
    # means the same code (a newer onnxruntime may legitimately round differently)
    pins = work / "constraints.txt"
    pins.write_text("".join(f"{n}=={version(n)}\n" for n in NUMERIC))
    _run([py, "-m", "pip", "install", "-q", "-c", str(pins), str(whl)], env)
    # pesq builds from C source and does not declare its build dependencies (README: Install)
    _run([py, "-m", "pip", "install", "-q", "cython", "setuptools<82", "wheel"], env)
    _run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "pesq==0.0.4"], env)
    return venv


def _in_venv(venv: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "pqeval"), *args], capture_output=True, text=True, env=env, timeout=900, cwd=venv.parent
    )


def test_wheel_venv_scores_like_the_export_environment(fresh_venv, exported_models_dir, tmp_path, monkeypatch):
    py = str(fresh_venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PQEVAL_MODELS", "PYTHONPATH"))}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    for heavy in ("torch", "tensorflow", "onnx", "torchvggish", "openl3"):
        p = subprocess.run([py, "-c", f"import {heavy}"], capture_output=True, env=env)
        assert p.returncode != 0, f"{heavy} is importable in the wheel-only venv"
    where = subprocess.run([py, "-c", "import pqeval; print(pqeval.__file__)"], capture_output=True, text=True, env=env)
    assert str(fresh_venv) in where.stdout, where.stdout  # the wheel, not this checkout

    # the export environment packs its models ...
    monkeypatch.setenv("PQEVAL_MODELS", str(exported_models_dir))
    monkeypatch.setenv("PQEVAL_MODELS_ONLY", "1")
    bundle = tmp_path / "pqeval-models.zip"
    r = cli("models", "pack", "vggish", "openl3-mel256-music-512", "--out", bundle)
    assert r.exit_code == 0, r.stderr
    clean, degraded = shared("pesq_speech.wav"), shared("pesq_speech_bab_0dB.wav")
    here = cli("score", clean, degraded, "--json")
    assert here.exit_code == 0, here.stderr

    # ... and the wheel-only venv installs and scores with them
    p = _in_venv(fresh_venv, "models", "--json", env=env)
    dirs = json.loads(p.stdout)["search_dirs"]
    assert dirs == [str(tmp_path / "data" / "pqeval" / "models")], dirs  # no folder inside the package
    p = _in_venv(fresh_venv, "score", str(clean), str(degraded), env=env)
    assert p.returncode == 2 and "pqeval models install" in p.stderr, p.stderr
    p = _in_venv(fresh_venv, "models", "install", str(bundle), env=env)
    assert p.returncode == 0, p.stderr
    p = _in_venv(fresh_venv, "score", str(clean), str(degraded), "--json", env=env)
    assert p.returncode == 0, p.stderr
    there = json.loads(p.stdout)
    ours = json.loads(here.stdout)
    assert set(there["metrics"]) == {"vggish", "openl3", "pesq_wb", "stoi", "estoi"}
    assert there["metrics"] == ours["metrics"]  # exactly the same numbers
    assert "not a perceptual measurement" in p.stderr
