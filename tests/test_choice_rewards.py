"""The choice reward and mixed batches: a reward that does not apply to a row gives None (NaN for trl), the
rank reward compares score rows only, the format reward takes a letter on a multiple-choice row. Rules are
pinned by examples; tests/test_rewards_fuzz.py-style properties run over arbitrary text."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqathinker.data.choices import label_index
from vqathinker.rewards import (
    REWARDS,
    choice_reward,
    fidelity_rank_rewards,
    format_reward,
    get_reward_funcs,
    parse_choice,
    parse_score,
    rank_reward,
    regression_reward,
    temporal_consistency_bonus,
)

OPTIONS = ["blurry", "sharp", "noisy"]
FUZZ = settings(max_examples=1000, deadline=None)


def answer(text: str) -> str:
    return f"<think>I looked.</think><answer>{text}</answer>"


# ---------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("text", "index"),
    [
        (answer("B"), 1),
        (answer(" B "), 1),
        (answer("B."), 1),
        (answer("B:"), 1),
        (answer("B)"), 1),
        (answer("(B)"), 1),
        (answer("B) sharp"), 1),
        (answer("(B) Sharp."), 1),
        (answer("B. sharp"), 1),
        (answer("\nB\n"), 1),
        (answer("sharp"), 1),
        (answer("SHARP"), 1),
        (answer(" sharp. "), 1),
        (answer("C"), 2),
        (answer("D"), None),  # no fourth option
        (answer("b"), None),  # letters are uppercase
        (answer("B or C"), None),  # two options
        (answer("B, C"), None),
        (answer("B\nC"), None),
        (answer("B. noisy"), None),  # the letter and the text disagree
        (answer("B) a sharp video"), None),
        (answer("The answer is B"), None),
        (answer("sharp or noisy"), None),
        (answer(""), None),
        ("B", None),  # no answer block
        ("<answer>B", None),
        (answer("A") + "<answer>C</answer>", 2),  # the last answer block counts
        (answer("A") + "<answer>maybe</answer>", None),
    ],
)
def test_parse_choice_rules(text, index):
    assert parse_choice(text, OPTIONS) == index


def test_option_text_shared_by_two_options_picks_neither():
    assert parse_choice(answer("same"), ["same", "Same", "other"]) is None
    assert parse_choice(answer("B"), ["same", "Same", "other"]) == 1


def test_choice_reward_pays_the_correct_option():
    texts = [answer("A"), answer("(A) blurry"), answer("Blurry"), answer("B"), answer("A or B"), "no tags"]
    metrics, extra = [], {}
    rewards = choice_reward(
        texts,
        answer=["A"] * 6,
        options=[OPTIONS] * 6,
        log_metric=lambda name, value: metrics.append((name, value)),
        log_extra=lambda name, values: extra.setdefault(name, values),
    )
    assert rewards == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert metrics == [("choice/parsed_fraction", 4 / 6)]
    assert extra == {"choice": ["A", "A", "A", "B", None, None]}
    # conversational completions, as trl passes them
    assert choice_reward(
        [[{"role": "assistant", "content": answer("C")}]], answer=["C"], options=[OPTIONS]
    ) == [1.0]


def test_choice_reward_errors():
    with pytest.raises(ValueError, match=r"answer\[0\] = 'D' is not one of the letters"):
        choice_reward([answer("A")], answer=["D"], options=[OPTIONS])
    with pytest.raises(ValueError, match=r"options\[0\] = \[\]: completion 0 is a multiple-choice row"):
        choice_reward([answer("A")], answer=["A"], options=[[]])
    with pytest.raises(ValueError, match="need an 'options' column"):
        format_reward([answer("A")], task=["choice"])
    with pytest.raises(ValueError, match="unknown task"):
        choice_reward([answer("A")], answer=["A"], options=[OPTIONS], task=["mcq"])
    with pytest.raises(TypeError, match="single str"):
        choice_reward(answer("A"), answer=["A"], options=[OPTIONS])


# ---------------------------------------------------------------- a mixed batch


def mixed_batch():
    """Two score videos (MOS 4 and 2) and two multiple-choice rows (answers A and C), G = 2, as trl passes
    the dataset columns: one value per completion."""
    texts = [answer("3.50"), answer("4.00"), answer("2.25"), answer("C")]  # a score video answered a letter
    texts += [answer("A"), answer("3.10"), answer("C"), answer("noisy")]  # a choice row answered a number
    columns = {
        "task": ["score"] * 4 + ["choice"] * 4,
        "mos": [4.0, 4.0, 2.0, 2.0, None, None, None, None],
        "answer": [None] * 4 + ["A", "A", "C", "C"],
        "options": [[]] * 4 + [OPTIONS] * 4,
    }
    return texts, columns


def test_each_reward_applies_to_its_own_rows():
    texts, columns = mixed_batch()
    assert format_reward(texts, **columns) == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    reg = regression_reward(texts, **columns)
    assert reg[4:] == [None] * 4 and reg[3] == 0.0 and all(0 < r <= 1 for r in reg[:3])
    assert reg[:4] == regression_reward(texts[:4], mos=columns["mos"][:4])  # as if the batch held them alone
    assert choice_reward(texts, **columns) == [None] * 4 + [1.0, 0.0, 1.0, 1.0]
    rank = rank_reward(texts, num_generations=2, **columns)
    assert rank[4:] == [None] * 4
    # the choice rows are nobody's peer: the score rows are compared with each other only
    expected = fidelity_rank_rewards(np.array([[3.5, 4.0], [2.25, np.nan]]), np.array([4.0, 2.0]))
    np.testing.assert_allclose(rank[:4], expected.reshape(-1))
    assert rank[:4] == rank_reward(texts[:4], mos=columns["mos"][:4], num_generations=2)


def test_parsed_fractions_count_their_own_rows():
    texts, columns = mixed_batch()
    for func, name, value in ((regression_reward, "score", 3 / 4), (choice_reward, "choice", 3 / 4)):
        metrics = []
        func(texts, **columns, log_metric=lambda n, v, metrics=metrics: metrics.append((n, v)))
        assert metrics == [(f"{name}/parsed_fraction", value)]


def test_a_batch_without_score_rows_or_without_a_task_column():
    texts, columns = mixed_batch()
    choice_only = {key: values[4:] for key, values in columns.items()}
    assert rank_reward(texts[4:], num_generations=2, **choice_only) == [None] * 4
    assert regression_reward(texts[4:], **choice_only) == [None] * 4
    # no task column: every row is of the reward's own task (format: score)
    assert choice_reward(texts[4:], answer=columns["answer"][4:], options=columns["options"][4:]) == [
        1,
        0,
        1,
        1,
    ]
    assert format_reward(texts[4:]) == [0.0, 1.0, 0.0, 0.0]
    with pytest.raises(TypeError, match=r"mos\[0\] is None"):
        regression_reward(texts[4:], mos=[None] * 4)


def test_rank_refuses_a_group_of_two_tasks():
    texts, columns = mixed_batch()
    columns["task"][3] = "choice"
    with pytest.raises(ValueError, match="mos or task differs inside a group"):
        rank_reward(texts, num_generations=2, **columns)


def test_temporal_bonus_skips_rows_a_reward_does_not_apply_to():
    nan = math.nan  # trl's value for None
    true = {"choice": [1.0, 1.0, nan, nan, 1.0, 0.0]}
    perturbed = {"choice": [0.0, 0.0, nan, nan, 1.0, 1.0]}
    bonus = temporal_consistency_bonus(true, perturbed, num_generations=2, compare="choice", bonus=0.3)
    assert bonus.tolist() == [0.3, 0.3, 0.0, 0.0, 0.0, 0.0]  # default threshold of choice: 0.5


def test_registry_entry():
    spec = REWARDS["choice"]
    assert spec.func is choice_reward and spec.batch_rewards is None and spec.temporal_threshold == 0.5
    assert get_reward_funcs(["rank", "reg", "choice", "format"], num_generations=2)[2] is choice_reward


# ---------------------------------------------------------------- fuzz

FRAGMENTS = [
    "<answer>",
    "</answer>",
    "<think>",
    "</think>",
    "A",
    "B",
    "(",
    ")",
    ".",
    ":",
    " ",
    "\n",
    "or",
    ",",
]
labels = st.one_of(
    st.text(max_size=12),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS[4:]), st.sampled_from(OPTIONS)), max_size=5).map("".join),
    st.builds(
        "{}{} {}".format,
        st.sampled_from("ABCDab("),
        st.sampled_from(["", ".", ")", ":"]),
        st.text(max_size=8),
    ),
)
option_lists = st.one_of(
    st.just(OPTIONS),
    st.lists(st.text(min_size=1, max_size=6).filter(str.strip), min_size=2, max_size=5),
)
texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=12).map("".join),
    labels.map(answer),
)


@FUZZ
@given(labels.filter(lambda label: "answer>" not in label), option_lists)
def test_answers_follow_the_rules_of_the_dataset_labels(label, options):
    """The reward reads an answer as the data layer reads a label (vqathinker.data.choices.label_index)."""
    assert parse_choice(answer(label), options) == label_index(label, options)


@FUZZ
@given(st.data())
def test_mixed_batches_never_raise_and_stay_in_range(data):
    group = data.draw(st.integers(1, 3))
    tasks = data.draw(st.lists(st.sampled_from(["score", "choice"]), min_size=1, max_size=4))
    options = [data.draw(option_lists) if task == "choice" else [] for task in tasks]
    mos = [data.draw(st.floats(1, 5)) if task == "score" else None for task in tasks]
    columns = {
        "task": [task for task in tasks for _ in range(group)],
        "mos": [value for value in mos for _ in range(group)],
        "options": [opts for opts in options for _ in range(group)],
    }
    answers = ["ABCDE"[data.draw(st.integers(0, len(opts) - 1))] if opts else None for opts in options]
    columns["answer"] = [letter for letter in answers for _ in range(group)]
    batch = data.draw(st.lists(texts, min_size=len(columns["task"]), max_size=len(columns["task"])))
    choice_rows = [task == "choice" for task in columns["task"]]
    picks = [parse_choice(text, opts) for text, opts in zip(batch, columns["options"], strict=True)]
    for k, reward in enumerate(format_reward(batch, **columns)):
        answered = picks[k] is not None if choice_rows[k] else parse_score(batch[k]) is not None
        assert reward in (0.0, 1.0) and (answered or reward == 0.0)
    for k, reward in enumerate(choice_reward(batch, **columns)):
        right = picks[k] is not None and "ABCDE"[picks[k]] == columns["answer"][k]
        assert reward == (float(right) if choice_rows[k] else None)
    for is_choice, reward in zip(choice_rows, regression_reward(batch, **columns), strict=True):
        assert reward is None if is_choice else 0.0 <= reward <= 1.0
    rank = rank_reward(batch, num_generations=group, **columns)
    score_only = [k for k, is_choice in enumerate(choice_rows) if not is_choice]
    alone = rank_reward(
        [batch[k] for k in score_only], [columns["mos"][k] for k in score_only], num_generations=group
    )
    assert [rank[k] for k in score_only] == pytest.approx(alone, nan_ok=True)
    assert all(rank[k] is None for k, is_choice in enumerate(choice_rows) if is_choice)
