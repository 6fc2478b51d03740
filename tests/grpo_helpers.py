"""Builders shared by the GRPO test modules: dataset rows, short CPU run settings, the answer-format warm-up."""

from __future__ import annotations

import random

import torch
from datasets import Dataset
from PIL import Image

from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.model.processor import prepare_inputs, tile_size
from vqathinker.training.configs import VQAGRPOConfig

NUM_FRAMES = 4

# short CPU runs: one video per rollout group of 2, four rollouts a step, nothing saved or reported
CPU_RUN = dict(
    per_device_train_batch_size=4,
    num_generations=2,
    max_completion_length=16,
    use_cpu=True,
    bf16=False,
    save_strategy="no",
    report_to="none",
    reward_funcs=["rank", "reg", "format"],
)
# a two-step training run, logged every step, seeded
TWO_STEPS = dict(max_steps=2, learning_rate=1e-3, logging_steps=1, seed=0)


def grpo_dataset(videos, **columns) -> Dataset:
    """One row per ``(path, mos)`` of ``videos``: the 4-frame quality prompt, and ``columns`` on every row."""
    prompt = build_conversation(QUALITY_QUESTION, NUM_FRAMES)
    return Dataset.from_list(
        [
            {"prompt": prompt, "mos": mos, "video": path, "id": str(i), **columns}
            for i, (path, mos) in enumerate(videos)
        ]
    )


def cpu_grpo_args(output_dir, **settings) -> VQAGRPOConfig:
    """``VQAGRPOConfig`` of :data:`CPU_RUN` writing to ``output_dir``; ``settings`` add to or override it."""
    return VQAGRPOConfig(**{**CPU_RUN, "output_dir": str(output_dir), **settings})


def teach_answer_format(model, processor, steps: int = 60) -> None:
    """``steps`` supervised steps on ``<think>ok</think><answer>N.NN</answer>`` (N drawn with seed 0).

    Four 4-frame grey videos; afterwards the model answers in the format with scores that vary between
    rollouts, so GRPO rewards, advantages and losses are not all zero. Seed torch before loading the model.
    """
    rng = random.Random(0)
    tile = tile_size(processor)
    frames = [[Image.new("RGB", (tile, tile), (grey,) * 3)] * NUM_FRAMES for grey in (30, 90, 150, 210)]
    prompts = [build_conversation(QUALITY_QUESTION, NUM_FRAMES)] * len(frames)
    batch = prepare_inputs(processor, prompts, frames)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(steps):
        answers = [f"<think>ok</think><answer>{rng.uniform(1, 5):.2f}</answer><|im_end|>" for _ in frames]
        target = torch.tensor(processor.tokenizer(answers, add_special_tokens=False)["input_ids"])
        input_ids = torch.cat([batch["input_ids"], target], dim=1)
        labels = torch.cat([torch.full_like(batch["input_ids"], -100), target], dim=1)
        attention_mask = torch.cat([batch["attention_mask"], torch.ones_like(target)], dim=1)
        model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=batch["pixel_values"],
            labels=labels,
        ).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
