"""Scoring videos with a model: the one generation path of evaluate, predict and the demo; and batched greedy scoring of a benchmark's videos, one CSV row per video, resumable.

A benchmark is a list of :class:`BenchmarkItem` read from either label format:

- an LSVQ-style jsonl (the training format, :func:`vqathinker.data.records.read_records`), or
- VQAThinker's test json ``{"annotations": [{"image_id": "<video path>", "ann_type": "score", "score": "<MOS>"}]}``
  (:func:`read_annotation_json`), asked the default question of the release.

:func:`run_benchmark` decodes ``num_frames`` segment-centre frames per video, generates greedily in batches
and appends ``video, mos, pred, parse_ok, completion`` to the CSV, flushed after every batch. Run again on the
same CSV it keeps the rows already there and generates only the missing videos (a row cut by an interrupted
write is dropped and redone). ``pred`` is the number :func:`vqathinker.rewards.parse_score` reads from the
answer, on the model's own scale (1..5 when it follows the prompt), and is empty when the answer has none
(``parse_ok`` False): unparsed answers are counted, never replaced by a constant. ``mos`` is the raw label on
the benchmark's scale. A video that cannot be decoded is listed in :attr:`InferenceResult.failed` and has no
row (a rerun tries it again).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.records import read_records, resolve_video_path
from vqathinker.data.video import VideoDecodeError, load_frames
from vqathinker.evaluation.protocol import PROTOCOLS, EvalProtocol
from vqathinker.model.loading import ModelOptions, load_model_and_processor
from vqathinker.model.processor import prepare_inputs, tile_size
from vqathinker.rewards import parse_score

logger = logging.getLogger(__name__)

CSV_FIELDS = ("video", "mos", "pred", "parse_ok", "completion")


def load_for_inference(options: ModelOptions, device: str, num_frames: int | None = None):
    """Load a model in eval mode on ``device`` with its processor: ``(model, processor, num_frames)``.

    ``num_frames`` defaults to the checkpoint's training setting (the processor's ``num_frames``).
    """
    model, processor = load_model_and_processor(options, device=device)
    model.eval()
    return model, processor, num_frames or int(getattr(processor, "num_frames", 6))


@torch.inference_mode()
def generate_answers(
    model,
    processor,
    frames: Sequence[Sequence[Image.Image]],
    questions: Sequence[str],
    max_new_tokens: int,
    *,
    samples: int = 0,
    temperature: float = 1.0,
    prompt_style: str = "default",
) -> list[list[str]]:
    """The completions (decoded text after the prompt) of a batch of videos given as frame lists.

    ``samples`` 0 gives one greedy answer per video; ``samples`` N > 0 gives N answers sampled at
    ``temperature``. ``prompt_style``: :func:`vqathinker.data.prompts.build_conversation`'s. Returns one
    list of answers per video. The model is in eval mode during the call.
    """
    conversations = [
        build_conversation(q, len(f), prompt_style) for q, f in zip(questions, frames, strict=True)
    ]
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    inputs = prepare_inputs(processor, conversations, frames).to(device)
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    tokenizer = processor.tokenizer
    sampling = {"do_sample": True, "temperature": temperature} if samples else {"do_sample": False}
    was_training = model.training
    model.eval()
    try:
        output = model.generate(
            **inputs,
            **sampling,
            num_return_sequences=max(samples, 1),
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
        )
    finally:
        model.train(was_training)
    texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    per_video = max(samples, 1)
    return [texts[k : k + per_video] for k in range(0, len(texts), per_video)]


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

    A video's score is the mean of the scores parsed from its ``samples`` sampled answers (the greedy answer
    when ``samples`` is 0), NaN when none parsed. The mean of samples is the model's expected score: it is
    defined even for a model that answers one number greedily for every video. ``progress`` is called with
    the number of videos of each finished batch.
    """
    scores, parsed = [], 0
    for start in range(0, len(frames), batch_size):
        answers = generate_answers(
            model,
            processor,
            frames[start : start + batch_size],
            questions[start : start + batch_size],
            max_new_tokens,
            samples=samples,
            temperature=temperature,
        )
        for texts in answers:
            values = np.array([math.nan if (s := parse_score(t)) is None else s for t in texts])
            kept = values[np.isfinite(values)]
            parsed += kept.size
            scores.append(float(kept.mean()) if kept.size else math.nan)
        if progress is not None:
            progress(len(answers))
    return np.array(scores), parsed / (len(frames) * max(samples, 1))


# ---------------------------------------------------------------------------------------------------------
# Benchmark items


@dataclass(frozen=True)
class BenchmarkItem:
    """One video of a benchmark."""

    video: str
    """The path as written in the labels; the key of its CSV row."""
    video_path: str
    """The resolved path under the video root."""
    mos: float
    """The raw label on the benchmark's MOS scale."""
    question: str = QUALITY_QUESTION


