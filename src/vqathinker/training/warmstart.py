"""The demo's supervised warm start: teach the answer FORMAT only, never the quality.

A random tiny model never closes an answer block, so GRPO would have no reward to compare. A few hundred
supervised steps on ``<think>{phrase}</think><answer>X.XX</answer>`` fix that, with X.XX drawn uniformly at
random in 1..5 for every target, independently of the video: the model learns the tags and to write a score
with two decimals, and that scores vary, but nothing that links a video to its quality (its held-out SRCC
stays ≈ 0). Everything the model then knows about quality comes from GRPO.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from vqathinker.model.processor import prepare_inputs

THINK_PHRASE = "The video quality is"
"""The fixed reasoning text of the warm start's targets (a short one keeps the demo's rollouts short)."""


def format_target(score: float, phrase: str = THINK_PHRASE) -> str:
    """The warm start's target completion for ``score``: think block, answer with two decimals."""
    return f"<think>{phrase}</think><answer>{score:.2f}</answer>"


def warm_start(
    model,
    processor,
    conversations: Sequence[list[dict]],
    frames: Sequence[Sequence[Image.Image]],
    *,
    steps: int = 300,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    phrase: str = THINK_PHRASE,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on format targets with random scores; returns the loss of every step.

    Each step takes ``batch_size`` videos (with their conversations) at random and gives each a fresh
    uniform random score in 1..5; the loss is the cross-entropy of the target tokens and the end-of-turn
    token only (prompt and padding masked). ``progress`` is called with each step's loss.
    """
    if len(conversations) != len(frames) or not frames:
        raise ValueError(
            f"need as many conversations as frame lists, got {len(conversations)} and {len(frames)}"
        )
    rng = np.random.default_rng(seed)
    tokenizer = processor.tokenizer
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    device = next(model.parameters()).device
    was_training = model.training
    model.train()
    losses = []
    for _ in range(steps):
        picked = rng.integers(0, len(frames), size=batch_size)
        prompt = prepare_inputs(processor, [conversations[i] for i in picked], [frames[i] for i in picked])
        targets = [format_target(s, phrase) + tokenizer.eos_token for s in rng.uniform(1.0, 5.0, batch_size)]
        target = tokenizer(
            targets, add_special_tokens=False, padding=True, padding_side="right", return_tensors="pt"
        )
        labels = torch.cat(
            [
                torch.full_like(prompt["input_ids"], -100),
                target["input_ids"].masked_fill(target["attention_mask"] == 0, -100),
            ],
            dim=1,
        )
        loss = model(
            input_ids=torch.cat([prompt["input_ids"], target["input_ids"]], dim=1).to(device),
            attention_mask=torch.cat([prompt["attention_mask"], target["attention_mask"]], dim=1).to(device),
            pixel_values=prompt["pixel_values"].to(device, next(model.parameters()).dtype),
            labels=labels.to(device),
        ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if progress is not None:
            progress(losses[-1])
    model.train(was_training)
    return losses
