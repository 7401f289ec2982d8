#!/usr/bin/env python3
"""Make the openl3 0.4.2 source importable without ``pip install openl3``.

Why: openl3's setup.py downloads its weight files from GitHub while pip prepares the package, so
``pip install openl3`` (and even ``pip download openl3``) fails on machines that reach only the
package registry. The package itself is pure Python and needs no build step, so this script:

1. runs ``python -m pip download --no-deps --no-binary :all: --no-clean openl3==0.4.2`` with
   ``TMPDIR`` pointed at a private scratch directory. pip fetches the sdist from the registry
   (checking its hash against the index), unpacks it, and then fails in setup.py's weight
   download; ``--no-clean`` leaves the unpacked sdist behind;
2. checks that the unpacked ``openl3/version.py`` says 0.4.2;
3. copies the ``openl3/`` package directory (nothing else, no weights) to the target:
   ``<repo>/.cache/openl3-src/openl3`` by default (git-ignored), or the running interpreter's
   site-packages with ``--site-packages``, or any ``--target DIR``.

No source file is changed: ``import openl3`` works as shipped on Python 3.11. Do not import
``openl3.cli`` (or run ``python -m openl3``): it uses ``collections.Iterable``, removed in 3.10.
The package ships without weights (``openl3_audio_*.h5``); pass real weight files by path to
``pqeval export openl3 --weights FILE``, or drop them into the copied package directory.

Usage (with the export stack installed in the running interpreter's environment)::

    python scripts/get_openl3.py                    # -> .cache/openl3-src/openl3
    export PYTHONPATH=$PWD/.cache/openl3-src        # pqeval_export also looks there itself
    python scripts/get_openl3.py --site-packages    # or install it into this interpreter

The script is idempotent: an existing copy of the right version is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

PACKAGE = "openl3"
VERSION = "0.4.2"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TARGET = REPO_ROOT / ".cache" / "openl3-src"


def installed_version(target: Path) -> str | None:
    """Version recorded in ``target/openl3/version.py``, or None if there is no copy."""
    vfile = target / PACKAGE / "version.py"
    if not vfile.is_file():
        return None
    m = re.search(r"^version\s*=\s*['\"]([^'\"]+)['\"]", vfile.read_text(), re.M)
    return m.group(1) if m else None


def fetch_sdist_tree(scratch: Path, python: str = sys.executable) -> Path:
    """Download and unpack the sdist under ``scratch``; return the unpacked ``openl3/`` directory."""
    env = dict(os.environ, TMPDIR=str(scratch), PIP_NO_INPUT="1")
    dest = scratch / "dl"
    cmd = [
        python,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-clean",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        f"{PACKAGE}=={VERSION}",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    # pip is expected to fail in setup.py (weight download); what matters is the unpacked tree.
    found = sorted(scratch.glob(f"pip-*/{PACKAGE}_*/{PACKAGE}/version.py"))
    found += sorted(scratch.glob(f"**/{PACKAGE}-{VERSION}/{PACKAGE}/version.py"))
    if not found:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SystemExit(
            f"get_openl3: pip did not leave an unpacked {PACKAGE}=={VERSION} sdist "
            f"(exit {proc.returncode}). Last output:\n{tail}"
        )
    return found[0].parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group()
    where.add_argument(
        "--target",
        type=Path,
        default=DEFAULT_TARGET,
        help=f"directory that will contain openl3/ (default: {DEFAULT_TARGET})",
    )
    where.add_argument(
        "--site-packages", action="store_true", help="copy into this interpreter's site-packages (purelib) instead"
    )
    ap.add_argument("--force", action="store_true", help="replace an existing copy")
    ap.add_argument("--python", default=sys.executable, help="interpreter whose pip to use")
    args = ap.parse_args(argv)

    target = Path(sysconfig.get_paths()["purelib"]) if args.site_packages else args.target
    have = installed_version(target)
    if have == VERSION and not args.force:
        print(f"{PACKAGE} {VERSION} already at {target / PACKAGE}")
        return 0

    with tempfile.TemporaryDirectory(prefix="get_openl3-") as tmp:
        src = fetch_sdist_tree(Path(tmp), args.python)
        got = installed_version(src.parent)
        if got != VERSION:
            raise SystemExit(f"get_openl3: unpacked sdist says version {got!r}, expected {VERSION}")
        dst = target / PACKAGE
        target.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.h5", "*.h5.gz"))
    print(f"{PACKAGE} {VERSION} source -> {dst}")
    if not args.site_packages:
        print(f"add to PYTHONPATH: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
