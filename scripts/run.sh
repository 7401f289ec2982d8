#!/usr/bin/env bash
# The main job on a fresh machine: set up, get the best models available, score an example pair.
# With a model bundle source ($PQEVAL_MODEL_SOURCE, a bundle file or URL, or the package's default
# source once one is published) only the runtime is installed (numpy + ONNX Runtime, no TensorFlow
# or torch) and the models come from the bundle; otherwise the export environment is set up too and
# the models are exported (real weights where they can be had, else seeded ones, labelled as such).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --runtime-only
. .venv/bin/activate
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
if python -c "import sys; from pqeval.sources import configured_source; sys.exit(configured_source() is None)"; then
  echo "pqeval: a model source is configured: runtime only, models from the bundle (no TensorFlow or torch)"
else
  echo "pqeval: no model source (set PQEVAL_MODEL_SOURCE to a bundle): setting up the export environment"
  bash scripts/setup.sh
fi
python scripts/run_example.py
