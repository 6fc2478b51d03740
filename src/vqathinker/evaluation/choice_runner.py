"""Multiple-choice benchmarks: their questions, their predictions CSV, and their accuracy.

A multiple-choice benchmark (``task: choice``) is read in one of two label formats:

- ``jsonl``: the multiple-choice records of the training jsonl family (:mod:`vqathinker.data.records`, the
  ``human`` turn lists lettered options, the ``gpt`` value names the correct one);
- ``qbench``: the Q-Bench / Q-Bench-Video layout as published (:mod:`vqathinker.data.qbench`); its items
  that are no multiple-choice question about one video (video pairs, open-ended, unlabelled) are left out and
  counted in the benchmark's warnings.

A bad record stops the run with ``FILE:LINE: reason``; every question needs its own ``id`` (it keys its CSV
row; a Q-Bench item without one is ``<file stem>-<position>``). Each question is answered by the generation
path of the score benchmarks, one answer per question, with the prompt of
:func:`vqathinker.data.prompts.build_choice_conversation`; :mod:`vqathinker.evaluation.choice_metrics` reads
the letter it picks and grades it. Multiple-choice questions take a single answer that is read, not scored:
``--score_mode expected`` and ``--num_samples`` above 1 are refused (:func:`check_choice_generation`).

``predictions/<benchmark>.csv`` has one row per question whose video could be decoded, in label order::

    id, video, categories, answer, picked, completion

``categories`` is the JSON list of the question's categories (``["question_type: yes-or-no", "concern:
Technical"]``), ``answer`` the correct letter, ``picked`` the letter the answer picks (empty when it picks
none: counted as unparsed, and wrong), ``completion`` the answer's text. It is resumed, and written in part
files by data-parallel processes, like a score benchmark's CSV (:mod:`vqathinker.evaluation.predictions`),
keyed by ``id``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vqathinker.data.choices import LETTERS
from vqathinker.data.prompts import choice_question
from vqathinker.data.qbench import read_qbench
from vqathinker.data.records import read_records
from vqathinker.evaluation.choice_metrics import choice_metrics, picked_letters
from vqathinker.evaluation.inference import Answer
from vqathinker.evaluation.predictions import CsvFormat
from vqathinker.evaluation.runner import InferenceResult, RowSpec, ScoringJob, run_rows

CHOICE_FORMATS = ("jsonl", "qbench")
"""The label formats of a multiple-choice benchmark (see the module docstring)."""
CHOICE_FIELDS = ("id", "video", "categories", "answer", "picked", "completion")


@dataclass(frozen=True)
class ChoiceItem:
    """One question of a multiple-choice benchmark."""

    key: str
    """The question's id: the key of its CSV row."""
    video: str
    """The path as written in the labels."""
    video_path: str
    """The resolved path under the video root."""
    question: str
    """The question text of the prompt: the question, its lettered options and the instruction."""
    options: tuple[str, ...]
    answer: str
    """The letter of the correct option."""
    categories: tuple[str, ...] = ()


def read_choice_items(
    annotations: str | os.PathLike, video_root: str | os.PathLike, format: str
) -> tuple[list[ChoiceItem], list[str]]:
    """The questions of a multiple-choice benchmark in ``format`` (:data:`CHOICE_FORMATS`) and warnings
    about them (items left out). Raises ``ValueError`` naming the file and line of a bad record or of an id
    given twice."""
    if format == "qbench":
        result = read_qbench(annotations, video_root)
    elif format == "jsonl":
        result = read_records(annotations, video_root, task="choice")
    else:
        raise ValueError(
            f"a multiple-choice benchmark's format must be one of {CHOICE_FORMATS}, got {format!r}"
        )
    first_line: dict[str, int] = {}
    for record in result.records:
        if record.id in first_line:
            raise ValueError(
                f"{record.source}:{record.line}: id {record.id!r} was already given on line "
                f"{first_line[record.id]} (each question needs its own id: it keys its CSV row)"
            )
        first_line[record.id] = record.line
    items = [
        ChoiceItem(r.id, r.video, r.video_path, choice_question(r.question, len(r.options)), r.options,
                   r.answer, r.categories)
        for r in result.records
    ]  # fmt: skip
    warnings = []
    if result.excluded:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(result.excluded.items()))
        warnings.append(f"{result.excluded.total()} item(s) of {annotations} left out ({kinds})")
    return items, warnings


