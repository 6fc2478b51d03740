"""``vqathinker predict``: the quality score and the model's explanation for one or more videos.

    vqathinker predict --model_name_or_path OUT video.mp4 [more.mp4 ...] [--json] [--num_frames N] [--question TEXT]

Plain text by default (the score, then the ``<think>`` text); ``--json`` prints one JSON list with, per
video: ``video``, ``score`` (the number in the answer, or the mean over ``--num_samples`` answers, null when
there is none), ``samples`` (each answer's score), ``explanation`` (the ``<think>`` text of the first answer,
null without one), ``completion`` (everything the model wrote in it) and ``error`` (why a video could not
be decoded, else null). Exits 1 when a video could not be decoded, 0 otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import sys

from transformers import HfArgumentParser

from vqathinker.data.prompts import QUALITY_QUESTION
from vqathinker.data.video import VideoDecodeError, load_frames
from vqathinker.evaluation.inference import GenerationOptions, answer_videos, load_for_inference, video_score
from vqathinker.model.processor import tile_size
from vqathinker.training.configs import InferenceArguments

THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


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
    options: GenerationOptions,
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
                    "samples": [],
                    "explanation": None,
                    "completion": None,
                    "error": str(error),
                }
        if batch:
            answers = answer_videos(model, processor, frames, [question] * len(batch), options)
            for i, video_answers in zip(batch, answers, strict=True):
                results[i] = {
                    "video": videos[i],
                    "score": video_score(video_answers),
                    "samples": [a.score for a in video_answers],
                    "explanation": explanation(video_answers[0].text),
                    "completion": video_answers[0].text,
                    "error": None,
                }
    return [results[i] for i in range(len(videos))]


def format_text(result: dict) -> str:
    lines = [result["video"]]
    if result["error"]:
        return "\n".join([*lines, f"  error: {result['error']}"])
    score = result["score"]
    lines.append(
        f"  score: {score:.2f}" if score is not None else "  score: none (no number in an <answer> block)"
    )
    if result["explanation"] is not None:
        lines.append(f"  explanation: {result['explanation']}")
    else:
        lines.append(f"  completion (no <think> block): {result['completion']!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = HfArgumentParser(InferenceArguments, prog="vqathinker predict")
    parser.add_argument("videos", nargs="+", help="video files to score")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of plain text")
    parser.add_argument("--question", default=QUALITY_QUESTION, help="the question asked about each video")
    try:
        args, extra = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # a field's own check (__post_init__)
        parser.error(str(error))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    model, processor, num_frames = load_for_inference(
        args.model_options(), args.resolved_device(), args.num_frames, args.frame_size
    )
    results = predict(
        model,
        processor,
        extra.videos,
        num_frames=num_frames,
        question=extra.question,
        batch_size=args.batch_size,
        options=args.generation_options(),
        decode_backend=args.decode_backend,
    )
    if extra.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n\n".join(map(format_text, results)))
    failed = [r["video"] for r in results if r["error"]]
    if failed:
        print(f"{len(failed)} video(s) could not be decoded", file=sys.stderr)
    return 1 if failed else 0
