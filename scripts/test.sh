#!/usr/bin/env bash
# The whole test suite on a fresh machine: set up .venv, then run pytest (unit, parity against
# torchvggish and openl3 in the same run, bad input, CLI). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
python -m pytest -q -p no:cacheprovider "$@"
