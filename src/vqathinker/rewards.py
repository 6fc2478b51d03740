"""Reward functions for GRPO video-quality scoring, in trl 1.16's reward-function signature.

A completion is expected to look like ``<think> reasoning </think><answer> 3.52 </answer>``. Three rewards
score it, and a fourth quantity (the temporal-consistency bonus) is computed by the trainer from them:

- :func:`format_reward`: 1.0 when the completion is exactly one think block followed by one answer block
  whose answer :func:`parse_score` reads as a score.
- :func:`regression_reward`: a Gaussian of the distance between the predicted score and the MOS.
- :func:`rank_reward`: the fidelity reward of VisualQuality-R1; how well each rollout's score orders its
  video against every other video of the batch. The math is :func:`fidelity_rank_rewards`, a pure
  function over arrays that the trainer also calls on the batch gathered from all processes.
- :func:`temporal_consistency_bonus`: extra reward for rollouts whose video scored at least as well on its
  true frames as on temporally perturbed frames.

Every reward function takes ``completions`` (strings, or trl's conversational form
``[{"role": "assistant", "content": str}]``) and the dataset columns as keyword arguments (``mos``, one value
per completion, as trl repeats the columns) and returns one float per completion. ``completions`` must be a list
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

import functools
import inspect
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from vqathinker.rewards_release import float_decimals, release_score

Completion = str | Sequence[Mapping[str, Any]]

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# ASCII digits only; a sign is "+", "-" or the Unicode minus sign U+2212.
_NUMBER_RE = re.compile(
    r"[-+\u2212]?(?P<body>[0-9]+(?:\.(?P<frac>[0-9]*))?|\.(?P<lead_frac>[0-9]+))(?:[eE][-+]?[0-9]+)?"
)
# A number directly followed by "," or "." and a digit ("3,5", "1,000", "1.2.3") is ambiguous.
_AMBIGUOUS_TAIL_RE = re.compile(r"[.,][0-9]")
_FORMAT_RE = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)
_FORMAT_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
# Predictions are clipped to +-_PRED_CLIP inside the rank reward so that their mean and variance stay finite.
_PRED_CLIP = 1e6


def completion_text(completion: Completion) -> str:
    """The text of one completion: the string itself, or the ``content`` of the last message of a
    conversational completion (trl's ``[{"role": "assistant", "content": str}]``)."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    if not isinstance(content, str):
        raise TypeError(f"expected the completion's content to be a str, got {type(content).__name__}")
    return content


def _completion_texts(completions: Sequence[Completion], func: str) -> list[str]:
    """The texts of a batch of completions; a single string (which would be read one character per
    completion) is a TypeError."""
    if isinstance(completions, str | bytes):
        raise TypeError(
            f"{func} takes a list of completions, got a single {type(completions).__name__} "
            f"({completions[:40]!r}...): pass [text]"
        )
    return [completion_text(c) for c in completions]


def _mos_values(mos: Sequence[float], n_completions: int) -> list[float]:
    """``mos`` as floats, one per completion; None, a non-number or a non-finite value is an error naming
    its row (the completion's index in the batch)."""
    if isinstance(mos, str | bytes):
        raise TypeError(f"mos must be a list of numbers, one per completion, got the string {mos!r}")
    if len(mos) != n_completions:
        raise ValueError(f"got {n_completions} completions but {len(mos)} mos values")
    values = []
    for row, value in enumerate(mos):
        if value is None:
            raise TypeError(f"mos[{row}] is None: completion {row} has no MOS (its dataset row lacks 'mos')")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"mos[{row}] = {value!r} is not a number (completion {row})") from None
        if not math.isfinite(number):
            raise ValueError(f"mos[{row}] = {value!r} is not finite (completion {row})")
        values.append(number)
    return values


def _is_token_char(char: str) -> bool:
    """A letter, mark or digit of any script, or a connector such as ``_``: part of a word or number."""
    category = unicodedata.category(char)
    return category[0] in "LMN" or category == "Pc"


def _first_number(answer: str) -> re.Match[str] | None:
    """The first :data:`_NUMBER_RE` match of ``answer`` that does not continue another token.

    A leading-dot match right after a token character (``".5"`` in ``"v.5"`` or ``"\u0663.5"``) is the tail
    of that token: it is skipped whole, digits included, and the search goes on after it. (Every other
    match starts at a sign, at a digit run's first digit, or at a ``.`` after a non-token character.)
    """
    position = 0
    while (match := _NUMBER_RE.search(answer, position)) is not None:
        start = match.start("body")
        if not (match.group("lead_frac") and start > 0 and _is_token_char(answer[start - 1])):
            return match
        position = match.end()
    return None


