"""The temporal-consistency bonus: extra reward for rollouts whose video scored at least as well on its true
frames as on temporally perturbed ones."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vqathinker.rewards.registry import _reward_func_named, reward_spec


def _lookup(rewards: Mapping[str, np.ndarray], name: str, which: str) -> np.ndarray:
    """``rewards[name]``, or the entry under another name of the same reward function."""
    if name in rewards:
        return np.asarray(rewards[name], dtype=np.float64)
    func = _reward_func_named(name)
    for key, values in rewards.items():
        if func is not None and _reward_func_named(key) is func:
            return np.asarray(values, dtype=np.float64)
    raise ValueError(f"no {name!r} reward in the {which} rewards (have {sorted(rewards)})")


def temporal_consistency_bonus(
    true_rewards: Mapping[str, np.ndarray],
    perturbed_rewards: Mapping[str, np.ndarray],
    *,
    num_generations: int,
    compare: str = "rank",
    rollout_threshold: float | None = None,
    bonus: float = 0.3,
) -> np.ndarray:
    """Bonus per rollout for videos scored at least as well on true frames as on perturbed frames.

    Rewards are looked up by NAME, never by position: the dict keys may be :data:`~vqathinker.rewards.REWARDS` keys ("rank",
    "reg", "regression") or function names ("rank_reward", as trl logs them); names of the same function
    find each other.
    ``true_rewards[compare]`` holds one value per rollout on the true frames, ``n_videos × G`` in trl's order
    (G = ``num_generations`` consecutive rollouts per video); ``perturbed_rewards[compare]`` holds the same
    reward for rollouts on the temporally perturbed frames, ``n_videos × G'`` in the same video order (G' may
    differ from G).

    Formula, per video i: the compared quantity is the mean of the reward over the video's rollouts. If
    ``mean_j true[i, j] >= mean_k perturbed[i, k]``, every rollout j of video i with
    ``true[i, j] > rollout_threshold`` gets ``bonus``; every other rollout gets 0. A NaN among a video's
    rewards (e.g. a rank reward without peers) makes its comparison false: no bonus. The reference compares
    batch means; per-video means reward each video for its own temporal sensitivity.

    Args:
        true_rewards, perturbed_rewards: reward name → per-rollout values.
        num_generations: G, rollouts per video in ``true_rewards``.
        compare: which reward to compare (a reward name as above, or any key present in both dicts).
        rollout_threshold: reward a rollout needs for the bonus; default 0.5 for "rank", 0.9 for "reg".
        bonus: value added (the caller adds it to the ``compare`` reward, where reward weights scale it).

    Returns:
        ``[n_videos × G]`` array of 0.0 or ``bonus``.

    Example (G = 2): video 0's mean rank reward 0.6 on true frames ≥ 0.45 perturbed, and only its first
    rollout is above 0.5; video 1 did better on perturbed frames:
        >>> temporal_consistency_bonus(
        ...     {"rank": [0.9, 0.3, 0.6, 0.7]}, {"rank": [0.4, 0.5, 0.8, 0.8]}, num_generations=2
        ... ).tolist()
        [0.3, 0.0, 0.0, 0.0]
    """
    if rollout_threshold is None:
        spec = reward_spec(compare)
        if spec is None or spec.temporal_threshold is None:
            raise ValueError(f"no default rollout_threshold for reward {compare!r}: pass one")
        rollout_threshold = spec.temporal_threshold
    true = _lookup(true_rewards, compare, "true")
    perturbed = _lookup(perturbed_rewards, compare, "perturbed")
    if num_generations < 1 or true.ndim != 1 or true.size % num_generations:
        raise ValueError(
            f"true rewards of shape {true.shape} are not n_videos x num_generations={num_generations}"
        )
    n_videos = true.size // num_generations
    if n_videos == 0:
        return np.zeros(0)
    if perturbed.ndim != 1 or perturbed.size == 0 or perturbed.size % n_videos:
        raise ValueError(f"perturbed rewards of shape {perturbed.shape} do not cover {n_videos} videos")
    true = true.reshape(n_videos, num_generations)
    consistent = true.mean(axis=1) >= perturbed.reshape(n_videos, -1).mean(axis=1)
    return np.where(consistent[:, None] & (true > rollout_threshold), float(bonus), 0.0).reshape(-1)
