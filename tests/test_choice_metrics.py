"""Multiple-choice accuracy, overall and per category, with unparsed answers counted as wrong."""

from __future__ import annotations

import math

import pytest

from vqathinker.data.records import VideoRecord
from vqathinker.evaluation.choice_metrics import choice_metrics, picked_letters

TYPE, CONCERN = "question_type: yes-or-no", "concern: Technical"


def question(answer: str, options=("Yes", "No"), categories=(TYPE, CONCERN)) -> VideoRecord:
    text = "Q?\n" + "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(options))
    return VideoRecord(
        "0", "qb", "a.mp4", "/v/a.mp4", text, None, "qb.json", 1,
        task="choice", options=tuple(options), answer=answer, categories=tuple(categories),
    )  # fmt: skip


def test_accuracy_overall_and_per_category():
    questions = [
        question("A"),
        question("B"),
        question("C", ("dark", "fine", "bright", "noisy"), ("question_type: what/how", CONCERN)),
        question("A", ("dark", "fine", "bright"), ("question_type: what/how", "concern: Aesthetic")),
    ]
    completions = [
        "<answer>A</answer>",  # right
        "<answer>Yes</answer>",  # wrong, by the option's text
        "<think>it is B or C</think><answer>(C) bright</answer>",  # right
        "<answer>dark or fine</answer>",  # unparsed
    ]
    picks = picked_letters(completions, questions)
    assert picks == ["A", "A", "C", None]
    metrics = choice_metrics(picks, questions)
    assert {k: metrics[k] for k in ("n", "correct", "unparsed", "accuracy")} == {
        "n": 4, "correct": 2, "unparsed": 1, "accuracy": 0.5,
    }  # fmt: skip
    assert metrics["chance"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 4 + 1 / 3) / 4)
    per = metrics["per_category"]
    assert list(per) == [TYPE, CONCERN, "question_type: what/how", "concern: Aesthetic"]
    assert (per[TYPE]["n"], per[TYPE]["correct"], per[TYPE]["accuracy"]) == (2, 1, 0.5)
    assert (per[CONCERN]["n"], per[CONCERN]["correct"], per[CONCERN]["unparsed"]) == (3, 2, 0)
    assert per["concern: Aesthetic"] == {
        "n": 1,
        "correct": 0,
        "unparsed": 1,
        "accuracy": 0.0,
        "chance": 1 / 3,
    }


def test_no_question_and_bad_input():
    empty = choice_metrics([], [])
    assert empty["n"] == 0 and math.isnan(empty["accuracy"]) and empty["per_category"] == {}
    with pytest.raises(ValueError, match="2 answers for 1 questions"):
        choice_metrics(["A", "B"], [question("A")])
    with pytest.raises(
        ValueError, match=r"questions\[0\]: the answer 'C' is none of the letters \['A', 'B'\]"
    ):
        choice_metrics(["A"], [question("C")])
    with pytest.raises(ValueError, match="1 completions for 2 questions"):
        picked_letters(["<answer>A</answer>"], [question("A")] * 2)