def _parse_answer(text: str) -> tuple[float, int] | None:
    """(score, number of decimals written) of the last answer block, or None; see :func:`parse_score`."""
    answers = _ANSWER_RE.findall(text)
    if not answers:
        return None
    answer = answers[-1]
    match = _first_number(answer)
    if match is None or _AMBIGUOUS_TAIL_RE.match(answer, match.end()):
        return None
    value = float(match.group().replace("\u2212", "-"))
    if not math.isfinite(value):
        return None
    decimals = match.group("frac") if match.group("frac") is not None else match.group("lead_frac") or ""
    return value, len(decimals)


def parse_score(text: str) -> float | None:
    """The quality score a completion answers: the first number inside its LAST ``<answer>…</answer>`` block.

    Returns None (never a random or default value) when there is no closed answer block, when the block
    holds no number, when that number is ambiguous, or when it is not finite. Rules, in order:

    - Tags are case-sensitive. With several answer blocks the last one counts.
    - The first number of the block counts, wherever it stands (``"x264 at 3.5"`` → 264.0), but a
      leading-dot number never continues another token: a ``.`` right after a letter, mark or digit of any
      script (or ``_``) joins its digits to that token, so ``"v.5"`` and ``"\u0663.5"`` (an Arabic-Indic
      three) hold no number (neither 0.5 nor 5) and ``"v.5 then 3.25"`` → 3.25.
    - A number is an optional sign (``+``, ``-`` or the Unicode minus ``−``), ASCII digits with an optional
      ``.`` fraction, and an optional exponent: ``"4."`` → 4.0, ``".5"`` → 0.5, ``"-2"`` → -2.0,
      ``"1e1"`` → 10.0 (scientific notation is read as written; out-of-range values earn little reward).
    - Decimal commas are NOT read: ``"3,5"`` → None. It could mean 3.5, 3 and 5, or a thousands separator
      (``"1,000"``); guessing would reward or punish a value the model may not have meant, while None
      earns no score reward and is counted as unparsed in evaluation. The same holds for any first number
      directly followed by ``,`` or ``.`` and a digit (``"1.2.3"``). ``"3, 5"`` → 3.0 (first number).
    - Values are not clipped: ``"7.5"`` → 7.5, ``"-1"`` → -1.0. Overflow (``"1e999"``) → None.

    Example:
        >>> parse_score("<think>sharp, some noise</think><answer>Score: 3.75 / 5</answer>")
        3.75
        >>> parse_score("<answer>2</answer> <answer>.5</answer>"), parse_score("<answer>3,5</answer>")
        (0.5, None)
    """
    parsed = _parse_answer(text)
    return None if parsed is None else parsed[0]


SCORE_PARSES = ("answer", "release")
SCORE_PARSE_PARAMS = ("parse", "seed")
"""The reward parameters that choose how a score is read (:func:`parse_scores`)."""


def parse_scores(
    completions: Sequence[Completion], *, parse: str = "answer", seed: int = 0
) -> list[tuple[float, int] | None]:
    """``(score, decimals)`` of each completion, or None where it holds no score.

    ``parse`` ``"answer"`` (ours): :func:`parse_score`, decimals as written. ``"release"``: the release's
    reading (:func:`vqathinker.rewards_release.release_score`: never None, a random 1-5 from the generator of
    ``seed`` when there is no number), decimals of ``str(float)`` as the release counts them.
    """
    if parse == "release":
        return [
            (score, float_decimals(score))
            for score in (release_score(completion_text(c), seed) for c in completions)
        ]
    if parse != "answer":
        raise ValueError(f"parse must be one of {SCORE_PARSES}, got {parse!r}")
    return [_parse_answer(completion_text(c)) for c in completions]


def _log_parsed_fraction(parsed: Sequence[object], kwargs: Mapping[str, Any]) -> None:
    log_metric = kwargs.get("log_metric")
    if log_metric is not None and parsed:
        log_metric("score/parsed_fraction", sum(p is not None for p in parsed) / len(parsed))


