#!/usr/bin/env bash
# The quality gate (run by scripts/test.sh before pytest; fails it): ruff lint, ruff format, mypy.
# Configuration: pyproject.toml ([tool.ruff], [tool.mypy]). Needs the dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PATHS=(runtime export tests bench scripts examples/train_enhancer.py)
echo "quality gate: ruff check, ruff format --check, mypy"
ruff check --quiet "${PATHS[@]}"
ruff format --check --quiet "${PATHS[@]}"
mypy
