#!/usr/bin/env bash
# The whole test suite on a fresh machine: set up .venv, run the quality gate (ruff lint + format,
# mypy), then pytest: both tiers, `-m "not parity"` (numpy + ONNX Runtime, tiny test models) and
# `parity` (against torchvggish and openl3 in the same run). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
bash scripts/lint.sh
python -m pytest -q -p no:cacheprovider --durations=15 "$@"
