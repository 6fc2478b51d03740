"""Evaluation throughput on a GPU: ``vqathinker evaluate`` with the transformers backend beside ``--backend vllm``.

Builds a random-weight InternVL3-``--size``-shaped checkpoint (bf16, the small vqathinker tokenizer, the
processor saved as a trained folder saves it: 448 px tiles, 256 tokens per frame) and ``--videos`` real h264
clips (``--width`` × ``--height``, 4 s at 30 fps), then runs ``vqathinker evaluate`` on them once per backend
in a fresh subprocess (greedy, ``--frames`` frames, up to ``--new_tokens`` new tokens) and prints the
scoring's videos/s from its report (model loading and vLLM's start-up excluded), and the wall time of the
whole command. With random weights the answers are noise: only the speed means something.

    python benchmarks/bench_eval_gpu.py                          # InternVL3-1B shape, 64 clips, 12 frames
    python benchmarks/bench_eval_gpu.py --size 8B --batch_size 16 --new_tokens 512

Needs CUDA (and vllm, the gpu extra, for the vLLM row: skipped with a note without it). Without a GPU it
exits with status 2 and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_eval import write_data

NO_CUDA = (
    "bench_eval_gpu.py needs a CUDA GPU, and torch.cuda.is_available() is False here: it times `vqathinker "
    "evaluate` with transformers and with vLLM on an InternVL3-shaped model. Run it on a GPU machine (with the "
    "gpu extra, `GPU=1 bash setup.sh`, for the vLLM row); `python benchmarks/bench_eval.py` measures the CPU paths."
)


def write_checkpoint(folder: Path, size: str) -> Path:
    from transformers import GenerationConfig, InternVLForConditionalGeneration

    from vqathinker.model.processor import CHAT_TEMPLATE, VideoInternVLProcessor, one_tile_image_processor
    from vqathinker.model.shapes import internvl3_config
    from vqathinker.model.tiny import IMG_CONTEXT, build_tokenizer

    tokenizer = build_tokenizer()
    config = internvl3_config(size)
    config.image_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    text = config.get_text_config()
    text.eos_token_id, text.pad_token_id, text.bos_token_id = (
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        None,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = InternVLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    VideoInternVLProcessor(
        image_processor=one_tile_image_processor(448),
        tokenizer=tokenizer,
        image_seq_length=256,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(folder)
    return folder


def run(model: Path, labels: Path, out: Path, backend: str, args) -> tuple[float, float]:
    """(videos/s of the scoring, wall seconds of the command)."""
    command = [sys.executable, "-m", "vqathinker.cli", "evaluate", "--model_name_or_path", str(model)]
    command += ["--json", str(labels), "--video_root", str(labels.parent / "clips"), "--output_dir", str(out)]
    command += ["--num_frames", str(args.frames), "--max_new_tokens", str(args.new_tokens)]
    command += ["--batch_size", str(args.batch_size), "--backend", backend]
    if backend == "vllm":
        command += ["--gpu_memory_utilization", str(args.vllm_gpu_memory)]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "labels.json").read_text())["videos_per_second"], wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1B", choices=["1B", "2B", "8B"], help="InternVL3 shape")
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--new_tokens", type=int, default=256)
    parser.add_argument(
        "--batch_size", type=int, default=8, help="videos per generate call (and per vLLM call)"
    )
    parser.add_argument("--vllm_gpu_memory", type=float, default=0.6, help="vLLM gpu_memory_utilization")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    backends = ["transformers", "vllm"]
    if importlib.util.find_spec("vllm") is None:
        print("vllm is not installed (GPU=1 bash setup.sh): the vLLM row is skipped", file=sys.stderr)
        backends.remove("vllm")
    args.seconds = 4
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        labels = write_data(folder / "data", args)
        model = write_checkpoint(folder / "model", args.size)
        results = {backend: run(model, labels, folder / backend, backend, args) for backend in backends}
    print(
        f"\nInternVL3-{args.size} shape, random bf16 weights, {torch.cuda.get_device_name()}: {args.videos} clips of "
        f"{args.width}x{args.height}, {args.frames} frames (448 px), up to {args.new_tokens} new tokens, batch "
        f"{args.batch_size}\n"
    )
    print("| backend | videos/s (scoring) | × transformers | wall s (with loading) |")
    print("|---|---:|---:|---:|")
    base = results["transformers"][0]
    for backend, (speed, wall) in results.items():
        print(f"| {backend} | {speed:.2f} | {speed / base:.2f} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
