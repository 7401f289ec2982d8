#!/usr/bin/env bash
# Set up (or update) the project environment in .venv: the runtime, PESQ, the original
# frameworks for export and parity tests (torch/torchvggish, tensorflow/openl3), plots, tests.
# Idempotent; safe to re-run. Usage: bash scripts/setup.sh [--runtime-only]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1 TF_USE_LEGACY_KERAS=1
pip install -q --upgrade pip
# pesq builds from C source and does not declare its build dependency on numpy.
pip install -q numpy cython "setuptools<82" wheel
pip install -q --no-build-isolation "pesq==0.0.4"
if [ "${1:-}" = "--runtime-only" ]; then
  pip install -q -e ".[dev]"
  exit 0
fi
pip install -q -e ".[export,plots,dev]"
# openl3 cannot be pip-installed offline (its setup.py downloads weights): fetch its sdist from
# the package registry and put the openl3/ package directory into this venv.
python scripts/get_openl3.py --site-packages
# The Node.js and web examples (tests/test_examples.py skips them only where node / chromium are
# absent): headless Chromium from Debian for the web page test, and the examples' npm packages.
if ! [ -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -q && apt-get install -y -q chromium
fi
if command -v npm >/dev/null; then
  # onnxruntime-node's install would fetch CUDA files from nuget.org: not needed on CPU
  (cd examples/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
  (cd examples/web && npm ci --no-audit --no-fund --loglevel=error)  # postinstall copies onnxruntime-web into vendor/
fi
