"""The supervised warm start: teach the answer FORMAT only, never the quality.

A model that never writes ``<think>…</think><answer>score</answer>`` earns 0 from every reward in every
rollout, so GRPO has no reward spread to learn from (the training-health warning says so). A few hundred
supervised steps on ``<think>{phrase}</think><answer>X.XX</answer>`` fix that, with X.XX drawn uniformly at
random in 1..5 for every target, independently of the video: the model learns the tags and to write a score
with two decimals, and that scores vary, but nothing that links a video to its quality (the demo's held-out
SRCC stays ≈ 0 after it). Everything the model then knows about quality comes from GRPO. A multiple-choice
row's target answers a random option letter instead. With ``reasoning`` (a list of sentences), each target's
reasoning is one of them drawn at random, independently of the video and of the answer: the model learns to
write that vocabulary, and which sentence fits which video is again left to GRPO (the demo's defect sentences,
so that its explanation faithfulness starts at chance). With ``keywords`` too (the ``consistency`` reward's
words per option), a multiple-choice target whose sentence names one of the row's options answers that option
(:func:`vqathinker.rewards.named_option`): the answer follows from the reasoning, both still drawn with no
link to the video, so that the warm-started model makes one decision (which option its reasoning names) instead
of two independent ones.

``vqathinker train`` and the demo run it before GRPO when ``warm_start_steps`` > 0
(:func:`vqathinker.training.run.build_trainer`): :func:`warm_start_on_dataset` over the training set's prompts
and videos, each video decoded when a step first draws it.
"""

from __future__ import annotations

import functools
import logging
import string
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from vqathinker.data.records import TASKS
from vqathinker.data.video import VideoDecodeError, load_frames
from vqathinker.model.processor import count_image_blocks, prepare_inputs, tile_size
from vqathinker.rewards import named_option

logger = logging.getLogger(__name__)

THINK_PHRASE = "The video quality is"
"""The fixed reasoning text of the warm start's targets (a short one keeps the demo's rollouts short)."""
WARM_START_DIR = "warm_start"
"""The folder of ``output_dir`` the warm-started model is saved to, with :data:`WARM_START_FILE`."""
WARM_START_FILE = "warm_start.json"


def format_target(
    score: float, phrase: str = THINK_PHRASE, num_options: int = 0, option: int | None = None
) -> str:
    """The warm start's target completion for a draw ``score`` in 1..5: think block, answer with two decimals;
    for a multiple-choice row (``num_options`` > 0) the answer is the option letter the draw falls on, or the
    letter of ``option`` (an index) when given."""
    if num_options:
        index = min(int((score - 1.0) / 4.0 * num_options), num_options - 1) if option is None else option
        return f"<think>{phrase}</think><answer>{string.ascii_uppercase[index]}</answer>"
    return f"<think>{phrase}</think><answer>{score:.2f}</answer>"


def draw_targets(
    rng: np.random.Generator,
    num_options: Sequence[int],
    phrase: str = THINK_PHRASE,
    reasoning: Sequence[str] | None = None,
    reasoning_tasks: Sequence[str] = TASKS,
    named: Sequence[Sequence[int | None] | None] | None = None,
) -> list[str]:
    """One :func:`format_target` per row (``num_options[i]``: 0 for a score row, the number of options of a
    multiple-choice row), each from a fresh uniform draw in 1..5 of ``rng`` and, with ``reasoning``, a fresh
    uniform choice of its sentences as the reasoning of the rows whose task (``score``, ``choice``) is in
    ``reasoning_tasks`` (else ``phrase``), drawn after the scores and independently of them.

    ``named[i][k]`` (with ``reasoning``): the option of row ``i`` that sentence ``k`` names, or None; a
    multiple-choice row whose drawn sentence names an option answers it instead of its drawn letter."""
    rows = len(num_options)
    draws = rng.uniform(1.0, 5.0, rows)
    phrases, options = [phrase] * rows, [None] * rows
    if reasoning:
        picks = rng.integers(0, len(reasoning), size=rows)
        own = [("choice" if n else "score") in reasoning_tasks for n in num_options]
        phrases = [reasoning[k] if mine else phrase for k, mine in zip(picks, own, strict=True)]
        if named is not None:
            options = [
                row[k] if mine and n and row is not None else None
                for k, mine, n, row in zip(picks, own, num_options, named, strict=True)
            ]
    return [
        format_target(s, text, n, option)
        for s, text, n, option in zip(draws, phrases, num_options, options, strict=True)
    ]


