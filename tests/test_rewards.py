"""Exact, hand-computed values of the reward functions (vqathinker.rewards) and their docstring examples."""

import doctest
import functools
import math
import pickle

import numpy as np
import pytest
from trl.trainer.utils import get_callable_name

from vqathinker import rewards
from vqathinker.rewards import (
    REWARDS,
    fidelity_rank_rewards,
    format_reward,
    get_reward_funcs,
    parse_score,
    rank_reward,
    regression_reward,
    temporal_consistency_bonus,
)

EPS = 1e-6


def phi(x: float) -> float:
    """Standard normal CDF, written independently of scipy."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def fidelity(p: float, g: float) -> float:
    return math.sqrt(p * g) + math.sqrt((1.0 - p) * (1.0 - g))


def answer(text: str) -> str:
    return f"<think>looks fine</think><answer>{text}</answer>"


def as_messages(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


# ---------------------------------------------------------------- parse_score


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.52", 3.52),
        ("4.", 4.0),
        (".5", 0.5),
        ("-2", -2.0),
        ("\u22122.5", -2.5),  # Unicode minus sign
        ("+3.50", 3.5),
        ("-.5", -0.5),
        ("1e1", 10.0),
        ("2.5E-1", 0.25),
        ("7.5", 7.5),  # out of range: kept as written
        ("Score: 3/5", 3.0),
        ("3, 5", 3.0),  # a list: first number
        ("3-4", 3.0),
        ("x264 at 3.5", 264.0),  # first number, even inside a word
        ("4..", 4.0),
        ("2e", 2.0),
        ("  4.25 \n", 4.25),
        ("3,5", None),  # decimal comma: ambiguous
        ("1,000", None),  # thousands separator: ambiguous
        ("1.2.3", None),
        ("4..5", None),
        ("1e999", None),  # overflows to inf
        ("good", None),
        ("", None),
        ("\u0663", None),  # Arabic-Indic digit three: ASCII digits only
        # A leading-dot number never continues another token (neither 0.5 nor 5 is read):
        ("\u0663.5", None),  # Arabic-Indic three point five
        ("v.5", None),
        ("e\u0301.5", None),  # a letter with a combining accent
        ("x_.5", None),
        ("v.5.3", None),
        ("a.12345", None),
        ("v.5e3 then 4", 4.0),  # the whole tail is skipped, the next number read
        ("v.5 then 3.25", 3.25),
        ("(.5)", 0.5),  # after punctuation or a space it is a number
        ("score .75", 0.75),
        ("v-.5", -0.5),  # a sign starts a new token
    ],
)
def test_parse_score_numbers(text, expected):
    assert parse_score(f"<answer>{text}</answer>") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>2</answer> then <answer>4.5</answer>", 4.5),  # last block
        ("<answer>2</answer> then <answer>none</answer>", None),  # last block has no number
        ("<answer>3.5", None),  # not closed
        ("3.5", None),  # no answer block
        ("<Answer>3.5</Answer>", None),  # tags are case-sensitive
        ("<think>I'd say 2</think><answer>\n4.10\n</answer>", 4.1),
        ("<answer>a\nb 3.25</answer>", 3.25),  # dot matches newline
    ],
)
def test_parse_score_blocks(text, expected):
    assert parse_score(text) == expected


def test_parse_score_docstring_example():
    assert parse_score("<think>sharp, some noise</think><answer>Score: 3.75 / 5</answer>") == 3.75
    assert parse_score("<answer>2</answer> <answer>.5</answer>") == 0.5
    assert parse_score("<answer>3,5</answer>") is None


def test_parse_score_is_deterministic():
    assert {parse_score("<answer>no number</answer>") for _ in range(20)} == {None}


# ---------------------------------------------------------------- format_reward


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think><answer>3.5</answer>", 1.0),
        ("  \n<think>a</think>\n\n<answer>3</answer>\n ", 1.0),  # whitespace around and between
        ("<think>line 1\nline 2</think><answer>\n3.50\n</answer>", 1.0),
        ("<think></think><answer>2</answer>", 1.0),  # the thinking is not judged
        ("<think>a</think><answer></answer>", 0.0),  # the answer must hold a score
        ("<think>a</think><answer>1</answer><think>a</think><answer>1</answer>", 0.0),  # repeated pair
        ("<think>a</think><answer>1</answer><answer>2</answer>", 0.0),  # second answer
        ("<think>a</think><think>b</think><answer>1</answer>", 0.0),  # second think
        ("<think><think>a</think></think><answer>1</answer>", 0.0),  # nested
        ("<think>a</think><answer>3</answer> done", 0.0),  # text after </answer>
        ("Sure. <think>a</think><answer>3</answer>", 0.0),  # text before <think>
        ("<think>a</think> so <answer>3</answer>", 0.0),  # text between the blocks
        ("<answer>3</answer><think>a</think>", 0.0),  # wrong order
        ("<answer>3</answer>", 0.0),
        ("<think>a</think><answer>3", 0.0),
        ("<think>a<answer>3</answer></think>", 0.0),
        ("", 0.0),
    ],
)
def test_format_reward_cases(text, expected):
    assert format_reward([text]) == [expected]
    assert format_reward([as_messages(text)]) == [expected]


def test_format_reward_docstring_example():
    completions = [
        "<think>blurry</think>\n<answer>2.10</answer>",
        as_messages("<think>a</think><answer>1</answer><answer>2</answer>"),
        "<think>a</think><answer>3</answer> done",
        "<think>a</think><answer>3,5</answer>",
    ]
    assert format_reward(completions) == [1.0, 0.0, 0.0, 0.0]


def test_completion_text_rejects_non_string_content():
    with pytest.raises(TypeError, match="content"):
        format_reward([[{"role": "assistant", "content": [{"type": "text", "text": "x"}]}]])


# ---------------------------------------------------------------- regression_reward


def test_regression_reward_docstring_example():
    completions = [
        "<think>x</think><answer>3.5</answer>",
        "<answer>3.50</answer>",
        "<answer>3.25</answer>",
        "<answer>good</answer>",
    ]
    out = regression_reward(completions, mos=[3.2] * 4)
    gauss = math.exp(-(0.3**2) / (2 * 0.5**2))
    assert out == pytest.approx([0.8 * gauss, gauss, math.exp(-(0.05**2) / 0.5), 0.0], abs=1e-12)
    assert [round(r, 4) for r in out] == [0.6682, 0.8353, 0.995, 0.0]


@pytest.mark.parametrize(
    ("text", "mos", "expected"),
    [
        ("3.20", 3.2, 1.0),
        ("3.2", 3.2, 0.8),  # one decimal
        ("4.", 4.0, 0.8),  # zero decimals written
        ("4", 4.0, 0.8),
        (".55", 0.55, 1.0),  # two decimals after a leading point
        ("4.125", 4.0, math.exp(-(0.125**2) / 0.5)),
        ("-1.00", 1.0, math.exp(-8.0)),  # negative: (−1 − 1)² / 0.5 = 8
        ("7.25", 5.0, math.exp(-(2.25**2) / 0.5)),  # out of range
        ("1e1", 5.0, 0.8 * math.exp(-50.0)),  # 10.0, no decimals written
        ("1e300", 5.0, 0.0),  # (1e300)² overflows to inf: exp(-inf) = 0, no error
        ("3,5", 3.5, 0.0),  # ambiguous: no score
        ("none", 3.0, 0.0),
    ],
)
def test_regression_reward_values(text, mos, expected):
    assert regression_reward([answer(text)], mos=[mos]) == pytest.approx([expected], abs=1e-15)


def test_regression_reward_parameters():
    completions = [answer("3.5"), answer("3.50")]
    assert regression_reward(completions, [3.2, 3.2], sigma=0.3) == pytest.approx(
        [0.8 * math.exp(-0.5), math.exp(-0.5)]
    )
    assert regression_reward(completions, [3.2, 3.2], precision_penalty=1.0) == pytest.approx(
        [math.exp(-0.18)] * 2
    )
    assert regression_reward(completions, [3.2, 3.2], min_decimals=3) == pytest.approx(
        [0.8 * math.exp(-0.18)] * 2
    )
    with pytest.raises(ValueError, match="sigma"):
        regression_reward(completions, [3.2, 3.2], sigma=0.0)
    with pytest.raises(ValueError, match="mos"):
        regression_reward(completions, [3.2])


def test_regression_reward_logs_through_trl_callbacks():
    metrics, extra = {}, {}
    out = regression_reward(
        [answer("3.50"), answer("n/a"), answer("2")],
        mos=[3.5, 3.0, 2.0],
        log_metric=lambda name, value: metrics.setdefault(name, value),
        log_extra=lambda column, values: extra.setdefault(column, values),
    )
    assert out == pytest.approx([1.0, 0.0, 0.8])
    assert metrics == {"score/parsed_fraction": pytest.approx(2 / 3)}
    assert extra == {"score": [3.5, None, 2.0]}


# ---------------------------------------------------------------- fidelity_rank_rewards / rank_reward


def test_fidelity_docstring_example():
    out = fidelity_rank_rewards(np.array([[3.0, 4.0], [2.0, 2.0]]), np.array([4.0, 2.0]))
    denom = math.sqrt(0.5 + EPS)  # var_0 = ((3 − 3.5)² + (4 − 3.5)²) / 1 = 0.5, var_1 = 0
    expected = [
        [fidelity(phi(1.0 / denom), 1.0), fidelity(phi(2.0 / denom), 1.0)],
        [fidelity(phi(-1.5 / denom), 0.0)] * 2,
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert np.round(out, 5).tolist() == [[0.95987, 0.99883], [0.99149, 0.99149]]


def test_rank_reward_docstring_example():
    completions = ["<answer>3</answer>", "<answer>4</answer>", "<answer>2</answer>", "<answer>2.0</answer>"]
    out = rank_reward(completions, mos=[4, 4, 2, 2], num_generations=2)
    assert [round(r, 5) for r in out] == [0.95987, 0.99883, 0.99149, 0.99149]
    conversational = [as_messages(c) for c in completions]
    assert rank_reward(conversational, mos=[4, 4, 2, 2], num_generations=2) == out


def test_fidelity_tied_mos_g1():
    # G = 1: variances are 0, the denominator is sqrt(ε) = 1e-3, so p is 0 or 1; tie → g = 0.5.
    out = fidelity_rank_rewards(np.array([[3.0], [4.0]]), np.array([3.0, 3.0]))
    expected = math.sqrt(0.5)
    np.testing.assert_allclose(out, [[expected], [expected]], rtol=1e-12)
    assert expected == pytest.approx(0.707107, abs=1e-6)


def test_fidelity_g1_correct_and_wrong_order():
    # p = 1 with g = 1 (or p = 0 with g = 0): the best reward, 1; p = 0 with g = 1: the worst, 0.
    assert fidelity_rank_rewards([[4.0], [2.0]], [5.0, 1.0]).tolist() == [[1.0], [1.0]]
    assert fidelity_rank_rewards([[2.0], [4.0]], [5.0, 1.0]).tolist() == [[0.0], [0.0]]


def test_fidelity_all_equal_predictions():
    # p = 0.5 everywhere. Video 0 (MOS 1) is worse than both others; videos 1 and 2 tie.
    out = fidelity_rank_rewards(np.full((3, 2), 3.0), np.array([1.0, 2.0, 2.0]))
    strict = fidelity(0.5, 0.0)  # = fidelity(0.5, 1.0) = sqrt(0.5)
    tie = fidelity(0.5, 0.5)  # = 2 sqrt(0.25) = 1
    expected = [[strict] * 2, [(strict + tie) / 2] * 2, [(strict + tie) / 2] * 2]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert (strict, tie) == (pytest.approx(0.707107, abs=1e-6), 1.0)


def test_fidelity_negative_and_out_of_range_predictions():
    preds = np.array([[-1.0, 1.0], [1.5, 2.5]])  # mean 0 / var 2, mean 2 / var 0.5
    out = fidelity_rank_rewards(preds, np.array([2.0, 4.0]))
    denom = math.sqrt(2.5 + EPS)
    expected = [
        [fidelity(phi((-1 - 2) / denom), 0.0), fidelity(phi((1 - 2) / denom), 0.0)],
        [fidelity(phi(1.5 / denom), 1.0), fidelity(phi(2.5 / denom), 1.0)],
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    # Huge values are clipped to ±1e6 and stay finite.
    out = fidelity_rank_rewards(np.array([[1e308, -1e308], [1e300, 3.0]]), np.array([1.0, 2.0]))
    assert np.all(np.isfinite(out))


def test_rank_unparsed_rollouts_and_videos():
    completions = [answer("4"), "no answer", answer("2"), answer("2"), "x", answer("oops")]
    out = rank_reward(completions, mos=[4, 4, 2, 2, 3, 3], num_generations=2)
    best = 1.0  # video 0: mean 4, var 0 (one parsed); video 1: mean 2, var 0
    # Video 2 has no parsed prediction: its rollouts get 0 and it is nobody's peer.
    assert out == pytest.approx([best, 0.0, best, best, 0.0, 0.0], rel=1e-12)


def test_rank_single_video_is_nan_for_parsed_rollouts():
    out = rank_reward([answer("4.5"), "garbage"], mos=[4.0, 4.0], num_generations=2)
    assert math.isnan(out[0]) and out[1] == 0.0
    # Same when every other video is unparsed.
    out = fidelity_rank_rewards(np.array([[3.0], [np.nan]]), np.array([4.0, 2.0]))
    assert math.isnan(out[0, 0]) and out[1, 0] == 0.0


def test_rank_reward_input_checks():
    with pytest.raises(ValueError, match="num_generations"):
        rank_reward([answer("3")], mos=[3.0])
    with pytest.raises(ValueError, match="multiple"):
        rank_reward([answer("3")] * 3, mos=[3.0] * 3, num_generations=2)
    with pytest.raises(ValueError, match="grouped"):
        rank_reward([answer("3")] * 4, mos=[3.0, 4.0, 4.0, 4.0], num_generations=2)
    with pytest.raises(ValueError, match="finite"):
        rank_reward([answer("3")] * 2, mos=[float("nan")] * 2, num_generations=2)
    with pytest.raises(ValueError, match="n_videos"):
        fidelity_rank_rewards(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        fidelity_rank_rewards(np.zeros((2, 1)), np.array([1.0, np.nan]))
    assert rank_reward([], mos=[], num_generations=4) == []


def test_rank_reward_with_trl_kwargs():
    # The keyword arguments trl 1.16's GRPOTrainer._calculate_rewards passes, with two dataset columns.
    metrics = []
    kwargs = {
        "prompts": [[{"role": "user", "content": "q"}]] * 4,
        "completion_ids": [[1, 2]] * 4,
        "mos": [4.0, 4.0, 2.0, 2.0],
        "video": ["a.mp4", "a.mp4", "b.mp4", "b.mp4"],
        "trainer_state": None,
        "log_extra": lambda column, values: None,
        "log_metric": lambda name, value: metrics.append((name, value)),
    }
    completions = [as_messages(answer(s)) for s in ["3", "4", "2", "2"]]
    (rank,) = get_reward_funcs(["rank"], num_generations=2)
    assert [round(r, 5) for r in rank(completions=completions, **kwargs)] == [
        0.95987,
        0.99883,
        0.99149,
        0.99149,
    ]
    assert metrics == [("score/parsed_fraction", 1.0)]
    for func in get_reward_funcs(["format", "reg"]):
        assert len(func(completions=completions, **kwargs)) == 4


# ---------------------------------------------------------------- temporal_consistency_bonus


def test_temporal_docstring_example():
    out = temporal_consistency_bonus(
        {"rank": [0.9, 0.3, 0.6, 0.7]}, {"rank": [0.4, 0.5, 0.8, 0.8]}, num_generations=2
    )
    assert out.tolist() == [0.3, 0.0, 0.0, 0.0]


def test_temporal_selects_reward_by_name_not_position():
    true = {"format": [1.0, 1.0], "reg": [0.95, 0.85], "rank": [0.1, 0.2]}
    perturbed = {"rank": [0.9, 0.9], "regression": [0.5, 0.5], "format": [0.0, 0.0]}
    # reg: mean 0.9 >= 0.5, rollouts above 0.9 → [bonus, 0]; "reg" finds "regression".
    assert temporal_consistency_bonus(true, perturbed, num_generations=2, compare="reg").tolist() == [
        0.3,
        0.0,
    ]
    # rank: mean 0.15 < 0.9 → none.
    assert temporal_consistency_bonus(true, perturbed, num_generations=2).tolist() == [0.0, 0.0]
    # Function names as trl logs them work too; a custom threshold and bonus.
    out = temporal_consistency_bonus(
        {"regression_reward": [0.95, 0.85]},
        {"reg": [0.85]},
        num_generations=2,
        compare="regression",
        rollout_threshold=0.8,
        bonus=0.5,
    )
    assert out.tolist() == [0.5, 0.5]


def test_temporal_equal_means_nan_and_perturbed_rollout_count():
    # Equal means count as consistent (>=); G' = 1 perturbed rollout per video.
    out = temporal_consistency_bonus({"rank": [0.6, 0.4, 0.9, 0.9]}, {"rank": [0.5, 1.0]}, num_generations=2)
    assert out.tolist() == [0.3, 0.0, 0.0, 0.0]
    # A NaN among a video's rewards (rank without peers) gives that video no bonus.
    out = temporal_consistency_bonus(
        {"rank": [np.nan, 0.9, 0.9, 0.9]}, {"rank": [0.0] * 4}, num_generations=2
    )
    assert out.tolist() == [0.0, 0.0, 0.3, 0.3]
    assert temporal_consistency_bonus({"rank": []}, {"rank": []}, num_generations=2).shape == (0,)


def test_temporal_errors():
    with pytest.raises(ValueError, match="no 'rank' reward"):
        temporal_consistency_bonus({"reg": [1.0]}, {"reg": [1.0]}, num_generations=1)
    with pytest.raises(ValueError, match="rollout_threshold"):
        temporal_consistency_bonus({"format": [1.0]}, {"format": [1.0]}, num_generations=1, compare="format")
    with pytest.raises(ValueError, match="num_generations"):
        temporal_consistency_bonus({"rank": [1.0] * 3}, {"rank": [1.0] * 3}, num_generations=2)
    with pytest.raises(ValueError, match="perturbed"):
        temporal_consistency_bonus({"rank": [1.0] * 4}, {"rank": [1.0] * 3}, num_generations=2)


# ---------------------------------------------------------------- registry


def test_registry_names_and_aliases():
    assert set(REWARDS) == {"format", "reg", "regression", "rank", "choice", "consistency"}
    assert REWARDS["reg"].func is REWARDS["regression"].func is regression_reward
    funcs = get_reward_funcs(["rank", "reg", "format"])
    assert funcs == [rank_reward, regression_reward, format_reward]
    assert [get_callable_name(f) for f in funcs] == ["rank_reward", "regression_reward", "format_reward"]


def test_get_reward_funcs_binds_parameters_with_a_stable_name():
    reg, rank = get_reward_funcs(["regression", "rank"], {"regression": {"sigma": 0.3}}, num_generations=2)
    assert isinstance(reg, functools.partial)
    assert reg.__name__ == get_callable_name(reg) == "regression_reward"
    assert rank.__name__ == "rank_reward" and rank.keywords == {"num_generations": 2}
    assert reg([answer("3.50")], mos=[3.2]) == pytest.approx([math.exp(-0.5)])
    restored = pickle.loads(pickle.dumps(reg))
    assert restored.__name__ == "regression_reward" and restored.keywords == {"sigma": 0.3}
    # reward_kwargs wins over num_generations.
    (rank,) = get_reward_funcs(["rank"], {"rank": {"num_generations": 4, "eps": 1e-8}}, num_generations=2)
    assert rank.keywords == {"num_generations": 4, "eps": 1e-8}


def test_get_reward_funcs_errors():
    with pytest.raises(
        ValueError,
        match=r"unknown reward name\(s\) \['accuracy'\]; known: \['choice', 'consistency', 'format', 'rank'",
    ):
        get_reward_funcs(["format", "accuracy"])
    with pytest.raises(ValueError, match="unknown"):
        get_reward_funcs(["format"], {"fromat": {}})
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['sigmaa'\]; it takes \['sigma'"):
        get_reward_funcs(["reg"], {"reg": {"sigmaa": 0.3}})
    with pytest.raises(TypeError, match="list"):
        get_reward_funcs("rank")


def test_docstring_examples_hold():

    modules = [rewards.parsing, rewards.functions, rewards.registry, rewards.temporal]
    results = [doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE) for module in modules]
    assert sum(r.attempted for r in results) >= 10 and sum(r.failed for r in results) == 0