def read_annotation_json(path: str | os.PathLike, video_root: str | os.PathLike) -> list[BenchmarkItem]:
    """Items of a VQAThinker test json (``{"annotations": [{"image_id", "ann_type", "score"}]}``).

    ``score`` may be a number or a numeric string; ``ann_type``, when present, must be ``"score"``. Raises
    ``ValueError`` naming the file and the annotation index for anything else.
    """
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: malformed JSON ({error})") from None
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        raise ValueError(f"{source}: expected an object with an 'annotations' list")
    items = []
    for i, entry in enumerate(annotations):
        where = f"{source}: annotations[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("image_id"), str) or not entry["image_id"]:
            raise ValueError(f"{where}: expected an object with an 'image_id' path, got {entry!r}")
        if entry.get("ann_type", "score") != "score":
            raise ValueError(f"{where}: ann_type {entry['ann_type']!r} is not 'score'")
        score = entry.get("score")
        try:
            mos = float(score) if not isinstance(score, bool) else math.nan
        except (TypeError, ValueError):
            mos = math.nan
        if not math.isfinite(mos):
            raise ValueError(f"{where}: score must be a finite number, got {score!r}")
        video_path = resolve_video_path(entry["image_id"], str(video_root))
        if video_path is None:
            raise ValueError(f"{where}: video path {entry['image_id']!r} escapes the video root {video_root}")
        items.append(BenchmarkItem(video=entry["image_id"], video_path=video_path, mos=mos))
    return items


def read_benchmark_items(
    annotations: str | os.PathLike,
    video_root: str | os.PathLike,
    format: str,
    mos_range: Sequence[float] | None = None,
) -> list[BenchmarkItem]:
    """Items of a benchmark in ``format`` "json" (VQAThinker test json) or "jsonl" (LSVQ records, which must
    lie in ``mos_range``, default 1..5). Each video may appear once (it keys the CSV rows)."""
    if format == "json":
        items = read_annotation_json(annotations, video_root)
    elif format == "jsonl":
        records = read_records(annotations, video_root, mos_range=tuple(mos_range or (1.0, 5.0))).records
        items = [BenchmarkItem(r.video, r.video_path, r.mos, r.question) for r in records]
    else:
        raise ValueError(f"unknown annotation format {format!r}: expected 'json' or 'jsonl'")
    duplicates = [video for video, count in Counter(item.video for item in items).items() if count > 1]
    if duplicates:
        raise ValueError(
            f"{annotations}: {len(duplicates)} video(s) listed more than once, e.g. {duplicates[:3]}"
        )
    return items


# ---------------------------------------------------------------------------------------------------------
# CSV of predictions


class ResumeError(ValueError):
    """A predictions CSV that cannot be resumed: other settings, another benchmark, or not ours."""


@dataclass(frozen=True)
class PredictionRow:
    """One CSV row: a video's label, parsed score (None when unparsed) and the raw completion."""

    video: str
    mos: float
    pred: float | None
    parse_ok: bool
    completion: str

    def to_csv(self) -> list[str]:
        pred = "" if self.pred is None else repr(self.pred)
        return [self.video, repr(self.mos), pred, str(self.parse_ok), self.completion]


def _parse_csv_row(fields: list[str]) -> PredictionRow | None:
    if len(fields) != len(CSV_FIELDS) or fields[3] not in ("True", "False"):
        return None
    try:
        mos = float(fields[1])
        pred = float(fields[2]) if fields[2] else None
    except ValueError:
        return None
    if (pred is None) == (fields[3] == "True"):
        return None
    return PredictionRow(fields[0], mos, pred, fields[3] == "True", fields[4])


