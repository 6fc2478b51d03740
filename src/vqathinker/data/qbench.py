"""Multiple-choice items in the published layout of the Q-Bench family, read as they are released.

The annotation file is a JSON array of items (``Q_Bench_Video_dev.json``, ``llvisionqa_dev.json``) or a jsonl
file of the same items, one per line. An item's fields, as the benchmarks publish them:

==============================  ======================================================================
``video_name`` / ``img_path``   the video (Q-Bench-Video) or image (Q-Bench) path, relative to the root
``question``                    the question, without its options
``answers`` / ``candidates``    the option texts, lettered A, B, C, ... in order
``correct_choice``              the letter of the correct option (Q-Bench-Video)
``correct_ans``                 the text of the correct option (Q-Bench)
``question_type`` / ``type``    the question type (e.g. yes-or-no, what/how, open-ended)
``concern``                     the quality concern (e.g. technical, aesthetic, temporal)
``id``                          optional; default ``<file stem>-<position>``
==============================  ======================================================================

Items this trainer does not use are left out and counted in :attr:`ReadResult.excluded`, never errors:
``video_pair`` (a comparison of two videos, written ``first.mp4_cat_second.mp4``), ``open_ended`` (no options)
and ``unlabelled`` (no correct answer: a released test split). Every other item is validated like a jsonl
record, with ``FILE:LINE`` (the line where the item starts) in its errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vqathinker.data.choices import LETTERS, format_question, label_index
from vqathinker.data.records import (
    ReadResult,
    RecordError,
    VideoRecord,
    check_video_path,
    load_json_object,
)

VIDEO_KEYS = ("video_name", "img_path")
OPTION_KEYS = ("answers", "candidates")
ANSWER_KEYS = ("correct_choice", "correct_ans")
CATEGORY_KEYS = (("question_type", "type"), ("concern",))
PAIR_SEPARATOR = "_cat_"


def _first(obj: dict, keys: tuple[str, ...]) -> object:
    return next((obj[key] for key in keys if key in obj), None)


def _excluded_kind(obj: dict) -> str | None:
    """Why an item is left out (see the module docstring), or None."""
    video = _first(obj, VIDEO_KEYS)
    if isinstance(video, str) and PAIR_SEPARATOR in video:
        return "video_pair"
    kind = str(_first(obj, CATEGORY_KEYS[0]) or "")
    if not _first(obj, OPTION_KEYS) or "open" in kind.lower():
        return "open_ended"
    return "unlabelled" if _first(obj, ANSWER_KEYS) is None else None


def _categories(obj: dict) -> tuple[str, ...]:
    """``"field: value"`` of the question type and the concern, in that order, as far as the item has them."""
    found = [next(((key, obj[key]) for key in keys if key in obj), None) for keys in CATEGORY_KEYS]
    return tuple(f"{key}: {value}" for key, value in filter(None, found))


def parse_item(obj: dict, where: tuple[str, int], video_root: str, default_id: str) -> VideoRecord:
    """One Q-Bench item as a multiple-choice :class:`VideoRecord`, or a :class:`RecordError` with every problem."""
    problems: list[tuple[str, str]] = []
    video = _first(obj, VIDEO_KEYS)
    if video is None:
        problems.append(("missing_key", f"missing key {' or '.join(map(repr, VIDEO_KEYS))}"))
    bad_path = f"{' / '.join(VIDEO_KEYS)} must be a path, got {video!r}"
    video_path = None if video is None else check_video_path(video, video_root, problems, bad_path)
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        problems.append(("missing_key", f"'question' must be a non-empty string, got {question!r}"))
    options = _first(obj, OPTION_KEYS)
    answer = None
    if not (isinstance(options, list) and 2 <= len(options) <= len(LETTERS)) or not all(
        isinstance(text, str) and text.strip() for text in options
    ):
        problems.append(
            ("bad_options", f"the options must be a list of 2-26 non-empty strings, got {options!r}")
        )
    else:
        label = _first(obj, ANSWER_KEYS)
        index = label_index(label, options)
        if index is None:
            problems.append(
                ("bad_answer", f"the correct answer {label!r} names none of the options {options!r}")
            )
        else:
            answer = LETTERS[index]
    if problems:
        reason = "; ".join(reason for _, reason in problems)
        raise RecordError(*where, reason, problems[0][0], tuple(problems), video_path)
    return VideoRecord(
        id=str(obj.get("id", default_id)),
        dataset_name=str(obj.get("dataset_name", Path(where[0]).stem)),
        video=video,
        video_path=video_path,
        question=format_question(question, options),
        mos=None,
        source=where[0],
        line=where[1],
        task="choice",
        options=tuple(text.strip() for text in options),
        answer=answer,
        categories=_categories(obj),
    )


def _array_items(text: str, source: str) -> Iterator[tuple[int, object]]:
    """``(line, item)`` for each item of a JSON array; a syntax error ends it with a :class:`RecordError`."""
    decoder = json.JSONDecoder()
    pos = counted = text.index("[") + 1
    line = text.count("\n", 0, pos) + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":  # the separators between items
            pos += 1
        line, counted = line + text.count("\n", counted, pos), pos
        if pos < len(text) and text[pos] == "]":
            return
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            reason = f"malformed JSON ({exc.msg}); the rest of the file is not read"
            yield exc.lineno, RecordError(source, exc.lineno, reason, "malformed_json")
            return
        yield line, item


def _items(path: str) -> Iterator[tuple[int, object]]:
    """``(line, item or RecordError)`` for each item of a JSON array or jsonl file."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        yield from _array_items(text, path)
        return
    for line, row in enumerate(text.splitlines(), start=1):
        if row.strip():
            try:
                yield line, load_json_object(row, (path, line), ())
            except RecordError as exc:
                yield line, exc


def read_qbench(
    path: str | os.PathLike, video_root: str | os.PathLike, on_error: Literal["error", "skip"] = "error"
) -> ReadResult:
    """Read and validate the multiple-choice items of a Q-Bench-layout file (see the module docstring);
    ``on_error`` as in :func:`vqathinker.data.records.read_records`."""
    source, root, result = str(path), os.path.abspath(video_root), ReadResult()
    stem = Path(source).stem
    for position, (line, obj) in enumerate(_items(source), start=1):
        try:
            if isinstance(obj, RecordError):
                raise obj
            if not isinstance(obj, dict):
                raise RecordError(
                    source, line, f"expected a JSON object, got {type(obj).__name__}", "malformed_json"
                )
            excluded = _excluded_kind(obj)
            if excluded:
                result.excluded[excluded] += 1
                continue
            result.records.append(parse_item(obj, (source, line), root, f"{stem}-{position}"))
        except RecordError as exc:
            if on_error == "error":
                raise
            result.reject(exc)
    result.log_summary(source)
    return result
