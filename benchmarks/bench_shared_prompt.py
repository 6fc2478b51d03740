"""Shared prompt: plain trl, ours with share_vision only, ours with share_vision + shared_prompt, side by side.

The real token geometry of the reference run with a narrow model: 448 px tiles of 14 px patches (1024 patches,
pixel shuffle → 256 tokens per frame), 6 frames per video, so a ~1,570-token prompt, and completions forced to
``--completion`` tokens (200). The language model is narrow (``--layers`` × width ``--width``, random
weights) and the vision tower tiny (hidden 32, one layer), so the language model's token positions, which
shared_prompt cuts, dominate as they do on InternVL3-8B. One optimizer step = one video × G rollouts
(per-device batch G, no gradient accumulation), beta 0.04 (a reference pass too), a reward that differs
between rollouts (distinct characters of the completion), one torch thread.

Variants (the same videos, seed and recipe):

- **trl**: ``trl.GRPOTrainer`` with the frames as an ``images`` column;
- **vision**: ``VQAGRPOTrainer`` with ``share_vision`` on and ``shared_prompt`` off (its behaviour before
  shared_prompt): each video encoded once per pass, the language model reading every copy of the prompt;
- **shared**: ``VQAGRPOTrainer`` with both on (the defaults): each prompt read once per log-prob pass and
  prefilled once in generation.

Printed per G and variant: CPU seconds per optimizer step (process time, median of ``--steps`` steps after one
warm-up), the language model's token positions in one loss pass (a forward pre-hook on its decoder), the
peak memory of one loss pass (forward + backward on the last step's micro-batch: the peak of the running sum
of every CPU allocation and free the torch profiler records, from the pass's start) with gradient
checkpointing (trl's default, as trained) and without, and that pass's loss. Then vision ÷ shared.
The rollouts are sampled with the same seed and draws in every variant: vision and shared train on the same
completions at every step (equal losses), trl on the same ones at the first step only (its row shuffle
draws other random numbers than ours' group shuffle). With checkpointing, most of a loss pass's peak on
this narrow model is trl's fused log-prob head: its backward takes a ``min(positions, 4096) × 32768`` float
buffer whatever the vocabulary (516 here, 151,674 on InternVL3), which is why both peaks are printed.

    python benchmarks/bench_shared_prompt.py                  # G 4 and 8, 2 measured steps: ~25 min, 2 cores
    python benchmarks/bench_shared_prompt.py --generations 4 --steps 1
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from bench_step import write_videos
from datasets import Dataset
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile
from transformers import (
    GenerationConfig,
    InternVLConfig,
    InternVLForConditionalGeneration,
    PrinterCallback,
    TrainerCallback,
)
from trl import GRPOConfig, GRPOTrainer

from vqathinker import rewards
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import (
    CHAT_TEMPLATE,
    VideoInternVLProcessor,
    one_tile_image_processor,
    tile_size,
)
from vqathinker.model.tiny import IMG_CONTEXT, build_tokenizer
from vqathinker.training.configs import VQAGRPOConfig, VQAModelConfig
from vqathinker.training.trainer import VQAGRPOTrainer

FRAMES = 6
TILE, PATCH = 448, 14
VARIANTS = ("trl", "vision", "shared")


def distinct_characters(completions, **kwargs) -> list[float]:
    """Share of distinct characters in each completion: a reward that differs between random rollouts."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [len(set(text)) / max(len(text), 1) for text in texts]


