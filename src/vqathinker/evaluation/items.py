"""The videos of a benchmark, read from either label format.

- VQAThinker's test json ``{"annotations": [{"image_id": "<video path>", "ann_type": "score", "score": "<MOS>"}]}``
  (:func:`read_annotation_json`; the released files give the score as a string), which carries no question:
  evaluate asks the model's (:func:`with_question`; the question it was trained with, recorded in its folder);
- an LSVQ-style jsonl (the training format, :func:`vqathinker.data.records.read_records`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vqathinker.data.records import read_records, resolve_video_path


@dataclass(frozen=True)
class BenchmarkItem:
    """One video of a benchmark."""

    video: str
    """The path as written in the labels; the key of its CSV row."""
    video_path: str
    """The resolved path under the video root."""
    mos: float
    """The raw label on the benchmark's MOS scale."""
    question: str | None = None
    """None: the labels carry no question (see :func:`with_question`)."""

    @property
    def key(self) -> str:
        """What identifies its CSV row: the video."""
        return self.video


def with_question(items: Sequence[BenchmarkItem], question: str) -> list[BenchmarkItem]:
    """``items``, with ``question`` asked of those whose labels carry none."""
    return [
        item if item.question is not None else dataclasses.replace(item, question=question) for item in items
    ]


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