def format_reward(completions: Sequence[Completion], **kwargs: Any) -> list[float]:
    """1.0 when a completion is exactly ``<think>…</think><answer>score</answer>``, else 0.0.

    Formula: 1 if the text full-matches ``\\s*<think>.*?</think>\\s*<answer>.*?</answer>\\s*`` (dot matches
    newlines) AND each of the four tags occurs exactly once AND :func:`parse_score` reads a score from the
    answer; 0 otherwise. Whitespace around and between the blocks is tolerated; a second think or answer
    block, or any text after ``</answer>``, is not well formed (repeating the pair to the length limit earns
    nothing). An answer that holds no score (``"good"``, ``"3,5"``, ``"nan"``, ``"inf"``) earns nothing: the
    format is paid only when the score rewards can read the answer. Range: {0.0, 1.0}. When trl passes
    ``log_metric``, logs ``score/parsed_fraction`` (answers that hold a score, well formed or not).

    Example:
        >>> format_reward([
        ...     "<think>blurry</think>\\n<answer>2.10</answer>",
        ...     [{"role": "assistant", "content": "<think>a</think><answer>1</answer><answer>2</answer>"}],
        ...     "<think>a</think><answer>3</answer> done",
        ...     "<think>a</think><answer>3,5</answer>",
        ... ])
        [1.0, 0.0, 0.0, 0.0]
    """
    texts = _completion_texts(completions, "format_reward")
    scores = [parse_score(text) for text in texts]
    rewards = []
    for text, score in zip(texts, scores, strict=True):
        well_formed = all(text.count(tag) == 1 for tag in _FORMAT_TAGS) and _FORMAT_RE.fullmatch(text)
        rewards.append(1.0 if well_formed and score is not None else 0.0)
    _log_parsed_fraction(scores, kwargs)
    return rewards


