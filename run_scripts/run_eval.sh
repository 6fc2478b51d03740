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
#   NUM_GPUS     processes (one per GPU): each benchmark's videos are shared out  [1]
#   MAIN_PROCESS_PORT  port of the processes' rendezvous (NUM_GPUS > 1)           [29501]
#
# Any extra argument goes to `vqathinker evaluate` (e.g. --max_new_tokens 512, --overwrite true,
# --frame_size 560, --backend vllm). Running the same command again resumes: videos already in
# OUTPUT_DIR/predictions/ (the CSVs and the part files of a killed run) are not redone.
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
NUM_GPUS="${NUM_GPUS:-1}"
MAIN_PROCESS_PORT="${MAIN_PROCESS_PORT:-29501}"

args=(--model_name_or_path "$MODEL_PATH" --benchmarks "$BENCHMARKS" --data_root "$DATA_ROOT" --output_dir "$OUTPUT_DIR"
      --batch_size "$BATCH_SIZE")
if [[ -n "$ONLY" ]]; then args+=(--only "$ONLY"); fi
if [[ -n "$NUM_FRAMES" ]]; then args+=(--num_frames "$NUM_FRAMES"); fi

echo "model=$MODEL_PATH benchmarks=$BENCHMARKS${ONLY:+ ($ONLY)} data=$DATA_ROOT output=$OUTPUT_DIR frames=${NUM_FRAMES:-default} processes=$NUM_GPUS"
if [[ "$NUM_GPUS" -gt 1 ]]; then
    # --multi_gpu: torchrun-style processes; without CUDA they run on the CPU (gloo)
    exec accelerate launch --multi_gpu --num_processes "$NUM_GPUS" --num_machines 1 --mixed_precision no \
        --dynamo_backend no --main_process_port "$MAIN_PROCESS_PORT" -m vqathinker.cli evaluate "${args[@]}" "$@"
fi
exec vqathinker evaluate "${args[@]}" "$@"