class DecodedFrames(Sequence):
    """The frames of each of ``videos``, decoded on first use at the tile size (the last ``cache`` kept).

    ``num_frames`` is one count per video. A video that cannot be decoded gives black frames and a warning:
    its targets teach the format as well as any.
    """

    def __init__(self, videos: Sequence[str], num_frames: Sequence[int], size: int, backend: str, cache=256):
        self.videos, self.num_frames, self.size, self.backend = list(videos), list(num_frames), size, backend
        self._decode = functools.lru_cache(maxsize=cache)(self._load)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> list[Image.Image]:
        return self._decode(self.videos[index], self.num_frames[index])

    def _load(self, video: str, num_frames: int) -> list[Image.Image]:
        try:
            return load_frames(video, num_frames, size=self.size, backend=self.backend)
        except VideoDecodeError as error:
            logger.warning("warm start: black frames for %s", error)
            return [Image.new("RGB", (self.size, self.size))] * num_frames


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
    options: Sequence[Sequence[str]] | None = None,
    reasoning: Sequence[str] | None = None,
    reasoning_tasks: Sequence[str] = TASKS,
    keywords: Mapping[str, Sequence[str]] | None = None,
) -> list[float]:
    """Train ``model`` in place on format targets with random scores; returns the loss of every step.

    Each step takes ``batch_size`` videos (with their conversations) at random and gives each a target of
    :func:`draw_targets`: a fresh uniform random score in 1..5 (a random option letter on a multiple-choice
    row: one with ``options``) and, with ``reasoning``, a random sentence of it as the think text of the rows
    of ``reasoning_tasks`` (else ``phrase``); with ``keywords`` (words per option text, as the ``consistency``
    reward takes them) a multiple-choice row whose sentence names one of its options
    (:func:`vqathinker.rewards.named_option`) answers that option. The loss is the cross-entropy of the target
    tokens and the end-of-turn token only (prompt and padding masked). ``frames`` may be any sequence, e.g.
    :class:`DecodedFrames`. ``progress`` is called with each step's loss.
    """
    if len(conversations) != len(frames) or not frames:
        raise ValueError(
            f"need as many conversations as frame lists, got {len(conversations)} and {len(frames)}"
        )
    if reasoning is not None and not reasoning:
        raise ValueError("reasoning must hold at least one sentence (or be None: the fixed phrase)")
    if keywords is not None and not (reasoning and options and any(options)):
        raise ValueError(
            "keywords (answers that follow the reasoning) need reasoning sentences and multiple-choice rows"
        )

    @functools.cache
    def named(choices: tuple[str, ...]) -> list[int | None]:
        return [named_option(sentence, choices, keywords) for sentence in reasoning]

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
        num_options = [len(options[i]) if options else 0 for i in picked]
        picked_named = (
            [named(tuple(options[i])) if options[i] else None for i in picked] if keywords else None
        )
        targets = [
            t + tokenizer.eos_token
            for t in draw_targets(rng, num_options, phrase, reasoning, reasoning_tasks, picked_named)
        ]
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


def warm_start_on_dataset(
    model,
    processor,
    dataset,
    *,
    steps: int,
    decode_backend: str = "pyav",
    show_progress: bool = True,
    **settings,
) -> list[float]:
    """:func:`warm_start` on the rows of a training set (``prompt`` and ``video`` columns, as
    :func:`vqathinker.data.datasets.build_dataset` makes them; a multiple-choice row's
    ``options`` too), with a progress bar; ``settings`` are :func:`warm_start`'s (batch_size, learning_rate,
    phrase, reasoning, reasoning_tasks, keywords, seed)."""
    conversations = dataset["prompt"]
    choices = list(dataset["options"]) if "options" in dataset.column_names else None
    frames = DecodedFrames(
        dataset["video"], [count_image_blocks(c) for c in conversations], tile_size(processor), decode_backend
    )
    with tqdm(total=steps, desc="warm start (format only)", unit="step", disable=not show_progress) as bar:
        return warm_start(
            model,
            processor,
            conversations,
            frames,
            steps=steps,
            options=choices,
            progress=lambda loss: (bar.update(), bar.set_postfix(loss=f"{loss:.3f}")),
            **settings,
        )
