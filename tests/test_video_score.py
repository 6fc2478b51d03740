"""A video's score from several sampled answers: the interquartile mean, robust to a stray answer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vqathinker.evaluation.inference import Answer, video_score


def answers(*scores):
    return [Answer(f"<answer>{s}</answer>", s) for s in scores]


def test_a_stray_answer_does_not_move_the_score():
    typical = (3.5, 3.4, 3.6, 3.5, 3.5, 3.6, 3.4)
    assert video_score(answers(*typical, 3.5)) == pytest.approx(3.5)
    assert video_score(answers(*typical, 3898.0)) == pytest.approx(3.525)  # the plain mean is ~490
    assert video_score(answers(*typical, -7.0)) == pytest.approx(3.475)


def test_the_middle_half_is_averaged():
    scores = [1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    assert video_score(answers(*scores)) == pytest.approx(np.mean([2.5, 3.0, 3.5, 4.0]))
    assert video_score(answers(*reversed(scores))) == pytest.approx(3.25)  # order does not matter
    assert video_score(answers(1.0, 2.0, 4.5, 5.0)) == pytest.approx(3.25)  # 4: the middle two
    assert video_score(answers(1.0, 2.0, 4.5)) == pytest.approx(2.5)  # up to 3: the plain mean
    assert video_score(answers(4.25)) == 4.25


def test_answers_without_a_score_are_left_out():
    assert video_score(answers(None, 2.0, math.inf, 4.0)) == pytest.approx(3.0)
    assert video_score(answers(None, math.nan)) is None
    assert video_score([]) is None
