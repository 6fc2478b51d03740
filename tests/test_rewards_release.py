"""The release's reading of answers and its rank peers, as reward parameters (parse, seed, peer_videos)."""

from __future__ import annotations

import numpy as np
import pytest

from vqathinker.rewards import (
    fidelity_rank_rewards,
    get_reward_funcs,
    parse_scores,
    rank_reward,
    regression_reward,
)
from vqathinker.rewards.release import fallback_generator, float_decimals, release_score


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>ok</think><answer>3.75</answer>", 3.75),
        ("<answer>3,5</answer>", 3.0),  # the release's regex stops at the comma
        ("<answer>x264 at 3.5</answer>", 264.0),
        ("<answer>1</answer><answer>2.5</answer>", 2.5),  # the last block
        ("no tags, a score of 4.25 and 3", 4.25),  # no block: the first number of the whole text
        ("<answer>-1.5</answer>", -1.5),
        ("<answer>1e3</answer>", 1.0),  # no exponents
    ],
)
def test_release_score_reads_as_the_release(text, expected):
    assert release_score(text) == expected


def test_release_fallback_is_a_seeded_integer_draw():
    draws = [release_score("<answer>excellent</answer>", seed=7) for _ in range(200)]
    assert set(draws) == {1.0, 2.0, 3.0, 4.0, 5.0}
    fallback_generator(8).seed(8)
    again = [release_score("no number at all", seed=8) for _ in range(20)]
    fallback_generator(8).seed(8)
    assert [release_score("nothing", seed=8) for _ in range(20)] == again  # same seed, same sequence


@pytest.mark.parametrize(
    ("value", "decimals"), [(3.5, 1), (3.50, 1), (4.0, 0), (3.25, 2), (1e16, 0), (3.125, 3)]
)
def test_float_decimals_counts_like_str_of_a_float(value, decimals):
    assert float_decimals(value) == decimals


def test_regression_with_the_release_parse_penalises_written_decimals_of_the_float():
    texts = ["<answer>3.50</answer>", "<answer>3.25</answer>", "3.50 without tags"]
    ours = regression_reward(texts, mos=[3.5, 3.25, 3.5])
    release = regression_reward(texts, mos=[3.5, 3.25, 3.5], parse="release")
    assert ours == pytest.approx([1.0, 1.0, 0.0])
    assert release == pytest.approx([0.8, 1.0, 0.8])  # "3.50" is 3.5: one decimal; the untagged text is read


def test_regression_release_fallback_is_always_scored():
    rewards = regression_reward(["<answer>great</answer>"] * 50, mos=[3.0] * 50, parse="release", seed=3)
    assert all(r > 0 for r in rewards)  # a random 1-5, never the 0 of an unparsed answer
    assert len(set(rewards)) > 1


def test_parse_scores_rejects_unknown_modes():
    with pytest.raises(ValueError, match="parse must be one of"):
        parse_scores(["<answer>3</answer>"], parse="first")


def test_peer_videos_compares_only_inside_blocks():
    rng = np.random.default_rng(0)
    preds, mos = rng.uniform(1, 5, (6, 4)), rng.uniform(1, 5, 6)
    blocks = fidelity_rank_rewards(preds, mos, peer_videos=2)
    for start in (0, 2, 4):
        expected = fidelity_rank_rewards(preds[start : start + 2], mos[start : start + 2])
        np.testing.assert_allclose(blocks[start : start + 2], expected)
    assert not np.allclose(blocks, fidelity_rank_rewards(preds, mos))
    odd = fidelity_rank_rewards(preds[:5], mos[:5], peer_videos=2)
    assert np.isnan(odd[4]).all()  # alone in the last block: no peer
    with pytest.raises(ValueError, match="peer_videos"):
        fidelity_rank_rewards(preds, mos, peer_videos=0)


def test_rank_reward_takes_the_release_options_from_a_recipe():
    (rank,) = get_reward_funcs(
        ["rank"], {"rank": {"peer_videos": 2, "parse": "release", "seed": 1}}, num_generations=2
    )
    texts = ["<answer>4.1</answer>", "4.4", "<answer>2</answer>", "<answer>2.2</answer>"] * 2
    mos = [4, 4, 2, 2, 2, 2, 4, 4]
    rewards = rank(texts, mos=mos)
    assert rewards == pytest.approx(
        rank_reward(texts, mos=mos, num_generations=2, peer_videos=2, parse="release")
    )
    assert min(rewards[:2]) > max(rewards[4:6])  # the first pair is ordered correctly, the second is not
    assert rank_reward(texts, mos=mos, num_generations=2)[1] == 0.0  # ours: no tags, no score
