"""LSVQ-style jsonl → validated :class:`VideoRecord` objects.

One JSON object per line, the format of the VQAThinker release::

    {"id": 0, "dataset_name": "LSVQ", "image": ["yfcc-batch16/13078.mp4"],
     "conversations": [{"from": "human", "value": "<question>"}, {"from": "gpt", "value": 3.418571}]}

``image[0]`` is the video path relative to a video root (an absolute path must lie under the root), the
``gpt`` value is the MOS on the scale ``mos_range``. A multiple-choice file (``task="choice"``) has the same
layout: the ``human`` turn is the question with its lettered options (:mod:`vqathinker.data.choices`) and the
``gpt`` value names the correct option (``"B"``, or the option's text). Every line is checked; a bad line either raises
:class:`RecordError` (``"FILE:LINE: reason"``, with every problem of the line: a bad MOS AND a bad video path
are both reported) or, with ``on_error="skip"``, is counted under each of its kinds with one warning per
kind and a summary line. No file is opened or stat'ed here: this is the fast path that
indexes a 28k-video dataset in well under a second (``vqathinker check-data`` checks the videos).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vqathinker.data.choices import LETTERS, label_index, parse_options

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 5
"""File:line examples kept per kind of problem in :attr:`ReadResult.examples`."""

TASKS = ("score", "choice")
"""What a record asks: a quality score (its MOS) or the correct option of a multiple-choice question."""


class RecordError(ValueError):
    """A bad jsonl record; the message starts with ``"FILE:LINE: "``.

    ``problems`` lists every ``(kind, reason)`` found on the line (``kind`` is the first one's kind);
    ``video_path`` is the line's resolved video path when it has one, so that a checker can also test the
    video of a rejected line.
    """

    def __init__(
        self,
        source: str,
        line: int,
        reason: str,
        kind: str = "malformed",
        problems: tuple[tuple[str, str], ...] | None = None,
        video_path: str | None = None,
    ):
        super().__init__(f"{source}:{line}: {reason}")
        self.source, self.line, self.reason, self.kind = source, line, reason, kind
        self.problems = problems or ((kind, reason),)
        self.video_path = video_path

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.source, self.line, self.reason, self.kind, self.problems, self.video_path)


@dataclass(frozen=True)
class VideoRecord:
    """One validated training or evaluation sample."""

    id: str
    dataset_name: str
    video: str
    """The path as written in the jsonl."""
    video_path: str
    """The absolute path, under the video root."""
    question: str
    """The human turn: for a multiple-choice record, the question with its lettered options."""
    mos: float | None
    """The raw MOS, on the file's own scale (see :func:`map_mos`); None for a multiple-choice record."""
    source: str
    """The jsonl file the record came from."""
    line: int
    """1-based line number in ``source``."""
    task: str = "score"
    """One of :data:`TASKS`."""
    options: tuple[str, ...] = ()
    """The option texts of a multiple-choice question, in letter order."""
    answer: str | None = None
    """The letter of the correct option of a multiple-choice question."""
    categories: tuple[str, ...] = ()
    """The question's categories as ``"field: value"`` (a benchmark's question type and quality concern, e.g.
    ``("question_type: yes-or-no", "concern: Technical")``), when the source gives them."""


@dataclass
class ReadResult:
    """The records of one jsonl plus what was skipped (only with ``on_error="skip"``)."""

    records: list[VideoRecord] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    """Number of skipped lines per kind of problem."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """The first few ``"file:line: reason"`` messages per kind."""
    rejected: list[RecordError] = field(default_factory=list)
    """The error of every skipped line (a line with several problems counts once here, and under each of
    its kinds in :attr:`skipped`)."""
    excluded: Counter[str] = field(default_factory=Counter)
    """Well-formed items of a kind this trainer does not use (e.g. a benchmark's open-ended questions), per
    kind: left out whatever ``on_error`` says, and not problems."""

    def reject(self, error: RecordError) -> None:
        """Count a skipped line under each of its kinds, warning once per kind."""
        self.rejected.append(error)
        reasons: dict[str, str] = {}  # each kind of the line once, with its first reason
        for kind, reason in error.problems:
            reasons.setdefault(kind, reason)
        for kind, reason in reasons.items():
            if not self.skipped[kind]:
                logger.warning("%s (skipping; further '%s' problems are only counted)", error, kind)
            self.skipped[kind] += 1
            examples = self.examples.setdefault(kind, [])
            if len(examples) < MAX_EXAMPLES:
                examples.append(f"{error.source}:{error.line}: {reason}")

    def log_summary(self, source: str) -> None:
        """One warning with the skipped lines of ``source`` per kind, when there are any."""
        if self.rejected:
            counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.skipped.items()))
            logger.warning(
                "%s: skipped %d bad record(s) (%s), kept %d",
                source,
                len(self.rejected),
                counts,
                len(self.records),
            )
        if self.excluded:
            counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.excluded.items()))
            logger.info(
                "%s: left out %d item(s) this trainer does not use (%s)",
                source,
                self.excluded.total(),
                counts,
            )


def map_mos(value: float, mos_range: tuple[float, float] | list[float]) -> float:
    """Map ``value`` linearly from ``mos_range`` (e.g. ``(0, 100)``) to 1..5."""
    low, high = float(mos_range[0]), float(mos_range[1])
    if not high > low:
        raise ValueError(f"mos_range must be [low, high] with high > low, got {list(mos_range)}")
    return 1.0 + 4.0 * (float(value) - low) / (high - low)


def resolve_video_path(video: str, video_root: str) -> str | None:
    """The absolute, normalised path of ``video`` under ``video_root``, or None when it escapes the root.

    Purely lexical (no filesystem access): ``..`` components and absolute paths are checked against the
    root; symbolic links inside the root are trusted.
    """
    root = os.path.abspath(video_root)
    path = os.path.normpath(os.path.join(root, video))
    return path if path.startswith(root.rstrip(os.sep) + os.sep) else None


def _json_problem(exc: json.JSONDecodeError, text: str) -> str:
    """The reason of a JSON syntax error; a line whose JSON ends early is said to look cut off."""
    message = exc.msg.removesuffix(" at")  # json writes "Invalid control character at" (and adds no position)
    end = len(text.rstrip())
    reason = f"malformed JSON ({message} at column {min(exc.pos, end) + 1})"  # past the end: right after it
    if exc.pos >= end or exc.msg.startswith("Unterminated string"):
        reason += f": the line stops at column {end} inside its JSON object; it looks cut off (truncated)"
    return reason


def _scale_hint(mos: float, mos_range: tuple[float, float]) -> str:
    """A hint for a 0-100 MOS read with the default 1-5 range, else ''."""
    if tuple(mos_range) == (1.0, 5.0) and 5.0 < mos <= 100.0:
        return (
            " (is the file on another scale, e.g. 0-100? set its mos_range: [0, 100] in the dataset YAML, "
            "or --mos_range 0 100)"
        )
    return ""


def _parse_mos(value: object, mos_range: tuple[float, float], where: tuple[str, int]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordError(*where, f"MOS must be a number, got {value!r}", kind="bad_mos")
    try:
        mos = float(value)
    except ValueError:
        raise RecordError(*where, f"MOS must be a number, got {value!r}", kind="bad_mos") from None
    if not math.isfinite(mos):
        raise RecordError(*where, f"MOS must be finite, got {value!r}", kind="bad_mos")
    low, high = mos_range
    if not low <= mos <= high:
        raise RecordError(
            *where,
            f"MOS {mos} outside mos_range [{low}, {high}]{_scale_hint(mos, mos_range)}",
            kind="mos_out_of_range",
        )
    return mos


def parse_choice_label(question: str, label: object, where: tuple[str, int]) -> tuple[tuple[str, ...], str]:
    """The options of a multiple-choice question and the letter of the option ``label`` names, or a
    :class:`RecordError` (kind ``bad_options`` or ``bad_answer``)."""
    options = parse_options(question)
    if not options:
        raise RecordError(
            *where,
            "a multiple-choice question needs at least two lettered options, one per line ('A. ...', 'B. ...')",
            kind="bad_options",
        )
    index = label_index(label, options)
    if index is None:
        raise RecordError(
            *where,
            f"the answer {label!r} names none of the options {LETTERS[0]}-{LETTERS[len(options) - 1]} "
            "(give the option's letter, e.g. 'B', or its exact text)",
            kind="bad_answer",
        )
    return tuple(options), LETTERS[index]


def _message(conversations: list, role: str, where: tuple[str, int]) -> object:
    for turn in conversations:
        if isinstance(turn, dict) and turn.get("from") == role and "value" in turn:
            return turn["value"]
    raise RecordError(*where, f"no '{role}' turn in 'conversations'", kind="missing_key")


def load_json_object(text: str, where: tuple[str, int], keys: tuple[str, ...]) -> dict:
    """The JSON object of one line, or a :class:`RecordError` when it is not one or lacks any of ``keys``."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(*where, _json_problem(exc, text), kind="malformed_json") from None
    if not isinstance(obj, dict):
        raise RecordError(*where, f"expected a JSON object, got {type(obj).__name__}", kind="malformed_json")
    missing = [key for key in keys if key not in obj]
    if missing:
        raise RecordError(*where, f"missing key(s) {', '.join(map(repr, missing))}", kind="missing_key")
    return obj


def check_video_path(
    video: object, video_root: str, problems: list[tuple[str, str]], bad_path: str
) -> str | None:
    """The resolved path of a record's video, or None with its problem appended to ``problems`` (``bad_path``
    is the reason when ``video`` is not a path)."""
    if not isinstance(video, str) or not video:
        problems.append(("bad_path", bad_path))
        return None
    video_path = resolve_video_path(video, video_root)
    if video_path is None:
        problems.append(("path_escape", f"video path {video!r} escapes the video root {video_root}"))
    return video_path


def parse_record(
    text: str,
    source: str,
    line: int,
    video_root: str,
    mos_range: tuple[float, float],
    task: str = "score",
) -> VideoRecord:
    """Validate one jsonl line; raise :class:`RecordError` naming ``source:line`` and every problem of the
    line (the video path, the question and the MOS or the correct option are checked independently) when it
    is bad. ``task`` says what the ``gpt`` value is: a MOS (``"score"``) or the correct option
    (``"choice"``)."""
    where = (source, line)
    obj = load_json_object(text, where, ("id", "image", "conversations"))
    problems: list[tuple[str, str]] = []
    image = obj["image"]
    video = image[0] if isinstance(image, list) and len(image) == 1 else image
    video_path = check_video_path(
        video, video_root, problems, f"'image' must be a path or a list of one path, got {image!r}"
    )
    question, mos, options, answer = None, None, (), None
    conversations = obj["conversations"]
    if not isinstance(conversations, list):
        problems.append(("missing_key", "'conversations' must be a list"))
    else:
        try:
            question = _message(conversations, "human", where)
            if not isinstance(question, str) or not question.strip():
                question = None
                raise RecordError(*where, "the 'human' turn must be a non-empty string", kind="missing_key")
        except RecordError as exc:
            problems.append((exc.kind, exc.reason))
        try:
            label = _message(conversations, "gpt", where)
            if task == "score":
                mos = _parse_mos(label, mos_range, where)
            elif question is not None:
                options, answer = parse_choice_label(question, label, where)
        except RecordError as exc:
            problems.append((exc.kind, exc.reason))
    if problems:
        reason = "; ".join(reason for _, reason in problems)
        raise RecordError(*where, reason, problems[0][0], tuple(problems), video_path)
    return VideoRecord(
        id=str(obj["id"]),
        dataset_name=str(obj["dataset_name"]) if "dataset_name" in obj else Path(source).stem,
        video=video,
        video_path=video_path,
        question=question.strip(),
        mos=mos,
        source=source,
        line=line,
        task=task,
        options=options,
        answer=answer,
    )


def read_records(
    jsonl: str | os.PathLike,
    video_root: str | os.PathLike,
    mos_range: tuple[float, float] | list[float] = (1.0, 5.0),
    on_error: Literal["error", "skip"] = "error",
    task: str = "score",
) -> ReadResult:
    """Read and validate every line of ``jsonl`` (blank lines are ignored); ``task`` is one of :data:`TASKS`
    (``"choice"``: multiple-choice records, whose ``mos_range`` is not used).

    ``on_error="error"`` raises :class:`RecordError` at the first bad line; ``"skip"`` drops bad lines,
    logs one warning for the first problem of each kind and a summary, and reports the counts in
    :attr:`ReadResult.skipped`.
    """
    if on_error not in ("error", "skip"):
        raise ValueError(f"on_error must be 'error' or 'skip', got {on_error!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    low, high = float(mos_range[0]), float(mos_range[1])
    map_mos(low, (low, high))  # validates the range
    source, root = str(jsonl), os.path.abspath(video_root)
    result = ReadResult()
    with open(jsonl, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                result.records.append(parse_record(text, source, line, root, (low, high), task))
            except RecordError as exc:
                if on_error == "error":
                    raise
                result.reject(exc)
    result.log_summary(source)
    return result
