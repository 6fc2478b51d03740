"""Reward functions for GRPO video-quality scoring, in trl 1.16's reward-function signature.

A completion is expected to look like ``<think> reasoning </think><answer> 3.52 </answer>`` (``<answer> B
</answer>`` for a multiple-choice question). Five rewards score it, and a sixth quantity (the
temporal-consistency bonus) is computed by the trainer from them:

- :func:`format_reward`: 1.0 when the completion is exactly one think block followed by one answer block
  whose answer :func:`parse_score` reads as a score.
- :func:`regression_reward`: a Gaussian of the distance between the predicted score and the MOS.
- :func:`rank_reward`: the fidelity reward of VisualQuality-R1; how well each rollout's score orders its
  video against every other video of the batch. The math is :func:`fidelity_rank_rewards`, a pure
  function over arrays that the trainer also calls on the batch gathered from all processes.
- :func:`choice_reward`: 1.0 when the answer picks the correct option of a multiple-choice question
  (:func:`parse_choice`).
- :func:`consistency_reward`: 1.0 when the reasoning names exactly the option the answer picks (words per
  option in ``reward_kwargs``; no label needed).
- :func:`temporal_consistency_bonus`: extra reward for rollouts whose video scored at least as well on its
  true frames as on temporally perturbed frames.

Rows of two tasks share a batch (the ``task`` column: ``score`` or ``choice``). A reward that does not apply
to a row gives None for it, which trl turns into NaN and leaves out of the weighted sum and of the logged
mean: the score rewards (reg, rank) apply to score rows, choice and consistency to choice rows, format to both (it then
checks the answer the row's task asks for). Without a ``task`` column, every row is of the reward's own
task (format: score).

Every reward function takes ``completions`` (strings, or trl's conversational form
``[{"role": "assistant", "content": str}]``) and the dataset columns as keyword arguments (``mos``, one value
per completion, as trl repeats the columns) and returns one float (or None) per completion. ``completions`` must be a list
(a single string is a TypeError, not one completion per character) and every ``mos`` a finite number (None, a
missing value, is a TypeError naming its row). Other keyword arguments that
trl passes (``prompts``, ``completion_ids``, ``trainer_state``, ...) are accepted and ignored, except
``log_metric`` / ``log_extra`` which are used to log how many answers held a score.

Use in a notebook::

    from vqathinker.rewards import format_reward, regression_reward, rank_reward
    regression_reward(["<think>ok</think><answer>3.25</answer>"], mos=[3.2])

and from a recipe: ``get_reward_funcs(["rank", "reg", "format"], {"reg": {"sigma": 0.3}})``.
"""

from __future__ import annotations

from vqathinker.rewards.functions import (
    choice_reward,
    consistency_reward,
    fidelity_rank_rewards,
    format_reward,
    rank_reward,
    regression_reward,
)
from vqathinker.rewards.parsing import (
    SCORE_PARSE_PARAMS,
    SCORE_PARSES,
    Completion,
    check_keywords,
    completion_text,
    named_option,
    named_options,
    parse_choice,
    parse_score,
    parse_scores,
    score_span,
    think_text,
)
from vqathinker.rewards.registry import REWARDS, RewardSpec, get_reward_funcs, reward_spec
from vqathinker.rewards.temporal import temporal_consistency_bonus

__all__ = [
    "REWARDS",
    "SCORE_PARSES",
    "SCORE_PARSE_PARAMS",
    "Completion",
    "RewardSpec",
    "check_keywords",
    "choice_reward",
    "completion_text",
    "consistency_reward",
    "fidelity_rank_rewards",
    "format_reward",
    "get_reward_funcs",
    "named_option",
    "named_options",
    "parse_choice",
    "parse_score",
    "parse_scores",
    "rank_reward",
    "regression_reward",
    "reward_spec",
    "score_span",
    "temporal_consistency_bonus",
    "think_text",
]
