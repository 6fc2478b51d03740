"""Scoring videos with a model: the one generation path of evaluate, predict and the demo.

A video's frames and question go through :func:`vqathinker.model.processor.prepare_inputs` and the model's
``generate``; each answer gets a score (:class:`Answer`):

- ``score_mode="answer"``: the number :func:`vqathinker.rewards.parse_score` reads from the answer (or the
  protocol's reading, :mod:`vqathinker.evaluation.protocol`), on the model's own scale (1..5 when it follows
  the prompt), None when it has none;
- ``score_mode="expected"``: that number with each digit replaced by its expectation under the model's
  distribution where it was generated (:mod:`vqathinker.evaluation.expected`).

``num_samples`` 0 gives one greedy answer per video, N > 0 gives N answers sampled at ``temperature``; a
video's score is the interquartile mean of its answers' scores (:func:`video_score`), None when none has one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy.stats import trim_mean
from transformers import LogitsProcessorList

from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.evaluation.expected import DigitRecorder, digit_token_ids, expected_score
from vqathinker.model.frame_size import set_frame_size
from vqathinker.model.loading import ModelOptions, load_model_and_processor
from vqathinker.model.processor import prepare_inputs, tile_size
from vqathinker.rewards import parse_score

SCORE_MODES = ("answer", "expected")


@dataclass(frozen=True)
class GenerationOptions:
    """How each video is answered and scored."""

    max_new_tokens: int = 1024
    num_samples: int = 0
    """0: one greedy answer; N > 0: N answers sampled at ``temperature``."""
    temperature: float = 1.0
    score_mode: str = "answer"
    prompt_style: str | None = None
    """:func:`vqathinker.data.prompts.build_conversation`'s style (the protocol's); None: the checkpoint's
    (:func:`checkpoint_prompt`)."""
    parse: Callable[[str], float | None] = parse_score
    """How ``score_mode="answer"`` reads a score from an answer (the protocol's)."""

    def __post_init__(self):
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {self.score_mode!r}")
        if self.num_samples < 0 or self.max_new_tokens < 1 or not self.temperature > 0:
            raise ValueError("num_samples must be >= 0, max_new_tokens >= 1 and temperature > 0")


@dataclass(frozen=True)
class Answer:
    """One answer of the model: its text and its score (None when it has none)."""

    text: str
    score: float | None


SAMPLE_TRIM = 0.25
"""Fraction of the sampled scores cut from each end before averaging (:func:`video_score`)."""


def video_score(answers: Sequence[Answer]) -> float | None:
    """The interquartile mean of the answers' scores (the mean of the middle half: a quarter cut from each end,
    rounded down, so up to 3 scores are plainly averaged), None when no answer has one.

    A sampled answer now and then writes a stray number ("3898" for "3.8" among 3.5s: digits are single
    tokens); the plain mean follows it anywhere, the interquartile mean not, while it still averages the
    middle answers into a finer score than the median's.

    Example:
        >>> video_score([Answer("", s) for s in (3.5, 3.4, 3.6, 3898.0, 3.5, 1.2, 3.6, 3.5)])
        3.525
    """
    scores = [a.score for a in answers if a.score is not None and math.isfinite(a.score)]
    return float(trim_mean(scores, SAMPLE_TRIM)) if scores else None


def load_for_inference(
    options: ModelOptions, device: str, num_frames: int | None = None, frame_size: int | None = None
):
    """Load a model in eval mode on ``device`` with its processor: ``(model, processor, num_frames)``.

    ``num_frames`` defaults to the checkpoint's training setting (the processor's ``num_frames``);
    ``frame_size`` (px) to its tile size, another one is set on both
    (:func:`vqathinker.model.frame_size.set_frame_size`).
    """
    model, processor = load_model_and_processor(options, device=device)
    model.eval()
    if frame_size is not None and frame_size != tile_size(processor):
        set_frame_size(model, processor, frame_size)
    return model, processor, num_frames or int(getattr(processor, "num_frames", 6))


def checkpoint_prompt(processor, question: str | None = None, style: str | None = None) -> tuple[str, str]:
    """``(question, style)``: the given ones, else those the checkpoint was trained with (its processor's
    ``question`` and ``prompt_style``, recorded by training), else the release's :data:`QUALITY_QUESTION` and
    the default layout. The question is the one asked of videos whose labels carry none."""
    return (
        question or processor.question or QUALITY_QUESTION,
        style or processor.prompt_style or "default",
    )


@torch.inference_mode()
def answer_videos(
    model,
    processor,
    frames: Sequence[Sequence[Image.Image]],
    questions: Sequence[str],
    options: GenerationOptions,
) -> list[list[Answer]]:
    """The answers of a batch of videos given as frame lists: one list per video (``max(num_samples, 1)``
    answers each), scored as ``options.score_mode`` says. The model is in eval mode during the call."""
    style = checkpoint_prompt(processor, style=options.prompt_style)[1]
    conversations = [build_conversation(q, len(f), style) for q, f in zip(questions, frames, strict=True)]
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    inputs = prepare_inputs(processor, conversations, frames).to(device)
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    tokenizer = processor.tokenizer
    expected = options.score_mode == "expected"
    digit_ids = digit_token_ids(tokenizer) if expected else []
    recorder = DigitRecorder(digit_ids) if expected else None
    was_training = model.training
    model.eval()
    try:
        output = model.generate(
            **inputs,
            **_sampling(options),
            logits_processor=LogitsProcessorList([recorder] if recorder else []),
            max_new_tokens=options.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
        )
    finally:
        model.train(was_training)
    completions = output[:, inputs["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(completions, skip_special_tokens=True)
    if recorder is None:
        answers = [Answer(text, options.parse(text)) for text in texts]
    else:
        log_probs = recorder.log_probs()
        answers = [
            Answer(text, expected_score(ids.tolist(), log_probs[row], tokenizer, digit_ids))
            for row, (text, ids) in enumerate(zip(texts, completions, strict=True))
        ]
    per_video = max(options.num_samples, 1)
    return [answers[k : k + per_video] for k in range(0, len(answers), per_video)]


def _sampling(options: GenerationOptions) -> dict:
    if not options.num_samples:
        return {"do_sample": False}
    return {
        "do_sample": True,
        "temperature": options.temperature,
        "num_return_sequences": options.num_samples,
    }


def generate_answers(
    model,
    processor,
    frames: Sequence[Sequence[Image.Image]],
    questions: Sequence[str],
    max_new_tokens: int,
    *,
    samples: int = 0,
    temperature: float = 1.0,
) -> list[list[str]]:
    """The completions (decoded text after the prompt) of a batch of videos: :func:`answer_videos`' texts."""
    options = GenerationOptions(max_new_tokens, samples, temperature)
    return [
        [a.text for a in answers] for answers in answer_videos(model, processor, frames, questions, options)
    ]


def score_videos(
    model,
    processor,
    frames: Sequence[Sequence[Image.Image]],
    questions: Sequence[str],
    *,
    samples: int = 8,
    temperature: float = 1.0,
    max_new_tokens: int = 24,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float]:
    """``(scores, parsed fraction)``: one score per video and the fraction of answers that held a score.

    A video's score is the interquartile mean (:func:`video_score`) of the scores parsed from its ``samples``
    sampled answers (the greedy answer when ``samples`` is 0), NaN when none parsed. Sampled answers estimate
    the model's expected score: it is defined even for a model that answers one number greedily for every
    video. ``progress`` is called with the number of videos of each finished batch.
    """
    options = GenerationOptions(max_new_tokens, samples, temperature)
    scores, parsed = [], 0
    for start in range(0, len(frames), batch_size):
        batch = slice(start, start + batch_size)
        answers = answer_videos(model, processor, frames[batch], questions[batch], options)
        for video_answers in answers:
            parsed += sum(a.score is not None for a in video_answers)
            score = video_score(video_answers)
            scores.append(math.nan if score is None else score)
        if progress is not None:
            progress(len(answers))
    return np.array(scores), parsed / (len(frames) * max(samples, 1))
