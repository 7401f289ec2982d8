#!/usr/bin/env bash
# The main job on a fresh machine: set up, install the best models available, score an example pair.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
python scripts/run_example.py
