"""The reward functions: format, regression (a Gaussian of the score error), rank (fidelity over the
batch), choice (the correct option of a multiple-choice question) and consistency (the reasoning names the
option the answer picks)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import norm

from vqathinker.rewards.parsing import (
    _FORMAT_RE,
    _FORMAT_TAGS,
    _LETTERS,
    _PRED_CLIP,
    Completion,
    _choice_options,
    _completion_texts,
    _fold,
    _log_parsed_fraction,
    _mos_values,
    _named_option,
    _task_rows,
    check_keywords,
    parse_choice,
    parse_score,
    parse_scores,
    think_text,
)


def format_reward(completions: Sequence[Completion], **kwargs: Any) -> list[float]:
    """1.0 when a completion is exactly ``<think>…</think><answer>score</answer>``, else 0.0; on a
    multiple-choice row (``task`` "choice"), the answer must pick an option (:func:`parse_choice`, given the
    row's ``options``) instead of holding a score.

    Formula: 1 if the text full-matches ``\\s*<think>.*?</think>\\s*<answer>.*?</answer>\\s*`` (dot matches
    newlines) AND each of the four tags occurs exactly once AND :func:`parse_score` reads a score from the
    answer; 0 otherwise. Whitespace around and between the blocks is tolerated; a second think or answer
    block, or any text after ``</answer>``, is not well formed (repeating the pair to the length limit earns
    nothing). An answer that holds no score (``"good"``, ``"3,5"``, ``"nan"``, ``"inf"``) earns nothing: the
    format is paid only when the score rewards can read the answer. Range: {0.0, 1.0}. When trl passes
    ``log_metric``, logs ``score/parsed_fraction`` (score answers that hold a score, well formed or not)
    and ``choice/parsed_fraction`` (choice answers that pick an option).

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
    task = kwargs.get("task")
    choice_rows = [False] * len(texts) if task is None else _task_rows(task, len(texts), "choice")
    options = _choice_options(kwargs.get("options"), choice_rows)
    rewards, scores, picks = [], [], []
    for text, is_choice, row_options in zip(texts, choice_rows, options, strict=True):
        well_formed = all(text.count(tag) == 1 for tag in _FORMAT_TAGS) and _FORMAT_RE.fullmatch(text)
        answer = parse_choice(text, row_options) if is_choice else parse_score(text)
        rewards.append(1.0 if well_formed and answer is not None else 0.0)
        (picks if is_choice else scores).append(answer)
    _log_parsed_fraction(scores, kwargs)
    _log_parsed_fraction(picks, kwargs, "choice")
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
) -> list[float | None]:
    """Gaussian closeness of the parsed score to the MOS, with a penalty for coarse answers.

    Formula: ``r = exp(-(pred - mos)² / (2σ²))``, multiplied by ``precision_penalty`` when the number as
    WRITTEN in the answer has fewer than ``min_decimals`` digits after the point ("3.50" is not penalised,
    "3.5", "4." and "4" are). No score (:func:`parse_score` is None) → 0.0. Range: [0, 1]. A multiple-choice
    row (``task`` "choice") gets None, whatever its ``mos``.

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
    rows = _task_rows(kwargs.get("task"), len(texts), "score")
    targets = _mos_values(mos, len(texts), rows)
    parsed = [
        answer if is_score else None
        for answer, is_score in zip(parse_scores(texts, parse=parse, seed=seed), rows, strict=True)
    ]
    rewards: list[float | None] = []
    for answer, target in zip(parsed, targets, strict=True):
        if target is None or answer is None:
            rewards.append(None if target is None else 0.0)
            continue
        pred, decimals = answer
        diff = pred - target
        reward = math.exp(-(diff * diff) / (2.0 * sigma * sigma))
        if decimals < min_decimals:
            reward *= precision_penalty
        rewards.append(reward)
    _log_parsed_fraction([p for p, is_score in zip(parsed, rows, strict=True) if is_score], kwargs)
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
) -> list[float | None]:
    """Fidelity ranking reward of each completion against the other videos of the same call.

    Only score rows are compared: a multiple-choice row (``task`` "choice") gets None and is nobody's peer.

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
    rows = _task_rows(kwargs.get("task"), len(texts), "score")
    targets = _mos_values(mos, len(texts), rows)
    if len(texts) % num_generations:
        raise ValueError(f"{len(texts)} completions is not a multiple of num_generations={num_generations}")
    if not texts:
        return []
    groups = np.asarray(rows).reshape(-1, num_generations)
    scores = [
        (None if answer is None else answer[0]) if is_score else None
        for answer, is_score in zip(parse_scores(texts, parse=parse, seed=seed), rows, strict=True)
    ]
    preds = np.array([np.nan if s is None else s for s in scores], dtype=np.float64).reshape(groups.shape)
    grouped_mos = np.array([np.nan if t is None else t for t in targets], dtype=np.float64).reshape(
        groups.shape
    )
    mixed = groups.any(axis=1) & ~groups.all(axis=1)
    if np.any(mixed) or np.any(np.ptp(grouped_mos[groups[:, 0]], axis=1) > 0):
        raise ValueError(
            f"mos or task differs inside a group of {num_generations} consecutive completions: completions must "
            "be grouped by video as trl orders them"
        )
    rewards = np.full(groups.shape, np.nan)
    if groups[:, 0].any():
        score = groups[:, 0]
        rewards[score] = fidelity_rank_rewards(
            preds[score], grouped_mos[score, 0], eps=eps, peer_videos=peer_videos
        )
    _log_parsed_fraction([s for s, is_score in zip(scores, rows, strict=True) if is_score], kwargs)
    return [float(r) if is_score else None for r, is_score in zip(rewards.reshape(-1), rows, strict=True)]


