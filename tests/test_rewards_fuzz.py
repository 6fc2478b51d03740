"""Property tests of vqathinker.rewards: arbitrary (unicode) text and arrays never raise, and every value is
finite and inside the documented range; the rank reward agrees with a loop-by-loop implementation of
the VQAThinker release and rises when the predicted order agrees with the MOS order."""

import math
import statistics

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vqathinker.rewards import (
    fidelity_rank_rewards,
    format_reward,
    parse_score,
    rank_reward,
    regression_reward,
    temporal_consistency_bonus,
)

EPS = 1e-6
RANK_MAX = 1.0
FUZZ = settings(max_examples=1000, deadline=None)  # the fuzzing of each function
PROPERTY = settings(max_examples=200, deadline=None)  # further properties

# Pieces that reach every branch of the parser, mixed with arbitrary unicode text.
FRAGMENTS = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "3.5",
    "3.50",
    "4.",
    ".5",
    "3,5",
    "1e1",
    "1e999",
    "-2",
    "\u2212",
    "+",
    "e",
    ",",
    ".",
    " ",
    "\n",
    "\u0663",
    "v",
    "\u0663.5",
    "v.5",
]
numbers = st.one_of(
    st.sampled_from(["3.5", "3.50", "4.", ".5", "3,5", "1e1", "1e999", "-2", "\u22122.25", "7.5", "0"]),
    st.floats(allow_nan=False).map(repr),
    st.integers().map(str),
)
noise = st.one_of(st.just(""), st.sampled_from(FRAGMENTS), st.text(max_size=5))
# Close to the expected shape, with noise where a model could misbehave.
templated = st.builds(
    "{}<think>{}</think>{}<answer>{}{}</answer>{}".format,
    noise,
    st.text(max_size=10),
    noise,
    noise,
    numbers,
    noise,
)
texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=14).map("".join),
    templated,
)
completions = st.one_of(texts, texts.map(lambda t: [{"role": "assistant", "content": t}]))
mos_values = st.one_of(st.sampled_from([1.0, 2.5, 3.0, 5.0]), st.floats(1.0, 5.0))
pred_values = st.one_of(st.just(math.nan), st.floats(-10.0, 10.0), st.sampled_from([1.0, 3.0, 3.5]))


def phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))  # accurate in the lower tail (sqrt(p) magnifies p ~ 1e-17)


def reference_fidelity(preds: list[list[float]], mos: list[float]) -> list[list[float]]:
    """The fidelity reward written as plain loops over videos i, rollouts j and peers z."""
    parsed = [[x for x in row if not math.isnan(x)] for row in preds]
    means = [statistics.fmean(row) if row else math.nan for row in parsed]
    variances = [statistics.variance(row) if len(row) > 1 else 0.0 for row in parsed]
    out = []
    for i, row in enumerate(preds):
        peers = [z for z in range(len(preds)) if z != i and parsed[z]]
        rewards = []
        for pred in row:
            if math.isnan(pred):
                rewards.append(0.0)
            elif not peers:
                rewards.append(math.nan)
            else:
                total = 0.0
                for z in peers:
                    p = phi((pred - means[z]) / math.sqrt(variances[i] + variances[z] + EPS))
                    g = 1.0 if mos[i] > mos[z] else 0.0 if mos[i] < mos[z] else 0.5
                    total += math.sqrt(p * g) + math.sqrt((1 - p) * (1 - g))
                rewards.append(total / len(peers))
        out.append(rewards)
    return out


@st.composite
def pred_batches(draw, elements=pred_values):
    n_videos = draw(st.integers(1, 5))
    group = draw(st.integers(1, 4))
    preds = draw(
        st.lists(st.lists(elements, min_size=group, max_size=group), min_size=n_videos, max_size=n_videos)
    )
    mos = draw(st.lists(mos_values, min_size=n_videos, max_size=n_videos))
    return preds, mos


# ---------------------------------------------------------------- text rewards


