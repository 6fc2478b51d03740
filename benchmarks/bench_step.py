"""GRPO step cost: VQAGRPOTrainer (one decode, one vision pass per video) beside plain trl, side by side.

For each model × frames per video × G (``num_generations``), two trainers run the same GRPO recipe on the
same videos (per-device batch G = one video per micro-batch, 2 gradient-accumulation micro-batches, so one
generation call covers 2 videos × G rollouts; 16 new tokens, forced to full length; beta 0.04, so a
reference model forward too; rewards format + reg + rank):

- **trl**: ``trl.GRPOTrainer`` fed the frames as an ``images`` column, decoded by a dataset transform from
  the ``video`` column each time trl fetches a row (what a trl user would write; trl fetches the generation
  batch again at every micro-step);
- **ours**: ``VQAGRPOTrainer`` with ``share_vision`` on (its default): each video decoded once per generation
  batch, each distinct frame encoded once per forward pass, each video's rollouts in one micro-batch.

Measured per optimizer step (from one step's end to the next, data loading included), as medians over
``--steps`` steps after one warm-up step: CPU seconds of the process (one torch thread, so a busy shared
machine does not distort them; also without the CPU seconds spent in ``load_frames``) and the wall-time
ratio, frames the vision towers encoded (policy and reference model; a forward pre-hook on the towers'
patch embeddings, i.e. after any sharing) and ``load_frames`` calls (a counting wrapper). Ratios are trl /
ours: above 1 means ours does less.

Models (random weights, built here): ``tiny`` is ``vqathinker make-tiny-model`` (56 px tiles, vision hidden 32
× 2 layers, text hidden 64 × 2 layers: the language model's per-token overhead dominates); ``cpu-vision``
has 112 px tiles of 14 px patches, vision hidden 256 × 4 layers, text hidden 256 × 4 layers, 16 tokens per
frame: the vision tower dominates, as in InternVL3-1B/2B (a 300M ViT on 1025 patches per tile beside a 0.5B /
1.5B language model on 256 tokens per frame).

    python benchmarks/bench_step.py              # 2 models × 6/16 frames × G 4/8, 3 steps each: ~5 min, 2 cores
    python benchmarks/bench_step.py --models tiny --steps 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
import transformers
from datasets import Dataset
from transformers import (
    GenerationConfig,
    InternVLConfig,
    InternVLForConditionalGeneration,
    PrinterCallback,
    TrainerCallback,
)
from trl import GRPOConfig, GRPOTrainer

import vqathinker.training.trainer
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import (
    CHAT_TEMPLATE,
    VideoInternVLProcessor,
    one_tile_image_processor,
    tile_size,
)
from vqathinker.model.tiny import IMG_CONTEXT, build_tokenizer, make_tiny_model
from vqathinker.rewards import get_reward_funcs
from vqathinker.training.configs import VQAGRPOConfig, VQAModelConfig
from vqathinker.training.trainer import VQAGRPOTrainer

COMPLETION_TOKENS = 16
REWARDS = ["format", "reg", "rank"]
VIDEOS_PER_STEP = 2  # gradient-accumulation micro-batches, one video (G rollouts) each


def make_cpu_vision_model(out_dir: Path) -> Path:
    """112 px tiles, patch 14 (16 tokens per frame), vision 256 × 4 layers, text 256 × 4 layers, random."""
    tokenizer = build_tokenizer()
    tile, patch = 112, 14
    tokens = (tile // patch) ** 2 // 4
    config = InternVLConfig(
        vision_config={
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 1024,
            "image_size": tile,
            "patch_size": patch,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 256,
            "intermediate_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": True,
            "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids(IMG_CONTEXT),
        image_seq_length=tokens,
        downsample_ratio=0.5,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = InternVLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(out_dir)
    VideoInternVLProcessor(
        image_processor=one_tile_image_processor(tile),
        tokenizer=tokenizer,
        image_seq_length=tokens,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(out_dir)
    return out_dir


MODELS = {"tiny": make_tiny_model, "cpu-vision": make_cpu_vision_model}


def write_videos(
    folder: Path, count: int, width: int = 320, height: int = 240, frames: int = 48
) -> list[str]:
    """``count`` h264 clips of a panning blocky texture (each its own texture)."""
    paths = []
    for i in range(count):
        rng = np.random.default_rng(i)
        texture = np.kron(
            rng.integers(0, 256, (height // 8 + 8, width // 8 + 8, 3), dtype=np.uint8),
            np.ones((8, 8, 1), np.uint8),
        )
        path = folder / f"clip{i}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=24, options={"preset": "veryfast", "crf": "23"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for t in range(frames):
                array = np.ascontiguousarray(np.roll(texture, (t, 2 * t), axis=(0, 1))[:height, :width])
                container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
            container.mux(stream.encode())
        paths.append(str(path))
    return paths


class Counter:
    """A ``load_frames`` that counts its calls and the CPU seconds spent in them."""

    def __init__(self):
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, *args, **kwargs):
        start = time.process_time()
        try:
            return load_frames(*args, **kwargs)
        finally:
            self.calls += 1
            self.seconds += time.process_time() - start


class StepMeter(TrainerCallback):
    """Wall and CPU time, decoding CPU time, frames encoded and decodes from one optimizer step's end to the next.

    From one step's end to the next is everything the next step costs, its data loading included (trl's
    dataloader decodes before the step begins).
    """

    def __init__(self, towers: list[torch.nn.Module], decoder: Counter):
        self.encoded = 0
        self.decoder = decoder
        self.steps: list[tuple[float, float, float, int, int]] = []
        self._last: tuple[float, float, float, int, int] | None = None
        for tower in towers:
            tower.embeddings.register_forward_pre_hook(self._count)

    def _count(self, module, args):
        self.encoded += args[0].shape[0]

    def on_step_end(self, args, state, control, **kwargs):
        now = (
            time.perf_counter(),
            time.process_time(),
            self.decoder.seconds,
            self.encoded,
            self.decoder.calls,
        )
        if self._last is not None:
            self.steps.append(tuple(a - b for a, b in zip(now, self._last, strict=True)))
        self._last = now


def vision_towers(*models) -> list[torch.nn.Module]:
    return [
        m
        for model in models
        if model is not None
        for n, m in model.named_modules()
        if n.endswith("vision_tower")
    ]


def run(
    kind: str, model_dir: Path, videos: list[str], frames: int, group: int, steps: int, out: Path
) -> list:
    """One training run of ``steps`` + 1 optimizer steps; the measurements of the last ``steps``."""
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(model_dir)).model_options()
    )
    prompt = build_conversation(QUALITY_QUESTION, frames)
    rows = [
        {"prompt": prompt, "mos": 1.5 + (i % 4), "video": path, "id": str(i)} for i, path in enumerate(videos)
    ]
    settings = dict(
        output_dir=str(out),
        per_device_train_batch_size=group,
        gradient_accumulation_steps=VIDEOS_PER_STEP,
        num_generations=group,
        max_completion_length=COMPLETION_TOKENS,
        generation_kwargs={"min_new_tokens": COMPLETION_TOKENS},
        max_steps=steps + 1,
        learning_rate=1e-5,
        beta=0.04,
        loss_type="grpo",
        use_cpu=True,
        bf16=False,
        logging_steps=10_000,
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        log_multimodal=False,
        seed=0,
        disable_tqdm=True,
    )
    decoder = Counter()
    if kind == "ours":
        vqathinker.training.trainer.load_frames = decoder
        trainer = VQAGRPOTrainer(
            model, VQAGRPOConfig(reward_funcs=REWARDS, **settings), Dataset.from_list(rows), processor
        )
    else:
        tile = tile_size(processor)

        def decode(batch):
            return {**batch, "images": [decoder(video, frames, size=tile) for video in batch["video"]]}

        trainer = GRPOTrainer(
            model=model,
            reward_funcs=get_reward_funcs(REWARDS, num_generations=group),
            args=GRPOConfig(**settings),
            train_dataset=Dataset.from_list(rows).with_transform(decode),
            processing_class=processor,
        )
    meter = StepMeter(vision_towers(trainer.model, trainer.ref_model), decoder)
    trainer.add_callback(meter)
    trainer.remove_callback(PrinterCallback)
    try:
        trainer.train()
    finally:
        vqathinker.training.trainer.load_frames = load_frames
    return meter.steps


def median(values) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--frames", nargs="+", type=int, default=[6, 16])
    parser.add_argument("--generations", nargs="+", type=int, default=[4, 8], help="G values")
    parser.add_argument(
        "--steps", type=int, default=3, help="measured optimizer steps per run (after 1 warm-up)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least contention)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    logging.getLogger("vqathinker").setLevel(logging.WARNING)

    print(f"torch {torch.__version__}, {args.threads} thread(s); medians of {args.steps} steps per run\n")
    print(
        "| model | frames | G | CPU s/step trl | ours | × | w/o decoding × | wall × "
        "| frames encoded trl | ours | × | decodes trl | ours | × |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # one generation batch more than the run uses: accelerate's dataloader fetches one batch ahead
        videos = write_videos(tmp, VIDEOS_PER_STEP * (args.steps + 2))
        for name in args.models:
            model_dir = MODELS[name](tmp / name)
            for frames in args.frames:
                for group in args.generations:
                    cells = {}
                    for kind in ("trl", "ours"):
                        steps = run(
                            kind, model_dir, videos, frames, group, args.steps, tmp / f"{name}-{kind}"
                        )
                        wall, cpu, decoding, encoded, decodes = zip(*steps, strict=True)
                        cells[kind] = {
                            "cpu": median(cpu),
                            "compute": median(c - d for c, d in zip(cpu, decoding, strict=True)),
                            "wall": median(wall),
                            "encoded": median(encoded),
                            "decodes": median(decodes),
                        }
                    trl, ours = cells["trl"], cells["ours"]
                    ratio = {key: trl[key] / ours[key] for key in trl}
                    row = (
                        f"| {name} | {frames} | {group} | {trl['cpu']:.2f} | {ours['cpu']:.2f} | {ratio['cpu']:.1f} "
                        f"| {ratio['compute']:.1f} | {ratio['wall']:.1f} "
                        f"| {trl['encoded']:.0f} | {ours['encoded']:.0f} | {ratio['encoded']:.1f} "
                        f"| {trl['decodes']:.0f} | {ours['decodes']:.0f} | {ratio['decodes']:.1f} "
                    )
                    print(row + "|", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