def choice_reward(
    completions: Sequence[Completion],
    answer: Sequence[str | None],
    options: Sequence[Sequence[str]],
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when a completion picks the correct option of its multiple-choice question, else 0.0.

    The pick is :func:`parse_choice` of the completion (rules there) against the row's ``options``; it is
    correct when its letter is the row's ``answer`` (the dataset's letter of the correct option). An answer
    naming no option, or two, earns 0.0. A score row (``task`` "score") gets None. Range: {0.0, 1.0}. When trl
    passes ``log_metric`` / ``log_extra``, logs ``choice/parsed_fraction`` and a ``choice`` column (the
    picked letter).

    Example (options blurry, sharp; the answer is A):
        >>> answers = ["<answer>A</answer>", "<answer>(A) blurry</answer>", "<answer>sharp</answer>", "<answer>A or B</answer>"]
        >>> choice_reward(answers, answer=["A"] * 4, options=[["blurry", "sharp"]] * 4)
        [1.0, 1.0, 0.0, 0.0]
    """
    texts = _completion_texts(completions, "choice_reward")
    rows = _task_rows(kwargs.get("task"), len(texts), "choice")
    row_options = _choice_options(options, rows)
    if isinstance(answer, str | bytes) or len(answer) != len(texts):
        raise ValueError(f"answer must be a list of one letter per completion ({len(texts)}), got {answer!r}")
    picks: list[str | None] = []
    rewards: list[float | None] = []
    for row, (text, is_choice, choices) in enumerate(zip(texts, rows, row_options, strict=True)):
        letters = [_LETTERS[i] for i in range(len(choices))]
        if is_choice and answer[row] not in letters:
            raise ValueError(
                f"answer[{row}] = {answer[row]!r} is not one of the letters {letters} of its options"
            )
        index = parse_choice(text, choices) if is_choice else None
        picks.append(None if index is None else letters[index])
        rewards.append(float(picks[-1] == answer[row]) if is_choice else None)
    _log_parsed_fraction([p for p, is_choice in zip(picks, rows, strict=True) if is_choice], kwargs, "choice")
    if kwargs.get("log_extra") is not None:
        kwargs["log_extra"]("choice", picks)
    return rewards


def consistency_reward(
    completions: Sequence[Completion],
    options: Sequence[Sequence[str]],
    *,
    keywords: Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when a completion's reasoning names exactly the option its answer picks, else 0.0: the answer and
    its explanation agree. It needs no label (the correct option is never read), so it applies to real data.

    ``keywords`` maps an option's text (as written in the questions, compared case-insensitively, spaces and
    one final ``.`` ignored) to the words that name it in a reasoning text, e.g. ``{"too dark": ["dark",
    "underexposed"], "blurry": ["blur", "blurry"]}``; a recipe gives it in ``reward_kwargs`` (``{"consistency":
    {"keywords": {...}}}``; the demo fills it in from its defect vocabulary).

    Formula: ``named`` = the names of ``keywords`` with at least one of their words in the completion's
    reasoning (:func:`think_text`, the first think block; :func:`named_options` for the matching rules);
    ``pick`` = the option :func:`parse_choice` reads from the answer. ``r = 1`` if ``pick`` is not None and
    ``named == {pick's text}``, else 0: naming another option too, or none, or picking no option, earns 0.
    A score row (``task`` "score") and a multiple-choice row none of whose options is a name of ``keywords``
    (a question this vocabulary says nothing about) get None. Range: {0.0, 1.0}.

    Example (options too dark, blurry):
        >>> words = {"too dark": ["dark"], "blurry": ["blur", "blurry"]}
        >>> texts = ["<think>Too dark.</think><answer>A</answer>", "<think>Dark, blurry.</think><answer>A</answer>",
        ...          "<think>Blurry.</think><answer>A</answer>", "<think>Blur.</think><answer>blurry</answer>"]
        >>> consistency_reward(texts, options=[["too dark", "blurry"]] * 4, keywords=words)
        [1.0, 0.0, 0.0, 1.0]
    """
    if keywords is None:
        raise ValueError(
            'the consistency reward needs keywords: reward_kwargs {"consistency": {"keywords": {"option text": '
            '["word", ...], ...}}}'
        )
    folded = check_keywords(keywords)
    texts = _completion_texts(completions, "consistency_reward")
    rows = _task_rows(kwargs.get("task"), len(texts), "choice")
    row_options = _choice_options(options, rows)
    rewards: list[float | None] = []
    for text, is_choice, choices in zip(texts, rows, row_options, strict=True):
        if not is_choice or not any(_fold(option) in folded for option in choices):
            rewards.append(None)
            continue
        pick = parse_choice(text, choices)
        rewards.append(float(pick is not None and pick == _named_option(think_text(text), choices, folded)))
    return rewards