def make_model(out_dir: Path, layers: int, width: int) -> Path:
    """448 px tiles, patch 14 (256 tokens per frame), vision hidden 32 × 1 layer, text ``width`` × ``layers``."""
    tokenizer = build_tokenizer()
    tokens = (TILE // PATCH) ** 2 // 4
    config = InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": TILE,
            "patch_size": PATCH,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": width,
            "intermediate_size": 4 * width,
            "num_hidden_layers": layers,
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
        image_processor=one_tile_image_processor(TILE),
        tokenizer=tokenizer,
        image_seq_length=tokens,
        num_frames=FRAMES,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(out_dir)
    return out_dir


class CpuPerStep(TrainerCallback):
    """Process CPU seconds from one optimizer step's end to the next."""

    def __init__(self):
        self.steps: list[float] = []
        self._last: float | None = None

    def on_step_end(self, args, state, control, **kwargs):
        now = time.process_time()
        if self._last is not None:
            self.steps.append(now - self._last)
        self._last = now


def decoder_of(model) -> torch.nn.Module:
    return next(m for m in model.modules() if hasattr(m, "layers") and hasattr(m, "embed_tokens"))


def loss_pass(trainer) -> tuple[int, int, float]:
    """Language-model positions, peak bytes and loss of one loss forward + backward on the last micro-batch."""
    inputs = trainer._buffered_inputs[0]
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    positions = []
    hook = decoder_of(trainer.model).register_forward_pre_hook(
        lambda module, args, kwargs: positions.append(kwargs["inputs_embeds"].shape[:2].numel()),
        with_kwargs=True,
    )
    trainer.model.zero_grad(set_to_none=True)
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            loss = trainer.compute_loss(trainer.model, inputs)
            loss.backward()
    finally:
        hook.remove()
    return positions[0], peak_bytes(prof), loss.item()


def peak_bytes(prof) -> int:
    """Peak of the running sum of every CPU allocation (+) and free (-) the profiler recorded, in time order."""
    sizes, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.tag == _EventType.Allocation:
            sizes.append((event.start_time_ns, event.extra_fields.alloc_size))
        stack.extend(event.children)
    live = peak = 0
    for _, size in sorted(sizes):
        live += size
        peak = max(peak, live)
    return peak


def run(variant: str, model_dir: Path, videos: list[str], group: int, completion: int, steps: int, out: Path):
    """One training run of ``steps`` + 1 optimizer steps: CPU per step, loss-pass positions / peak, first loss."""
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(model_dir)).model_options()
    )
    prompt = build_conversation(QUALITY_QUESTION, FRAMES)
    rows = [{"prompt": prompt, "mos": 3.0, "video": path, "id": str(i)} for i, path in enumerate(videos)]
    settings = dict(
        output_dir=str(out),
        per_device_train_batch_size=group,
        gradient_accumulation_steps=1,
        num_generations=group,
        max_completion_length=completion,
        generation_kwargs={"min_new_tokens": completion},
        max_steps=steps + 1,
        learning_rate=1e-5,
        beta=0.04,
        loss_type="grpo",
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        log_multimodal=False,
        seed=0,
        disable_tqdm=True,
    )
    if variant == "trl":

        def decode(batch):
            return {
                **batch,
                "images": [load_frames(video, FRAMES, size=tile_size(processor)) for video in batch["video"]],
            }

        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[distinct_characters],
            args=GRPOConfig(**settings),
            train_dataset=Dataset.from_list(rows).with_transform(decode),
            processing_class=processor,
        )
    else:
        args = VQAGRPOConfig(
            reward_funcs=["distinct_characters"], shared_prompt=variant == "shared", **settings
        )
        trainer = VQAGRPOTrainer(model, args, Dataset.from_list(rows), processor)
    meter = CpuPerStep()
    trainer.add_callback(meter)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    positions, peak, loss = loss_pass(trainer)
    trainer.model.activation_checkpointing_disable()
    _, peak_no_checkpointing, _ = loss_pass(trainer)
    return {
        "cpu": statistics.median(meter.steps),
        "positions": positions,
        "peak": peak / 2**20,
        "peak_no_checkpointing": peak_no_checkpointing / 2**20,
        "loss": loss,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", nargs="+", type=int, default=[4, 8], help="G values")
    parser.add_argument(
        "--steps", type=int, default=2, help="measured optimizer steps per run (after 1 warm-up)"
    )
    parser.add_argument("--completion", type=int, default=200, help="completion tokens (forced)")
    parser.add_argument("--layers", type=int, default=2, help="language-model layers")
    parser.add_argument("--width", type=int, default=256, help="language-model hidden size")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    logging.getLogger("vqathinker").setLevel(logging.ERROR)
    rewards.REWARDS["distinct_characters"] = rewards.RewardSpec(distinct_characters)

    print(
        f"torch {torch.__version__}, 1 thread; {FRAMES} frames × {TILE} px tiles (256 tokens each), "
        f"completions {args.completion} tokens, language model {args.layers} × {args.width}; "
        f"medians of {args.steps} steps per run\n"
    )
    columns = ("cpu", "positions", "peak", "peak_no_checkpointing")
    print(
        "| G | variant | CPU s / step | LM positions per loss pass | loss-pass peak MiB "
        "| same, no checkpointing | loss (last micro-batch) |"
    )
    print("|--:|---|--:|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = write_videos(tmp, args.steps + 3)  # one video per step; the dataloader fetches one ahead
        model_dir = make_model(tmp / "model", args.layers, args.width)
        for group in args.generations:
            cells = {
                variant: run(variant, model_dir, videos, group, args.completion, args.steps, tmp / variant)
                for variant in VARIANTS
            }
            for variant, cell in cells.items():
                print(
                    f"| {group} | {variant} | {cell['cpu']:.2f} | {cell['positions']} | {cell['peak']:.0f} "
                    f"| {cell['peak_no_checkpointing']:.0f} | {cell['loss']:.7f} |"
                )
            ratios = " | ".join(f"**{cells['vision'][c] / cells['shared'][c]:.2f}×**" for c in columns)
            print(f"| {group} | vision ÷ shared | {ratios} | |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
