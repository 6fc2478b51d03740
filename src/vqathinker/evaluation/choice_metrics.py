"""Accuracy of multiple-choice answers, overall and per question category, as the quality-understanding
benchmarks (Q-Bench, Q-Bench-Video) report it.

An answer picks an option by the rules of the training reward, :func:`vqathinker.rewards.parse_choice` (the
option letter, ``B.``, ``(B)``, ``B) text``, or the option's exact text, in the last ``<answer>`` block).

Conventions:

- ``accuracy`` = correct answers / questions. An answer that picks no option is wrong, and counted in
  ``unparsed``: it is never replaced by a random letter (some benchmark scripts guess one), so the figure does
  not move from run to run and an unreadable answer costs the model.
- ``per_category``: the same figures over the questions of each category; a question counts in each of its
  categories (a Q-Bench question has a question type and a quality concern: ``"question_type: yes-or-no"``,
  ``"concern: Technical"``).
- ``chance``: the expected accuracy of a uniform guess, the mean of 1 / (number of options).
- No question: accuracy and chance are NaN, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from vqathinker.data.choices import LETTERS
from vqathinker.rewards import parse_choice


class ChoiceQuestion(Protocol):
    """What grading needs of a question: the fields of a multiple-choice
    :class:`vqathinker.data.records.VideoRecord`."""

    options: Sequence[str]
    answer: str | None
    categories: Sequence[str]


def picked_letters(completions: Sequence[str], questions: Sequence[ChoiceQuestion]) -> list[str | None]:
    """The letter each completion picks among its question's options, or None (see the module docstring)."""
    if len(completions) != len(questions):
        raise ValueError(f"got {len(completions)} completions for {len(questions)} questions")
    picks = []
    for text, question in zip(completions, questions, strict=True):
        index = parse_choice(text, list(question.options))
        picks.append(None if index is None else LETTERS[index])
    return picks


def _figures(correct: int, unparsed: int, n: int, chance: float) -> dict:
    return {
        "n": n,
        "correct": correct,
        "unparsed": unparsed,
        "accuracy": correct / n if n else math.nan,
        "chance": chance / n if n else math.nan,
    }


def choice_metrics(picks: Sequence[str | None], questions: Sequence[ChoiceQuestion]) -> dict:
    """Accuracy overall and per category of the picked letters (None: unparsed) against the questions' answers.

    Returns ``{"n", "correct", "unparsed", "accuracy", "chance", "per_category": {category: {same keys}}}``
    (categories in first-seen order).

    Example: three questions (two options each), one right, one wrong, one unparsed:
        >>> from types import SimpleNamespace as Q
        >>> qs = [Q(options=["a", "b"], answer="A", categories=["type: yes-or-no"]) for _ in range(3)]
        >>> m = choice_metrics(["A", "B", None], qs)
        >>> m["accuracy"], m["unparsed"], m["chance"], m["per_category"]["type: yes-or-no"]["correct"]
        (0.3333333333333333, 1, 0.5, 1)
    """
    if len(picks) != len(questions):
        raise ValueError(f"got {len(picks)} answers for {len(questions)} questions")
    totals: dict[str | None, list[float]] = {None: [0, 0, 0, 0.0]}  # correct, unparsed, n, summed chance
    for row, (pick, question) in enumerate(zip(picks, questions, strict=True)):
        letters = list(LETTERS[: len(question.options)])
        if question.answer not in letters:
            raise ValueError(
                f"questions[{row}]: the answer {question.answer!r} is none of the letters {letters}"
            )
        for key in (None, *question.categories):
            figures = totals.setdefault(key, [0, 0, 0, 0.0])
            figures[0] += pick == question.answer
            figures[1] += pick is None
            figures[2] += 1
            figures[3] += 1 / len(question.options)
    overall = totals.pop(None)
    return {
        **_figures(int(overall[0]), int(overall[1]), int(overall[2]), overall[3]),
        "per_category": {key: _figures(int(c), int(u), int(n), s) for key, (c, u, n, s) in totals.items()},
    }
