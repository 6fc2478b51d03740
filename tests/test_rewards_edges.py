"""Edges of the reward functions a user meets in a notebook: answers that look well formed but hold no score,
the range of the rank reward, a string passed where a list is expected, and a missing MOS."""

import math

import numpy as np
import pytest

from vqathinker.rewards import fidelity_rank_rewards, format_reward, rank_reward, regression_reward


def answer(text: str) -> str:
    return f"<think>looks fine</think><answer>{text}</answer>"


@pytest.mark.parametrize("text", ["3,5", "nan", "inf", "-inf", "1e999", "good", "", "  "])
def test_format_reward_pays_nothing_for_an_answer_without_a_score(text):
    assert format_reward([answer(text)]) == [0.0]
    assert format_reward([[{"role": "assistant", "content": answer(text)}]]) == [0.0]


@pytest.mark.parametrize("text", ["3", "3.5", "3.50", "Score: 4.25 / 5", "3, 5", "1e1"])
def test_format_reward_pays_for_an_answer_with_a_score(text):
    assert format_reward([answer(text)]) == [1.0]


def test_rank_reward_of_a_confidently_correct_order_is_exactly_one():
    # Before: sqrt(1 + 1e-6) + sqrt(1e-6) = 1.0010005 (the ε inside both square roots).
    out = rank_reward([answer("4"), answer("2")], mos=[5.0, 1.0], num_generations=1)
    assert out == [1.0, 1.0]
    out = rank_reward([answer("2"), answer("4")], mos=[5.0, 1.0], num_generations=1)
    assert out == [0.0, 0.0]


def test_fidelity_rank_rewards_stay_in_unit_interval():
    rng = np.random.default_rng(0)
    for group in (1, 2, 4):
        preds = rng.uniform(0.0, 6.0, size=(200, group))
        preds[rng.random(preds.shape) < 0.1] = np.nan
        mos = rng.choice([1.0, 2.0, 3.0, 3.0, 4.5], size=200)  # ties included
        out = fidelity_rank_rewards(preds, mos)
        finite = out[np.isfinite(out)]
        assert finite.size > 0 and finite.min() >= 0.0 and finite.max() <= 1.0
    # Equal predictions of tied videos: p = 0.5 and g = 0.5, the tie's best reward, exactly 1.
    assert fidelity_rank_rewards(np.full((2, 3), 3.0), np.array([2.0, 2.0])).tolist() == [[1.0] * 3] * 2


@pytest.mark.parametrize(
    ("func", "kwargs"),
    [
        (format_reward, {}),
        (regression_reward, {"mos": [3.0]}),
        (rank_reward, {"mos": [3.0], "num_generations": 1}),
    ],
)
def test_a_single_string_instead_of_a_list_is_a_type_error(func, kwargs):
    with pytest.raises(TypeError, match=rf"{func.__name__} takes a list of completions.*pass \[text\]"):
        func("<think>ok</think><answer>3.50</answer>", **kwargs)


@pytest.mark.parametrize("func", [regression_reward, rank_reward])
def test_a_missing_mos_names_its_row(func):
    kwargs = {"num_generations": 1} if func is rank_reward else {}
    completions = [answer("3.50"), answer("2.00"), answer("4.00")]
    with pytest.raises(TypeError, match=r"mos\[1\] is None: completion 1 has no MOS"):
        func(completions, mos=[3.0, None, 4.0], **kwargs)
    with pytest.raises(TypeError, match=r"mos\[0\] = 'good' is not a number \(completion 0\)"):
        func(completions, mos=["good", 2.0, 4.0], **kwargs)
    with pytest.raises(ValueError, match=r"mos\[2\] = nan is not finite \(completion 2\)"):
        func(completions, mos=[3.0, 2.0, math.nan], **kwargs)
    with pytest.raises(TypeError, match="mos must be a list of numbers"):
        func(completions[:1], mos="3", **kwargs)


def test_mos_given_as_numeric_strings_or_numpy_values_still_works():
    assert regression_reward([answer("3.50")], mos=["3.5"]) == [1.0]
    assert regression_reward([answer("3.50")], mos=np.array([3.5])) == [1.0]


def test_precision_penalty_as_the_readme_states():
    # "3.5" earns 0.8 of "3.50": the number as written has one decimal, fewer than min_decimals = 2.
    coarse, fine = regression_reward([answer("3.5"), answer("3.50")], mos=[3.2, 3.2])
    assert coarse == pytest.approx(0.8 * fine, rel=1e-12)
    assert fine == pytest.approx(math.exp(-(0.3**2) / (2 * 0.5**2)), rel=1e-12)
