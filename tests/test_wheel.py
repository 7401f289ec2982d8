"""The distribution: the wheel holds the two packages, licence files and entry point and pulls the
runtime dependencies only; the export step names its pip extra when a framework is missing.

Runtime tier: nothing here imports torch or TensorFlow. The wheel is built offline
(``pip wheel --no-deps --no-build-isolation --no-index``, with the setuptools of this venv) from
a copy of the source tree, so the test never writes into the checkout and never packs a stale
``build/`` directory.
"""

from __future__ import annotations

import configparser
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from helpers import ENV_PATH, HEAVY, ROOT

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the project's test environment)
from packaging.requirements import Requirement  # noqa: E402  (a dependency of onnxruntime)

#: Distributions that only an extra may bring (heavy, licence-encumbered or optional).
EXTRA_ONLY = {
    "pesq",
    "torch",
    "torchvggish",
    "onnxscript",
    "tensorflow",
    "tf-keras",
    "kapre",
    "resampy",
    "tf2onnx",
    "onnx",
    "h5py",
    "librosa",
    "scikit-learn",
    "matplotlib",
    "dask",
    "pytest",
    "setuptools",
}


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _ignore(directory: str, names: list[str]) -> set[str]:
    """Leave out of the copy what is not source: dot-directories (.git, .venv, caches), build
    output and exported models (hundreds of MB, git-ignored)."""
    return {
        n
        for n in names
        if n.startswith(".")
        or n in ("build", "dist", "out", "__pycache__")
        or n.endswith((".egg-info", ".onnx", ".onnx.data", ".onnx.json", ".pyc"))
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_ignore)
    out = tmp / "dist"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    # setuptools prints a BuildBackendWarning for deprecated metadata (e.g. a licence table)
    assert "Warning" not in p.stderr, p.stderr
    (whl,) = out.glob("pqeval-*.whl")
    z = zipfile.ZipFile(whl)
    yield z
    z.close()


def _dist_info(z: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in z.namelist() if re.fullmatch(rf"pqeval-[^/]+\.dist-info/{name}", n)]
    return z.read(path).decode()


def _metadata(z: zipfile.ZipFile):
    return email.parser.Parser().parsestr(_dist_info(z, "METADATA"))


def test_wheel_requires_the_runtime_dependencies_only(wheel):
    meta = _metadata(wheel)
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    unconditional = {_canon(r.name): r for r in reqs if r.marker is None}
    declared = {_canon(Requirement(d).name): Requirement(d) for d in _pyproject()["project"]["dependencies"]}
    assert set(unconditional) == set(declared)
    for name, r in declared.items():
        assert unconditional[name].specifier == r.specifier, name
    assert {"platformdirs", "pooch", "onnxruntime", "numpy"} <= set(unconditional)
    assert not set(unconditional) & EXTRA_ONLY, set(unconditional) & EXTRA_ONLY
    # every extra-only distribution that appears at all appears under an extra
    for r in reqs:
        if _canon(r.name) in EXTRA_ONLY:
            assert r.marker is not None and "extra" in str(r.marker), str(r)
    for name in ("pesq", "torch", "tensorflow", "matplotlib"):
        assert any(_canon(r.name) == name and r.marker is not None for r in reqs), name
    extras = set(meta.get_all("Provides-Extra"))
    assert set(_pyproject()["project"]["optional-dependencies"]) == extras
    assert {"pesq", "plots", "export", "export-vggish", "export-openl3"} <= extras


def test_wheel_carries_the_licence_files(wheel):
    meta = _metadata(wheel)
    assert meta["License-Expression"] == "MIT"
    assert meta["License"] is None  # PEP 639: the expression replaces the free-text field
    assert set(meta.get_all("License-File")) == {"LICENSE", "NOTICE"}
    licence = _dist_info(wheel, "licenses/LICENSE")
    assert licence.startswith("MIT License") and "pqeval contributors" in licence
    assert (ROOT / "LICENSE").read_text() == licence
    notice = _dist_info(wheel, "licenses/NOTICE")
    for needle in ("P.862", "OPTICOM", "Psytechnics", "CC BY 4.0", "Apache License 2.0"):
        assert needle in notice, needle


