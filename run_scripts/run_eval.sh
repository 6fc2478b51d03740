#!/usr/bin/env bash
# Evaluate a trained model on the VQA benchmarks: SRCC / PLCC / KRCC / RMSE, a CSV of
# predictions per benchmark, metrics.json, a markdown table and scatter plots.
#
#   MODEL_PATH=outputs/grpo_lsvq DATA_ROOT=data bash run_scripts/run_eval.sh [--flag value ...]
#
# Environment (default in brackets; relative paths are relative to the repository root):
#   MODEL_PATH   trained checkpoint folder (a training OUTPUT_DIR) or hub id      [outputs/grpo_lsvq]
#   BENCHMARKS   benchmark list (YAML)                                            [configs/benchmarks.yaml]
#   ONLY         comma-separated benchmark keys of BENCHMARKS, e.g. konvid,livevqc         [all of them]
#   DATA_ROOT    folder the paths of BENCHMARKS are relative to                   [$VQA_DATA_ROOT, else data]
#   OUTPUT_DIR   results                                                          [$MODEL_PATH/eval]
#   NUM_FRAMES   frames per video; 12 is the paper's evaluation       [the checkpoint's training setting]
#   BATCH_SIZE   videos per generate call                                         [4]
#
# Any extra argument goes to `vqathinker evaluate` (e.g. --max_new_tokens 512, --overwrite true).
# Running the same command again resumes: videos already in OUTPUT_DIR/predictions/*.csv are not redone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VQA_ROOT"

MODEL_PATH="${MODEL_PATH:-outputs/grpo_lsvq}"
BENCHMARKS="${BENCHMARKS:-configs/benchmarks.yaml}"
ONLY="${ONLY:-}"
DATA_ROOT="${DATA_ROOT:-${VQA_DATA_ROOT:-data}}"
OUTPUT_DIR="${OUTPUT_DIR:-$MODEL_PATH/eval}"
NUM_FRAMES="${NUM_FRAMES:-}"
BATCH_SIZE="${BATCH_SIZE:-4}"

args=(--model_name_or_path "$MODEL_PATH" --benchmarks "$BENCHMARKS" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR"
      --batch_size "$BATCH_SIZE")
if [[ -n "$ONLY" ]]; then args+=(--only "$ONLY"); fi
if [[ -n "$NUM_FRAMES" ]]; then args+=(--num_frames "$NUM_FRAMES"); fi

echo "model=$MODEL_PATH benchmarks=$BENCHMARKS${ONLY:+ ($ONLY)} data=$DATA_ROOT output=$OUTPUT_DIR frames=${NUM_FRAMES:-default}"
exec vqathinker evaluate "${args[@]}" "$@"
