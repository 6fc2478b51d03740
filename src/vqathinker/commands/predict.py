"""``vqathinker predict``: the quality score and the model's explanation for one or more videos.

    vqathinker predict --model_name_or_path OUT video.mp4 [more.mp4 ...] [--json] [--num_frames N] [--question TEXT]
        [--num_samples N] [--score_mode expected] [--frame_size PX] [--backend vllm]

Plain text by default (the score, then the ``<think>`` text, cut after ``--print_chars`` characters with the
count of those left out); ``--json`` prints one JSON list, never cut, with, per video: ``video``, ``score``
(the number in the answer, or the interquartile mean over ``--num_samples`` answers, null when there is none),
``samples`` (each answer's score), ``explanation`` (the ``<think>`` text of the first answer, null without
one), ``completion`` (everything the model wrote in it) and ``error`` (why a video could not be decoded,
else null). Each video is asked ``--question``, else the question the model was trained with (recorded in its
folder), else the release's LSVQ question. Exits 1 when a video could not be decoded, 0 otherwise.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable
from types import SimpleNamespace

from transformers import HfArgumentParser

from vqathinker.data.video import load_frames
from vqathinker.evaluation.backends import load_scorer
from vqathinker.evaluation.inference import checkpoint_prompt, video_score
from vqathinker.evaluation.prefetch import decoded_batches
from vqathinker.evaluation.runner import AnswerFn
from vqathinker.model.processor import tile_size
from vqathinker.training.configs import InferenceArguments

THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
PRINT_CHARS = 800
"""Characters of an explanation or completion that the plain-text output shows (``--print_chars``)."""


def explanation(completion: str) -> str | None:
    """The text of the first ``<think>…</think>`` block, stripped (None when there is none)."""
    match = THINK.search(completion)
    return match.group(1).strip() if match else None


def predict(answer: AnswerFn, load, videos: list[str], question: str, batch_size: int) -> list[dict]:
    """One result dict per video (see the module docstring), in order, ``batch_size`` videos at a time:
    ``load(path)`` gives a video's frames, ``answer(frames, questions)`` the answers of a batch."""
    results: dict[int, dict] = {}
    items = [SimpleNamespace(video=i, video_path=path) for i, path in enumerate(videos)]
    for batch, frames, failed in decoded_batches(items, batch_size, load):
        for failure in failed:
            results[failure["video"]] = {
                "video": videos[failure["video"]],
                "score": None,
                "samples": [],
                "explanation": None,
                "completion": None,
                "error": failure["error"],
            }
        answers = answer(frames, [question] * len(batch)) if batch else []
        for item, video_answers in zip(batch, answers, strict=True):
            results[item.video] = {
                "video": item.video_path,
                "score": video_score(video_answers),
                "samples": [a.score for a in video_answers],
                "explanation": explanation(video_answers[0].text),
                "completion": video_answers[0].text,
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
    parser.add_argument(
        "--print_chars", "--print-chars", type=int, default=PRINT_CHARS,
        help=f"characters of each explanation the plain text shows (default {PRINT_CHARS}; 0: all)",
    )  # fmt: skip
    try:
        args, extra = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # a field's own check (__post_init__)
        parser.error(str(error))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        answer, processor, num_frames = load_scorer(
            args.model_options(),
            args.generation_options(),
            args.num_frames,
            args.frame_size,
            args.backend_options(args.resolved_device()),
        )
    except (ValueError, ImportError) as error:  # a frame size the tower cannot take, vLLM missing, ...
        parser.error(str(error))
    load = functools.partial(
        load_frames, num_frames=num_frames, size=tile_size(processor), backend=args.decode_backend
    )
    question = checkpoint_prompt(processor, args.question)[0]  # --question, else the checkpoint's
    results = predict(answer, load, extra.videos, question, args.batch_size)
    if extra.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n\n".join(format_text(result, extra.print_chars) for result in results))
    failed = [r["video"] for r in results if r["error"]]
    if failed:
        print(f"{len(failed)} video(s) could not be decoded", file=sys.stderr)
    return 1 if failed else 0