def _csv_text(rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def read_predictions_csv(path: str | os.PathLike) -> list[PredictionRow]:
    """The rows of a predictions CSV written by :func:`run_benchmark` ([] when it does not exist).

    A last row cut short by an interrupted write (the file is not exactly the CSV of the rows it parses
    to, but its prefix before the last row is) is dropped and the file rewritten without it; anything else
    that is not exactly what :func:`run_benchmark` writes is an error (another file, or an edited one).
    """
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        text = handle.read()
    lines = list(csv.reader(io.StringIO(text)))
    truncated = _csv_text(lines) != text
    if truncated:
        if not text.startswith(_csv_text(lines[:-1])):
            raise ResumeError(f"{path}: not a predictions CSV written by vqathinker evaluate")
        lines = lines[:-1]
    if not lines:
        return []
    if tuple(lines[0]) != CSV_FIELDS:
        raise ResumeError(f"{path}: not a predictions CSV (expected the header {','.join(CSV_FIELDS)})")
    rows = [_parse_csv_row(fields) for fields in lines[1:]]
    bad = [i + 2 for i, row in enumerate(rows) if row is None]
    if bad:
        raise ResumeError(f"{path}: malformed row(s) at CSV record(s) {bad[:5]}")
    if truncated:
        logger.warning(
            "%s: dropping a truncated last row (interrupted write); it will be generated again", path
        )
        _write_rows(path, rows)
    return rows


def _write_rows(path: Path, rows: Sequence[PredictionRow]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        writer.writerows(row.to_csv() for row in rows)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------
# Running a benchmark


@dataclass
class InferenceResult:
    """What :func:`run_benchmark` did."""

    rows: list[PredictionRow]
    """One row per decodable video of the benchmark, in benchmark order (resumed and new)."""
    failed: list[dict[str, str]]
    """``{"video", "kind", "error"}`` for every video that could not be decoded."""
    resumed: int
    """Rows found in the CSV and kept."""
    generated: int
    """Rows generated by this call."""

    @property
    def unparsed(self) -> list[str]:
        return [row.video for row in self.rows if not row.parse_ok]


def _check_settings(csv_path: Path, settings: dict, resuming: bool) -> None:
    """Keep the settings next to the CSV; refuse to resume a CSV written with other settings."""
    settings_path = csv_path.with_name(csv_path.stem + ".settings.json")
    if resuming and settings_path.exists():
        previous = json.loads(settings_path.read_text())
        changed = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
        if changed:
            diff = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changed.items())
            raise ResumeError(
                f"{csv_path} was written with other settings ({diff}); use another output folder or --overwrite"
            )
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")


def run_benchmark(
    model,
    processor,
    items: Sequence[BenchmarkItem],
    csv_path: str | os.PathLike,
    num_frames: int,
    batch_size: int = 4,
    max_new_tokens: int = 1024,
    decode_backend: str = "pyav",
    settings: dict | None = None,
    desc: str = "videos",
    protocol: EvalProtocol = PROTOCOLS["default"],
) -> InferenceResult:
    """Score every item not yet in ``csv_path``, appending its row; returns all rows of ``items``.

    ``protocol`` gives the frame sampling, the prompt style and the reading of a score
    (:mod:`vqathinker.evaluation.protocol`).

    ``settings`` (e.g. model, frames, max_new_tokens) are saved beside the CSV as ``<stem>.settings.json``;
    resuming a CSV whose saved settings differ is an error. A CSV holding videos that are not in ``items``
    is an error too (it belongs to another benchmark).
    """
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    existing = {row.video: row for row in read_predictions_csv(csv_path)}
    strangers = set(existing) - {item.video for item in items}
    if strangers:
        raise ResumeError(
            f"{csv_path} has {len(strangers)} video(s) that are not in this benchmark, e.g. "
            f"{sorted(strangers)[:3]}: use another output folder or --overwrite"
        )
    _check_settings(csv_path, dict(settings or {}, num_frames=num_frames), resuming=bool(existing))
    todo = [item for item in items if item.video not in existing]
    if existing:
        logger.info(
            "%s: %d of %d videos already scored, %d to go", csv_path, len(existing), len(items), len(todo)
        )

    new_rows: dict[str, PredictionRow] = {}
    failed: list[dict[str, str]] = []
    unparsed = sum(not row.parse_ok for row in existing.values())
    size = tile_size(processor)
    new_file = not existing
    with (
        csv_path.open("w" if new_file else "a", newline="", encoding="utf-8") as handle,
        tqdm(
            total=len(items), initial=len(existing), desc=desc, unit="video", dynamic_ncols=True
        ) as progress,
    ):
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(CSV_FIELDS)
        for start in range(0, len(todo), batch_size):
            batch, frames = [], []
            for item in todo[start : start + batch_size]:
                try:
                    frames.append(
                        load_frames(
                            item.video_path,
                            num_frames,
                            size=size,
                            backend=decode_backend,
                            sampling=protocol.frame_sampling,
                        )
                    )
                    batch.append(item)
                except VideoDecodeError as error:
                    logger.warning("cannot decode: %s", error)
                    failed.append({"video": item.video, "kind": error.kind, "error": str(error)})
            if batch:
                questions = [i.question for i in batch]
                answers = generate_answers(
                    model, processor, frames, questions, max_new_tokens, prompt_style=protocol.prompt_style
                )
                for item, (answer,) in zip(batch, answers, strict=True):
                    pred = protocol.parse(answer)
                    row = PredictionRow(item.video, item.mos, pred, pred is not None, answer)
                    writer.writerow(row.to_csv())
                    new_rows[item.video] = row
                    unparsed += not row.parse_ok
                handle.flush()
            progress.update(len(todo[start : start + batch_size]))
            progress.set_postfix(unparsed=unparsed, failed=len(failed))
    done = existing | new_rows
    rows = [done[item.video] for item in items if item.video in done]
    return InferenceResult(rows=rows, failed=failed, resumed=len(existing), generated=len(new_rows))
