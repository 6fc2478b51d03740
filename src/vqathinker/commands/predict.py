"""``vqathinker predict``: the quality score and the model's explanation for one or more videos.

    vqathinker predict --model_name_or_path OUT video.mp4 [more.mp4 ...] [--json] [--num_frames N] [--question TEXT]

Plain text by default (the score, then the ``<think>`` text, cut after ``--print_chars`` characters with the
count of those left out); ``--json`` prints one JSON list, never cut, with, per
video: ``video``, ``score`` (the number in the answer, null when there is none), ``explanation`` (the
``<think>`` text, null without one), ``completion`` (everything the model wrote) and ``error`` (why a video
could not be decoded, else null). Exits 1 when a video could not be decoded, 0 otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable

from transformers import HfArgumentParser

from vqathinker.data.prompts import QUALITY_QUESTION
from vqathinker.data.video import VideoDecodeError, load_frames
from vqathinker.evaluation.inference import generate_answers, load_for_inference
from vqathinker.model.processor import tile_size
from vqathinker.rewards import parse_score
from vqathinker.training.configs import InferenceArguments

THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
PRINT_CHARS = 800
"""Characters of an explanation or completion that the plain-text output shows (``--print_chars``)."""


def explanation(completion: str) -> str | None:
    """The text of the first ``<think>…</think>`` block, stripped (None when there is none)."""
    match = THINK.search(completion)
    return match.group(1).strip() if match else None


def predict(
    model,
    processor,
    videos: list[str],
    *,
    num_frames: int,
    question: str,
    batch_size: int,
    max_new_tokens: int,
    decode_backend: str,
) -> list[dict]:
    """One result dict per video (see the module docstring), in order, ``batch_size`` videos at a time."""
    results: dict[int, dict] = {}
    for start in range(0, len(videos), batch_size):
        batch, frames = [], []
        for i in range(start, min(start + batch_size, len(videos))):
            try:
                frames.append(
                    load_frames(videos[i], num_frames, size=tile_size(processor), backend=decode_backend)
                )
                batch.append(i)
            except VideoDecodeError as error:
                results[i] = {
                    "video": videos[i],
                    "score": None,
                    "explanation": None,
                    "completion": None,
                    "error": str(error),
                }
        if batch:
            answers = generate_answers(model, processor, frames, [question] * len(batch), max_new_tokens)
            for i, (answer,) in zip(batch, answers, strict=True):
                results[i] = {
                    "video": videos[i],
                    "score": parse_score(answer),
                    "explanation": explanation(answer),
                    "completion": answer,
                    "error": None,
                }
    return [results[i] for i in range(len(videos))]


def shorten(text: str, limit: int = PRINT_CHARS, show: Callable[[str], str] = str) -> str:
    """``show(text)``, or when ``text`` is longer than ``limit`` (> 0) characters, ``show`` of its first
    ``limit`` characters followed by how many more there are."""
    if 0 < limit < len(text):
        return f"{show(text[:limit])}… ({len(text) - limit} more characters; --json prints them all)"
    return show(text)


def format_text(result: dict, limit: int = PRINT_CHARS) -> str:
    """One video's result as plain text; the explanation (or the completion) shows ``limit`` characters at
    most (0: all of it)."""
    lines = [result["video"]]
    if result["error"]:
        return "\n".join([*lines, f"  error: {result['error']}"])
    score = result["score"]
    lines.append(
        f"  score: {score:.2f}" if score is not None else "  score: none (no number in an <answer> block)"
    )
    if result["explanation"] is not None:
        lines.append(f"  explanation: {shorten(result['explanation'], limit)}")
    else:
        lines.append(f"  completion (no <think> block): {shorten(result['completion'], limit, repr)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = HfArgumentParser(InferenceArguments, prog="vqathinker predict")
    parser.add_argument("videos", nargs="+", help="video files to score")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of plain text")
    parser.add_argument("--question", default=QUALITY_QUESTION, help="the question asked about each video")
    parser.add_argument(
        "--print_chars", "--print-chars", type=int, default=PRINT_CHARS,
        help=f"characters of each explanation the plain text shows (default {PRINT_CHARS}; 0: all)",
    )  # fmt: skip
    try:
        args, extra = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # a field's own check (__post_init__)
        parser.error(str(error))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    model, processor, num_frames = load_for_inference(
        args.model_options(), args.resolved_device(), args.num_frames
    )
    results = predict(
        model,
        processor,
        extra.videos,
        num_frames=num_frames,
        question=extra.question,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        decode_backend=args.decode_backend,
    )
    if extra.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n\n".join(format_text(result, extra.print_chars) for result in results))
    failed = [r["video"] for r in results if r["error"]]
    if failed:
        print(f"{len(failed)} video(s) could not be decoded", file=sys.stderr)
    return 1 if failed else 0
