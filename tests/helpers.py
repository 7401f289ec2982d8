"""Helpers shared by the test modules (the one place they are imported from; no test imports
another test module).

* ``shared`` / ``read``: the real recordings in ``../shared/audio`` (or ``$PQEVAL_TEST_AUDIO``);
* ``cli``: the ``pqeval`` command in-process (typer's CliRunner): exit code, stdout, stderr;
* ``run``: the ``pqeval`` command in a fresh interpreter (``python -m pqeval``), for the few
  smoke tests that must see a real process (entry point, tracebacks, --help, --version).
"""

from __future__ import annotations

import os
import subprocess
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
ENV_PATH = os.pathsep.join([str(ROOT / "runtime"), str(ROOT / "export")])
#: Modules of the original frameworks; the runtime (and the non-parity tests) never import them.
HEAVY = (
    "torch",
    "torchvggish",
    "tensorflow",
    "keras",
    "tf_keras",
    "tf2onnx",
    "kapre",
    "openl3",
    "resampy",
    "librosa",
    "numba",
)


def shared(name: str) -> Path:
    p = AUDIO / name
    if not p.exists():
        pytest.fail(f"test recording {p} is missing (set PQEVAL_TEST_AUDIO to the shared audio folder)")
    return p


def read(name: str) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(shared(name)), dtype="float64")
    return x, sr


def cli(*args):
    """``pqeval *args`` in this process (typer's CliRunner); the result has exit_code, stdout, stderr.

    Model lookup is whatever the test set up (the ``use_models`` fixture patches it). An uncaught
    exception is a test failure (the CLI must turn every error into a message and an exit code).
    """
    from typer.testing import CliRunner

    from pqeval.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        raise AssertionError(
            "pqeval raised instead of exiting with a message:\n"
            + "".join(
                traceback.format_exception(type(result.exception), result.exception, result.exception.__traceback__)
            )
        )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def run(*args, models=None, cwd=None, entry_point: bool = False):
    """``python -m pqeval *args`` (or the installed ``pqeval`` script) in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": ENV_PATH}
    if models is not None:
        env["PQEVAL_MODELS"] = str(models)
    if entry_point:
        exe = Path(sys.executable).with_name("pqeval")  # the console script pip installed beside python
        assert exe.exists(), f"{exe}: no pqeval entry point (install the package: pip install -e .)"
        cmd = [str(exe)]
    else:
        cmd = [sys.executable, "-m", "pqeval"]
    p = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert "Traceback" not in p.stderr, p.stderr
    return p