@dataclass(frozen=True)
class ChoiceRow:
    """One CSV row: a question, its correct letter, the letter its answer picks (None: none) and the answer."""

    id: str
    video: str
    categories: tuple[str, ...]
    answer: str
    picked: str | None
    completion: str

    @property
    def key(self) -> str:
        return self.id

    @property
    def parse_ok(self) -> bool:
        return self.picked is not None

    def to_csv(self) -> list[str]:
        categories = json.dumps(list(self.categories))
        return [self.id, self.video, categories, self.answer, self.picked or "", self.completion]


def _parse_choice_row(fields: list[str]) -> ChoiceRow | None:
    if len(fields) != len(CHOICE_FIELDS):
        return None
    key, video, categories, answer, picked, completion = fields
    try:
        categories = json.loads(categories)
    except json.JSONDecodeError:
        return None
    letters = set(LETTERS)
    if not (isinstance(categories, list) and all(isinstance(c, str) for c in categories)):
        return None
    if answer not in letters or (picked and picked not in letters):
        return None
    return ChoiceRow(key, video, tuple(categories), answer, picked or None, completion)


CHOICE_CSV = CsvFormat(CHOICE_FIELDS, _parse_choice_row)
"""The CSV of a multiple-choice benchmark (the module docstring)."""


def make_choice_row(item: ChoiceItem, answers: Sequence[Answer]) -> ChoiceRow:
    """The row of a question from its answer (the first one)."""
    text = answers[0].text if answers else ""
    (picked,) = picked_letters([text], [item])
    return ChoiceRow(item.key, item.video, item.categories, item.answer, picked, text)


def check_choice_generation(num_samples: int, score_mode: str) -> None:
    """Refuse the generation options that only mean something for a score (``ValueError``)."""
    if score_mode != "answer":
        raise ValueError(
            f"--score_mode {score_mode} reads a score from the digits of an answer; a multiple-choice benchmark "
            "grades the letter its answer picks: run it without --score_mode (pick benchmarks with --only)"
        )
    if num_samples > 1:
        raise ValueError(
            f"--num_samples {num_samples} averages the scores of several answers; a multiple-choice benchmark "
            "grades one answer per question: run it with --num_samples 0 or 1 (pick benchmarks with --only)"
        )


def run_choice_benchmark(
    job: ScoringJob, items: Sequence[ChoiceItem], csv_path: str | os.PathLike, desc: str = "questions"
) -> InferenceResult | None:
    """Answer the questions not yet in ``csv_path`` (or its part files), as
    :func:`vqathinker.evaluation.runner.run_benchmark` scores videos; all rows on the main process, None on
    the others."""
    settings = {**job.settings, "task": "choice"}
    return run_rows(job, items, Path(csv_path), settings, RowSpec(CHOICE_CSV, make_choice_row), desc)


def choice_details(result: InferenceResult, items: Sequence[ChoiceItem]) -> dict:
    """The metrics of the answered questions (:func:`~vqathinker.evaluation.choice_metrics.choice_metrics`:
    ``n``, ``correct``, ``unparsed``, ``accuracy``, ``chance``, ``per_category``) against the benchmark's
    labels, and the ids of the unparsed answers. A question whose video failed to decode has no row and is
    left out (counted in ``failed_questions``)."""
    by_key = {item.key: item for item in items}
    metrics = choice_metrics([row.picked for row in result.rows], [by_key[row.key] for row in result.rows])
    return {**metrics, "failed_questions": len(result.failed), "unparsed_questions": result.unparsed}
