"""The answer function of evaluate and predict, from the backend asked for: transformers or vLLM."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from vqathinker.evaluation.inference import (
    GenerationOptions,
    answer_videos,
    checkpoint_prompt,
    load_for_inference,
)
from vqathinker.evaluation.runner import AnswerFn
from vqathinker.evaluation.vllm_backend import load_vllm_scorer
from vqathinker.model.loading import ModelOptions
from vqathinker.model.processor import VideoInternVLProcessor, tile_size, tokens_per_frame

BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class BackendOptions:
    """Where the answers are generated."""

    backend: str = "transformers"
    device: str = "cpu"
    """transformers only."""
    tensor_parallel_size: int = 1
    """vLLM only: GPUs the model is split over."""
    gpu_memory_utilization: float = 0.9
    """vLLM only: the share of GPU memory it may take (weights and key-value cache)."""
    processes: int = 1
    """Data-parallel processes (``accelerate launch``); vLLM runs in one."""


def load_scorer(
    model: ModelOptions,
    generation: GenerationOptions,
    num_frames: int | None,
    frame_size: int | None,
    backend: BackendOptions,
) -> tuple[AnswerFn, VideoInternVLProcessor, int]:
    """``(answer, processor, num_frames)``: ``answer(frames, questions)`` gives each video's answers."""
    if backend.backend == "vllm":
        return load_vllm_scorer(
            model.model_name_or_path,
            generation,
            num_frames,
            frame_size,
            backend.tensor_parallel_size,
            backend.gpu_memory_utilization,
            backend.processes,
        )
    if backend.backend != "transformers":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend.backend!r}")
    model, processor, num_frames = load_for_inference(model, backend.device, num_frames, frame_size)
    return functools.partial(answer_videos, model, processor, options=generation), processor, num_frames


def scoring_settings(
    model_name: str,
    backend: str,
    processor,
    num_frames: int,
    generation: GenerationOptions,
    question: str | None = None,
) -> dict:
    """Everything that changes the scores, as recorded beside a predictions CSV and in the reports;
    ``question`` and the prompt style as :func:`checkpoint_prompt` resolves them (the question: the one asked
    of videos whose labels carry none)."""
    question, style = checkpoint_prompt(processor, question, generation.prompt_style)
    return {
        "model": model_name,
        "backend": backend,
        "num_frames": num_frames,
        "frame_size": tile_size(processor),
        "tokens_per_frame": tokens_per_frame(processor),
        "question": question,
        "prompt_style": style,
        "max_new_tokens": generation.max_new_tokens,
        "num_samples": generation.num_samples,
        "temperature": generation.temperature if generation.num_samples else None,
        "score_mode": generation.score_mode,
    }