@FUZZ
@given(st.data())
def test_text_rewards_total(data):
    """One batch of arbitrary completions through all four text functions (1000 batches each)."""
    n_videos = data.draw(st.integers(1, 3))
    group = data.draw(st.integers(1, 3))
    batch = data.draw(st.lists(completions, min_size=n_videos * group, max_size=n_videos * group))
    video_mos = data.draw(st.lists(mos_values, min_size=n_videos, max_size=n_videos))
    mos = [m for m in video_mos for _ in range(group)]
    sigma = data.draw(st.floats(0.01, 5.0))
    texts_ = [c if isinstance(c, str) else c[-1]["content"] for c in batch]

    scores = [parse_score(t) for t in texts_]
    for text, score in zip(texts_, scores, strict=True):
        assert score is None or (isinstance(score, float) and math.isfinite(score))
        if score is not None:
            assert "<answer>" in text and "</answer>" in text

    for score, reward in zip(scores, format_reward(batch), strict=True):
        assert reward in (0.0, 1.0) and (score is not None or reward == 0.0)
    assert format_reward([t + t for t in texts_]) == [0.0] * len(
        batch
    )  # a repeated pair is never well formed

    for score, reward in zip(scores, regression_reward(batch, mos, sigma=sigma), strict=True):
        assert math.isfinite(reward) and 0.0 <= reward <= 1.0
        assert score is not None or reward == 0.0

    videos_with_scores = {k // group for k, score in enumerate(scores) if score is not None}
    out = rank_reward(batch, mos=mos, num_generations=group)
    assert len(out) == len(batch)
    for k, reward in enumerate(out):
        if scores[k] is None:
            assert reward == 0.0
        elif videos_with_scores - {k // group}:
            assert math.isfinite(reward) and 0.0 <= reward <= RANK_MAX
        else:
            assert math.isnan(reward)


@PROPERTY
@given(st.floats(allow_nan=False, allow_infinity=False), st.text().filter(lambda t: "answer>" not in t))
def test_parse_score_reads_any_written_float(value, thinking):
    assert parse_score(f"<think>{thinking}</think><answer>{value!r}</answer>") == value


# A letter, mark or digit of any script (or a connector such as "_"), ASCII digits excepted (those form a number).
token_chars = st.characters(categories=("L", "M", "N", "Pc"), exclude_characters="0123456789")
# Anything else that can stand before a leading dot without forming a number or a tag with it.
separators = st.characters(
    codec="utf-8", exclude_categories=("L", "M", "N", "Pc", "Cs"), exclude_characters=".,+-\u2212<"
)
fractions = st.from_regex(r"[0-9]{1,8}", fullmatch=True)


@PROPERTY
@given(token_chars, fractions, st.sampled_from(["", "e3", "E-1"]))
def test_a_leading_dot_number_never_continues_a_token(char, digits, exponent):
    assert parse_score(f"<answer>{char}.{digits}{exponent}</answer>") is None
    assert parse_score(f"<answer>{char}.{digits}{exponent} or 4.5</answer>") == 4.5


@PROPERTY
@given(separators, fractions)
def test_a_leading_dot_number_after_a_separator_is_read(char, digits):
    assert parse_score(f"<answer>{char}.{digits}</answer>") == float(f"0.{digits}")


tag_free = st.text().filter(lambda t: "<think>" not in t and "</think>" not in t and "answer>" not in t)
spaces = st.text(alphabet=" \t\n", max_size=3)


@PROPERTY
@given(tag_free, tag_free, spaces, spaces, spaces)
def test_format_reward_accepts_one_pair_with_a_score(thinking, answer, before, between, after):
    text = f"{before}<think>{thinking}</think>{between}<answer>{answer}</answer>{after}"
    assert format_reward([text]) == [1.0 if parse_score(text) is not None else 0.0]


# ---------------------------------------------------------------- rank


@FUZZ
@given(pred_batches())
def test_fidelity_matches_loop_reference(batch):
    preds, mos = batch
    out = fidelity_rank_rewards(np.array(preds), np.array(mos))
    np.testing.assert_allclose(out, reference_fidelity(preds, mos), rtol=1e-9, atol=1e-9)
    finite = out[np.isfinite(out)]
    assert np.all((finite >= 0.0) & (finite <= RANK_MAX))


@PROPERTY
@given(
    pred_batches(st.one_of(st.just(math.nan), st.floats(-1e308, 1e308), st.sampled_from([1e6, -1e7, 0.0])))
)
def test_fidelity_extreme_predictions_stay_in_range(batch):
    preds, mos = batch
    out = fidelity_rank_rewards(np.array(preds), np.array(mos))
    finite = out[~np.isnan(out)]
    assert np.all((finite >= 0.0) & (finite <= RANK_MAX))


@st.composite
def ordered_batches(draw):
    """Distinct MOS values, their ranks, and per-rollout jitter smaller than half the gap between ranks."""
    mos = draw(st.lists(st.integers(20, 100), min_size=2, max_size=6, unique=True))
    group = draw(st.integers(1, 5))
    jitter = draw(
        st.lists(
            st.lists(st.floats(-0.3, 0.3), min_size=group, max_size=group),
            min_size=len(mos),
            max_size=len(mos),
        )
    )
    ranks = np.argsort(np.argsort(mos))
    return np.array(mos) / 20.0, ranks, np.array(jitter)


@PROPERTY
@given(ordered_batches())
def test_rank_reward_rises_when_predicted_order_agrees(batch):
    mos, ranks, jitter = batch
    agreeing = fidelity_rank_rewards(ranks[:, None] + jitter, mos)
    reversed_ = fidelity_rank_rewards((len(mos) - 1 - ranks)[:, None] + jitter, mos)
    half = math.sqrt(0.5)  # reward of p = 0.5 against a strictly better/worse video
    assert np.all(agreeing > half) and np.all(reversed_ < half)
    assert agreeing.mean() > reversed_.mean()


@PROPERTY
@given(st.data())
def test_rank_reward_orders_rollouts_of_the_best_and_worst_video(data):
    n_videos = data.draw(st.integers(2, 5))
    group = data.draw(st.integers(2, 6))
    preds = np.array(
        data.draw(
            st.lists(
                st.lists(st.floats(0.0, 6.0), min_size=group, max_size=group),
                min_size=n_videos,
                max_size=n_videos,
            )
        )
    )
    mos = np.array([5.0, *([3.0] * (n_videos - 2)), 1.0])  # video 0 strictly best, the last strictly worst
    out = fidelity_rank_rewards(preds, mos)
    for video, direction in ((0, 1.0), (n_videos - 1, -1.0)):
        order = np.argsort(direction * preds[video], kind="stable")
        assert np.all(np.diff(out[video][order]) >= -1e-12)


# ---------------------------------------------------------------- temporal consistency


@FUZZ
@given(st.data())
def test_temporal_bonus_matches_definition(data):
    n_videos = data.draw(st.integers(0, 4))
    group = data.draw(st.integers(1, 4))
    perturbed_group = data.draw(st.integers(1, 4))
    values = st.one_of(st.floats(-1.0, 3.0), st.just(math.nan))
    true = data.draw(st.lists(values, min_size=n_videos * group, max_size=n_videos * group))
    perturbed = data.draw(
        st.lists(values, min_size=n_videos * perturbed_group, max_size=n_videos * perturbed_group)
    )
    compare = data.draw(st.sampled_from(["rank", "reg", "regression", "rank_reward", "regression_reward"]))
    bonus = data.draw(st.floats(0.0, 1.0))
    out = temporal_consistency_bonus(
        {compare: true}, {compare: perturbed}, num_generations=group, compare=compare, bonus=bonus
    )
    threshold = 0.5 if compare.startswith("rank") else 0.9
    expected = []
    for i in range(n_videos):
        mine = true[i * group : (i + 1) * group]
        theirs = perturbed[i * perturbed_group : (i + 1) * perturbed_group]
        consistent = statistics.fmean(mine) >= statistics.fmean(theirs)  # False when either is NaN
        expected += [bonus if consistent and r > threshold else 0.0 for r in mine]
    assert out.shape == (n_videos * group,)
    assert out.tolist() == expected
