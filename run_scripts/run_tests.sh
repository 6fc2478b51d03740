#!/usr/bin/env bash
# Lint and test vqathinker. Installs the environment with setup.sh first when it is missing.
#   bash run_scripts/run_tests.sh [extra pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VQA_ROOT"
# The tests run tiny models: one BLAS thread per process is faster than several on a few shared cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
"$VQA_PY" -m ruff check .
"$VQA_PY" -m ruff format --check .
# The layers of docs/architecture.md, enforced (contracts in .importlinter).
"$(dirname "$VQA_PY")/lint-imports" --no-cache
"$VQA_PY" -m pytest "$@"