def regression_reward(
    completions: Sequence[Completion],
    mos: Sequence[float],
    *,
    sigma: float = 0.5,
    precision_penalty: float = 0.8,
    min_decimals: int = 2,
    parse: str = "answer",
    seed: int = 0,
    **kwargs: Any,
) -> list[float]:
    """Gaussian closeness of the parsed score to the MOS, with a penalty for coarse answers.

    Formula: ``r = exp(-(pred - mos)² / (2σ²))``, multiplied by ``precision_penalty`` when the number as
    WRITTEN in the answer has fewer than ``min_decimals`` digits after the point ("3.50" is not penalised,
    "3.5", "4." and "4" are). No score (:func:`parse_score` is None) → 0.0. Range: [0, 1].

    Args:
        completions: one per rollout (str or trl's conversational list).
        mos: the MOS of each completion's video (trl repeats dataset columns per completion).
        sigma: width σ of the Gaussian, in MOS units (> 0).
        precision_penalty: factor applied to answers with too few decimals (1.0 disables the penalty).
        min_decimals: decimals an answer needs to escape the penalty.
        parse, seed: how the score is read (:func:`parse_scores`); ``parse: release`` is the release's reading,
            whose decimals are those of ``str(float)``, so "3.50" is penalised.

    When trl passes ``log_metric`` / ``log_extra``, logs ``score/parsed_fraction`` and a ``score`` column.

    Example (MOS 3.2, σ 0.5):
        >>> completions = ["<think>x</think><answer>3.5</answer>", "<answer>3.50</answer>", "<answer>3.25</answer>"]
        >>> [round(r, 4) for r in regression_reward(completions + ["<answer>good</answer>"], mos=[3.2] * 4)]
        [0.6682, 0.8353, 0.995, 0.0]

        ``exp(-0.3² / 0.5) = 0.8353``, × 0.8 for the single decimal of "3.5" = 0.6682.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    texts = _completion_texts(completions, "regression_reward")
    targets = _mos_values(mos, len(texts))
    parsed = parse_scores(texts, parse=parse, seed=seed)
    rewards = []
    for answer, target in zip(parsed, targets, strict=True):
        if answer is None:
            rewards.append(0.0)
            continue
        pred, decimals = answer
        diff = pred - target
        reward = math.exp(-(diff * diff) / (2.0 * sigma * sigma))
        if decimals < min_decimals:
            reward *= precision_penalty
        rewards.append(reward)
    _log_parsed_fraction(parsed, kwargs)
    log_extra = kwargs.get("log_extra")
    if log_extra is not None:
        log_extra("score", [None if p is None else p[0] for p in parsed])
    return rewards


def fidelity_rank_rewards(
    preds: np.ndarray, mos: np.ndarray, *, eps: float = 1e-6, peer_videos: int | None = None
) -> np.ndarray:
    """Fidelity (ranking) reward of every rollout against every other video of the batch.

    ``preds[i, j]`` is rollout j's score for video i (NaN where it could not be parsed), shape
    ``[n_videos, G]``; ``mos[i]`` is video i's MOS, shape ``[n_videos]``. For rollout j of video i and every
    other video z that has at least one parsed prediction:

    - ``mean_z``, ``var_z``: mean and unbiased variance (ddof=1, as the reference's ``torch.var``) of
      video z's parsed predictions; the variance is 0 when a video has a single parsed prediction (G=1).
    - ``p = Φ((pred_ij − mean_z) / sqrt(var_i + var_z + ε))``, the probability that i is better than z.
    - ``g = 1`` if ``mos_i > mos_z``, ``0`` if ``mos_i < mos_z``, ``0.5`` on a tie.
    - ``r_ijz = sqrt(p·g) + sqrt((1 − p)(1 − g))``.

    ``r_ij`` is the mean of ``r_ijz`` over those z. An unparsed rollout gets 0.0 (the lowest reward). A
    parsed rollout whose video has no other video with a parsed prediction to compare with (a batch of one
    video, or every other video unparsed) gets NaN: there is no ranking signal, and trl drops NaN from the
    weighted reward sum and from the logged means. Predictions are clipped to ±1e6 first. Range of the finite
    values: [0, 1] (Cauchy–Schwarz: ``sqrt(pg) + sqrt((1−p)(1−g)) ≤ sqrt((p + 1 − p)(g + 1 − g)) = 1``);
    1 for a confidently correct order, 0 for a confidently wrong one, 0.707 for p = 0.5 against a strictly
    better or worse video, 1 for p = 0.5 against a video of equal MOS.

    ε appears only in the denominator, where it keeps p defined when both videos' predictions have no
    spread. VisualQuality-R1 also adds ε inside both square roots, a guard it inherits from the fidelity
    LOSS, whose gradient in p is infinite at ``pg = 0``; a reward is never differentiated, and those two
    ``+ ε`` only shifted the range to [2·sqrt(ε), 1 + 2·sqrt(ε)] (1.0010005 for a correct order at ε = 1e-6).

    Example (two videos, G = 2, ε = 1e-6): video 0 (MOS 4) is predicted 3 and 4, video 1 (MOS 2) twice 2.
    ``var_0 = 0.5``, ``var_1 = 0``; rollout (0, 0): ``p = Φ((3 − 2)/sqrt(0.5 + 1e-6)) = 0.92135``,
    ``r = sqrt(0.92135) = 0.95987``; video 1: ``p = Φ((2 − 3.5)/0.70711) = 0.01695``, g = 0,
    ``r = sqrt(0.98305) = 0.99149``:

        >>> r = fidelity_rank_rewards(np.array([[3.0, 4.0], [2.0, 2.0]]), np.array([4.0, 2.0]))
        >>> np.round(r, 5).tolist()
        [[0.95987, 0.99883], [0.99149, 0.99149]]

    ``peer_videos`` N compares each video only with the others of its block of N consecutive videos (the
    release: the 2 videos of one process's micro-batch; a last, shorter block keeps the rest); None compares
    it with the whole batch.
    """
    if peer_videos is not None:
        if peer_videos < 1:
            raise ValueError(f"peer_videos must be >= 1, got {peer_videos}")
        blocks = [slice(start, start + peer_videos) for start in range(0, len(preds), peer_videos)]
        return np.concatenate([fidelity_rank_rewards(preds[b], mos[b], eps=eps) for b in blocks], axis=0)
    preds = np.asarray(preds, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    if preds.ndim != 2 or mos.shape != (preds.shape[0],):
        raise ValueError(
            f"expected preds [n_videos, G] and mos [n_videos], got {preds.shape} and {mos.shape}"
        )
    if not np.all(np.isfinite(mos)):
        raise ValueError("mos must be finite")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    valid = ~np.isnan(preds)
    preds = np.clip(np.where(valid, preds, 0.0), -_PRED_CLIP, _PRED_CLIP)
    count = valid.sum(axis=1)
    mean = preds.sum(axis=1, where=valid) / np.maximum(count, 1)
    squares = ((preds - mean[:, None]) ** 2).sum(axis=1, where=valid)
    var = np.where(count > 1, squares / np.maximum(count - 1, 1), 0.0)

    x = (preds[:, :, None] - mean[None, None, :]) / np.sqrt(var[:, None, None] + var[None, None, :] + eps)
    p = norm.cdf(x)  # [i, j, z]
    g = (np.sign(mos[:, None] - mos[None, :]) + 1.0) / 2.0  # [i, z]
    fidelity = np.sqrt(p * g[:, None, :]) + np.sqrt((1.0 - p) * (1.0 - g[:, None, :]))
    peers = (count > 0)[None, :] & ~np.eye(len(mos), dtype=bool)  # [i, z]
    n_peers = peers.sum(axis=1)
    summed = (fidelity * peers[:, None, :]).sum(axis=2)
    rewards = np.where(n_peers[:, None] > 0, summed / np.maximum(n_peers, 1)[:, None], np.nan)
    return np.where(valid, rewards, 0.0)


def rank_reward(
    completions: Sequence[Completion],
    mos: Sequence[float],
    *,
    num_generations: int | None = None,
    eps: float = 1e-6,
    peer_videos: int | None = None,
    parse: str = "answer",
    seed: int = 0,
    **kwargs: Any,
) -> list[float]:
    """Fidelity ranking reward of each completion against the other videos of the same call.

    Completions come in trl's order: ``num_generations`` consecutive completions belong to one video (their
    ``mos`` values must be equal). Scores are parsed with :func:`parse_score` and scored by
    :func:`fidelity_rank_rewards` (formula, range and NaN rule there). trl calls reward functions per process;
    the trainer recomputes this reward over the batch gathered from all processes with
    :func:`fidelity_rank_rewards`, so that every video is compared with the whole global batch.

    Args:
        completions: ``n_videos × num_generations`` completions (str or trl's conversational list).
        mos: the MOS of each completion's video.
        num_generations: G, the rollouts per video (trl does not pass it: bind it, e.g. with
            ``get_reward_funcs(["rank"], num_generations=G)``).
        eps: ε of the fidelity formula (in its denominator).
        peer_videos: compare each video only within blocks of this many videos (None: the whole batch).
        parse, seed: how scores are read (:func:`parse_scores`).

    Example (G = 2; same numbers as :func:`fidelity_rank_rewards`):
        >>> completions = ["<answer>3</answer>", "<answer>4</answer>", "<answer>2</answer>", "<answer>2.0</answer>"]
        >>> [round(r, 5) for r in rank_reward(completions, mos=[4, 4, 2, 2], num_generations=2)]
        [0.95987, 0.99883, 0.99149, 0.99149]
    """
    if num_generations is None or num_generations < 1:
        raise ValueError(
            "rank_reward needs num_generations >= 1 (the rollouts per video), e.g. "
            "get_reward_funcs(['rank'], num_generations=G) or rank_reward(..., num_generations=G)"
        )
    texts = _completion_texts(completions, "rank_reward")
    targets = _mos_values(mos, len(texts))
    if len(texts) % num_generations:
        raise ValueError(f"{len(texts)} completions is not a multiple of num_generations={num_generations}")
    if not texts:
        return []
    scores = [None if p is None else p[0] for p in parse_scores(texts, parse=parse, seed=seed)]
    preds = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
    grouped_mos = np.asarray(targets, dtype=np.float64).reshape(-1, num_generations)
    if np.any(np.ptp(grouped_mos, axis=1) > 0):
        raise ValueError(
            f"mos differs inside a group of {num_generations} consecutive completions: completions must be "
            "grouped by video as trl orders them"
        )
    rewards = fidelity_rank_rewards(
        preds.reshape(-1, num_generations), grouped_mos[:, 0], eps=eps, peer_videos=peer_videos
    )
    _log_parsed_fraction(scores, kwargs)
    return rewards.reshape(-1).tolist()


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
}
"""The reward registry: names usable in recipes (``reward_funcs: [rank, reg, format]``); "regression" is an
alias of "reg". A new reward is a function and one entry here."""

REWARD_FUNCS: dict[str, Callable[..., list[float]]] = {name: spec.func for name, spec in REWARDS.items()}
"""Reward name → function, the registry without its metadata."""


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
        names: keys of :data:`REWARD_FUNCS`, e.g. ``["rank", "reg", "format"]``.
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
    unknown = [name for name in [*names, *reward_kwargs] if name not in REWARD_FUNCS]
    if unknown:
        raise ValueError(f"unknown reward name(s) {unknown}; known: {sorted(REWARD_FUNCS)}")
    funcs = []
    for name in names:
        func = REWARD_FUNCS[name]
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

    Rewards are looked up by NAME, never by position: the dict keys may be :data:`REWARD_FUNCS` keys ("rank",
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