def test_wheel_holds_the_two_packages_and_nothing_else(wheel):
    names = wheel.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"pqeval", "pqeval_export"}
    for required in (
        "pqeval/__init__.py",
        "pqeval/__main__.py",
        "pqeval/py.typed",
        "pqeval/cli/__init__.py",
        "pqeval/study/__init__.py",
        "pqeval_export/__init__.py",
        "pqeval_export/vggish.py",
        "pqeval_export/openl3.py",
    ):
        assert required in names, required
    for n in names:
        assert not n.startswith(("tests/", "models/", "bench/", "scripts/", "docs/")), n
        assert "/tests/" not in n and not n.endswith((".onnx", ".onnx.data", ".pyc")), n
    # every package of the source tree is in the wheel
    for pkg_root in (ROOT / "runtime", ROOT / "export"):
        for init in pkg_root.rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                assert init.relative_to(pkg_root).as_posix() in names, init


def test_wheel_entry_point(wheel):
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_dist_info(wheel, "entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {"pqeval": "pqeval.__main__:main"}


# --- the export step without its frameworks ----------------------------------------------------


def _blocked(code: str, *blocked: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in which ``blocked`` modules cannot be imported."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    env = {**os.environ, "PYTHONPATH": ENV_PATH}
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, env=env, timeout=300)


def test_export_modules_import_without_the_frameworks():
    p = _blocked(
        "import json\n"
        "import pqeval_export.vggish, pqeval_export.openl3, pqeval_export.compact, pqeval_export.common\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if sys.modules.get(m) is not None)))\n",
        "torch",
        "torchvggish",
        "tensorflow",
        "tf_keras",
        "onnxscript",
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    ("call", "blocked", "extra"),
    [
        ("pqeval_export.vggish.export_vggish(seeded=0, out_dir=OUT)", ("torch",), "export-vggish"),
        ("pqeval_export.vggish.export_vggish(seeded=0, out_dir=OUT)", ("torchvggish",), "export-vggish"),
        ("pqeval_export.vggish.make_seeded_weights(0, OUT)", ("torch",), "export-vggish"),
        ("pqeval_export.vggish.load_weights(OUT + '/v.pth', OUT + '/p.pth')", ("torch",), "export-vggish"),
        ("pqeval_export.openl3.export_openl3(seeded=0, out_dir=OUT)", ("tensorflow",), "export-openl3"),
        ("pqeval_export.compact.export_compact(OUT + '/vggish.onnx', 'fp16')", ("onnx",), "export"),
    ],
)
def test_export_names_the_extra_when_a_framework_is_missing(tmp_path, call, blocked, extra):
    module = call.split("(", 1)[0].rsplit(".", 1)[0]
    code = (
        f"import {module}\n"
        "from pqeval.errors import UsageError\n"
        f"OUT = {str(tmp_path)!r}\n"
        "try:\n"
        f"    {call}\n"
        "except UsageError as e:\n"
        "    print('UsageError:', e)\n"
    )
    p = _blocked(code, *blocked)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    out = p.stdout.strip()
    assert out.startswith("UsageError:"), out
    assert f"pip install 'pqeval[{extra}]'" in out, out
    assert blocked[0] in out, out  # names what is missing
    assert len(out.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_cli_export_names_the_extra_without_a_traceback(tmp_path):
    code = (
        "from pqeval.__main__ import main\n"
        f"sys.argv = ['pqeval', 'export', 'vggish', '--seeded', '0', '--out-dir', {str(tmp_path)!r}]\n"
        "main()\n"
    )
    p = _blocked(code, "torch")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert "pqeval[export" in p.stderr, p.stderr
