#!/usr/bin/env bash
# The CPU demo, one command on a fresh clone: quality-ladder mp4s -> tiny InternVL -> format warm start ->
# GRPO (format + reg + rank rewards) -> held-out SRCC/PLCC before and after, overall and per defect.
#
#   bash run_scripts/run_grpo_demo.sh [--field value ...]
#
# Environment (default in brackets; relative paths are relative to the repository root):
#   OUTPUT_DIR  ladder videos, models, trainer_state.json, reward_curve.png, demo_report.json  [outputs/demo]
#   CONFIG      the demo's recipe (YAML)                                                        [configs/demo.yaml]
# Extra arguments override the recipe, e.g. --max_steps 300 or --num_threads 2. Installs the environment
# with setup.sh first when it is missing. Ends with the line `held-out SRCC before=X after=Y`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VQA_ROOT"

OUTPUT_DIR="${OUTPUT_DIR:-outputs/demo}"
CONFIG="${CONFIG:-configs/demo.yaml}"

exec "$VQA_PY" -m vqathinker.cli demo --config "$CONFIG" --output_dir "$OUTPUT_DIR" "$@"
