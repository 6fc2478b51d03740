#!/usr/bin/env bash
# GRPO training of InternVL3-8B on LSVQ with DeepSpeed ZeRO-2: the VQAThinker reference run.
#
#   MOTION_WEIGHTS=... MODEL_PATH=... DATA_JSONL=... VIDEO_ROOT=... bash run_scripts/run_grpo_lsvq.sh [--field value ...]
#
# Environment (default in brackets; relative paths are relative to the repository root):
#   MOTION_WEIGHTS     Kinetics SlowFast-R50 weights of the motion branch (pytorchvideo's
#                      SLOWFAST_8x8_R50.pyth), a local file; empty: the recipe's  [checkpoints/SLOWFAST_8x8_R50.pyth]
#   MODEL_PATH         HF-format InternVL checkpoint: hub id or folder         [OpenGVLab/InternVL3-8B-hf]
#   DATA_JSONL         LSVQ training jsonl (video path + MOS per line)         [data/LSVQ/LSVQ_labels_train.jsonl]
#   VIDEO_ROOT         folder the video paths of DATA_JSONL are relative to   [data/LSVQ]
#   OUTPUT_DIR         checkpoints, logs and sampled completions               [outputs/grpo_lsvq]
#   CONFIG             training recipe (YAML); configs/grpo_lsvq_release.yaml: the release exactly [configs/grpo_lsvq.yaml]
#   NUM_GPUS           GPUs per node                                           [8]
#   NUM_NODES          nodes                                                   [1]
#   MACHINE_RANK       rank of this node, 0..NUM_NODES-1 (multi-node)          [0]
#   MAIN_PROCESS_IP    address of the rank-0 node (multi-node)                 [127.0.0.1]
#   MAIN_PROCESS_PORT  port of the rank-0 node                                 [29500]
#   ACCELERATE_CONFIG  accelerate config  [configs/accelerate/zero2.yaml; multinode_zero2.yaml if NUM_NODES > 1]
#
# Any extra argument goes to `vqathinker train` and overrides the recipe (e.g. --learning_rate 2e-6,
# --temporal_consistency true, --use_peft true). Running the same command again resumes from the last
# complete checkpoint-* in OUTPUT_DIR (pass --resume_from_checkpoint PATH to choose one).
# On several nodes, run this script on every node with the same settings and its own MACHINE_RANK.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VQA_ROOT"

MOTION_WEIGHTS="${MOTION_WEIGHTS-checkpoints/SLOWFAST_8x8_R50.pyth}"
MODEL_PATH="${MODEL_PATH:-OpenGVLab/InternVL3-8B-hf}"
DATA_JSONL="${DATA_JSONL:-data/LSVQ/LSVQ_labels_train.jsonl}"
VIDEO_ROOT="${VIDEO_ROOT:-data/LSVQ}"
OUTPUT_DIR="${OUTPUT_DIR:-outputs/grpo_lsvq}"
CONFIG="${CONFIG:-configs/grpo_lsvq.yaml}"
NUM_GPUS="${NUM_GPUS:-8}"
NUM_NODES="${NUM_NODES:-1}"
MACHINE_RANK="${MACHINE_RANK:-0}"
MAIN_PROCESS_IP="${MAIN_PROCESS_IP:-127.0.0.1}"
MAIN_PROCESS_PORT="${MAIN_PROCESS_PORT:-29500}"
if [[ "$NUM_NODES" -gt 1 ]]; then
    ACCELERATE_CONFIG="${ACCELERATE_CONFIG:-configs/accelerate/multinode_zero2.yaml}"
else
    ACCELERATE_CONFIG="${ACCELERATE_CONFIG:-configs/accelerate/zero2.yaml}"
fi

MOTION_ARGS=()
if [[ -n "$MOTION_WEIGHTS" ]]; then
    if [[ ! -f "$MOTION_WEIGHTS" ]]; then
        echo "error: MOTION_WEIGHTS=$MOTION_WEIGHTS: no such file. The recipe trains the motion branch on a frozen" \
            "Kinetics SlowFast-R50: download pytorchvideo's SLOWFAST_8x8_R50.pyth and set MOTION_WEIGHTS to its path" >&2
        exit 2
    fi
    MOTION_ARGS=(--motion_weights "$MOTION_WEIGHTS")
fi

echo "model=$MODEL_PATH data=$DATA_JSONL videos=$VIDEO_ROOT output=$OUTPUT_DIR motion_weights=${MOTION_WEIGHTS:-as in the recipe}"
echo "nodes=$NUM_NODES gpus/node=$NUM_GPUS rank=$MACHINE_RANK main=$MAIN_PROCESS_IP:$MAIN_PROCESS_PORT"

# `--resume_from_checkpoint last` resumes from the newest complete checkpoint of OUTPUT_DIR, if there is one;
# a --resume_from_checkpoint among the extra arguments comes later and wins.
exec accelerate launch \
    --config_file "$ACCELERATE_CONFIG" \
    --num_machines "$NUM_NODES" \
    --num_processes "$((NUM_GPUS * NUM_NODES))" \
    --machine_rank "$MACHINE_RANK" \
    --main_process_ip "$MAIN_PROCESS_IP" \
    --main_process_port "$MAIN_PROCESS_PORT" \
    -m vqathinker.cli train \
    --config "$CONFIG" \
    --model_name_or_path "$MODEL_PATH" \
    --data_jsonl "$DATA_JSONL" \
    --video_root "$VIDEO_ROOT" \
    --output_dir "$OUTPUT_DIR" \
    "${MOTION_ARGS[@]}" \
    --resume_from_checkpoint last \
    "$@"
