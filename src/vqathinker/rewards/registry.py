"""The reward registry: the names recipes use, what a trainer needs to know about each reward, and bound
parameters."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vqathinker.rewards.functions import (
    choice_reward,
    consistency_reward,
    fidelity_rank_rewards,
    format_reward,
    rank_reward,
    regression_reward,
)


@dataclass(frozen=True)
class RewardSpec:
    """A reward of the registry: its function and what a trainer needs to know about it.

    Attributes:
        func: the reward function (trl's signature, one float per completion).
        batch_rewards: for a reward that compares the videos of a batch with each other, the pure function
            over ``(preds [n_videos, G], mos [n_videos], **params)`` that gives every rollout's reward; a
            trainer recomputes the reward with it over the batch gathered from every process (each process
            alone sees only its own videos). None for a reward of each completion on its own.
        temporal_threshold: the reward a rollout needs for the temporal-consistency bonus when the recipe
            compares this reward and gives no threshold (None: the recipe must give one).
    """

    func: Callable[..., list[float]]
    batch_rewards: Callable[..., np.ndarray] | None = None
    temporal_threshold: float | None = None

    def batch_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of a reward's recipe parameters that :attr:`batch_rewards` takes."""
        accepted = _tunable_params(self.batch_rewards) if self.batch_rewards else []
        return {key: value for key, value in params.items() if key in accepted}


_REGRESSION = RewardSpec(regression_reward, temporal_threshold=0.9)
REWARDS: dict[str, RewardSpec] = {
    "format": RewardSpec(format_reward),
    "reg": _REGRESSION,
    "regression": _REGRESSION,
    "rank": RewardSpec(rank_reward, batch_rewards=fidelity_rank_rewards, temporal_threshold=0.5),
    "choice": RewardSpec(choice_reward, temporal_threshold=0.5),
    "consistency": RewardSpec(consistency_reward),
}
"""The reward registry: names usable in recipes (``reward_funcs: [rank, reg, format]``); "regression" is an
alias of "reg". A new reward is a function and one entry here."""


def _tunable_params(func: Callable[..., Any]) -> list[str]:
    """The keyword-only parameters of a reward function: what a recipe may set."""
    parameters = inspect.signature(func).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def get_reward_funcs(
    names: Sequence[str],
    reward_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    num_generations: int | None = None,
) -> list[Callable[..., list[float]]]:
    """Reward functions by name, in order, with optional parameters bound.

    Args:
        names: keys of :data:`REWARDS`, e.g. ``["rank", "reg", "format"]``.
        reward_kwargs: parameters per name as written in ``names``, e.g. ``{"reg": {"sigma": 0.3}}``; only the
            function's keyword-only parameters (``sigma``, ``precision_penalty``, ``min_decimals``, ``eps``,
            ``num_generations``) are accepted.
        num_generations: bound to every requested function that takes it (``rank``), unless
            ``reward_kwargs`` sets it.

    A function with bound parameters is a :func:`functools.partial` carrying the function's ``__name__``
    (trl logs ``rewards/<__name__>/mean``, e.g. ``rewards/regression_reward/mean``).

    Example:
        >>> [f.__name__ for f in get_reward_funcs(["rank", "reg", "format"], {"reg": {"sigma": 0.3}})]
        ['rank_reward', 'regression_reward', 'format_reward']
    """
    if isinstance(names, str):
        raise TypeError(f"names must be a list of reward names, got the string {names!r}")
    reward_kwargs = dict(reward_kwargs or {})
    unknown = [name for name in [*names, *reward_kwargs] if name not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward name(s) {unknown}; known: {sorted(REWARDS)}")
    funcs = []
    for name in names:
        func = REWARDS[name].func
        tunable = _tunable_params(func)
        kwargs = dict(reward_kwargs.get(name, {}))
        bad = sorted(set(kwargs) - set(tunable))
        if bad:
            raise ValueError(f"reward {name!r} has no parameter(s) {bad}; it takes {tunable}")
        if num_generations is not None and "num_generations" in tunable:
            kwargs.setdefault("num_generations", num_generations)
        funcs.append(functools.update_wrapper(functools.partial(func, **kwargs), func) if kwargs else func)
    return funcs


def reward_spec(name: str) -> RewardSpec | None:
    """The registry entry a name stands for: a :data:`REWARDS` key or a reward function's ``__name__``."""
    by_function_name = {spec.func.__name__: spec for spec in REWARDS.values()}
    return REWARDS.get(name, by_function_name.get(name))


def _reward_func_named(name: str) -> Callable[..., list[float]] | None:
    """The reward function a name stands for: a :data:`REWARDS` key or a function ``__name__``."""
    spec = reward_spec(name)
    return None if spec is None else spec.func
