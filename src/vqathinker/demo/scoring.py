"""The demo's held-out metrics: SRCC/PLCC of the ladder's scores overall, over the learnable defects, per defect;
and the sampled answers that the attribution figures (:mod:`vqathinker.demo.attribution`) are read from.

The scores come from :func:`vqathinker.evaluation.inference.score_videos` (the interquartile mean of sampled
answers: an estimate of the model's expected score that one stray answer does not move, defined even for a
model that answers one number greedily for every video, as the warm-started one does, and the quantity GRPO
moves).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from vqathinker.demo.ladder import LEARNABLE_DEFECTS, PRISTINE, LadderVideo
from vqathinker.evaluation.inference import generate_answers, score_videos
from vqathinker.evaluation.metrics import compute_metrics


def _metrics(scores: np.ndarray, mos: np.ndarray) -> dict:
    ok = np.isfinite(scores)
    result = compute_metrics(scores[ok], mos[ok]) if ok.sum() >= 2 else compute_metrics([], [])
    srcc, plcc = result["srcc"], result["plcc"]
    # A constant prediction has no correlation with anything: count it as 0, not as undefined.
    return {
        "srcc": 0.0 if math.isnan(srcc) else srcc,
        "plcc": 0.0 if math.isnan(plcc) else plcc,
        "n": int(ok.sum()),
        "unscored": int((~ok).sum()),
    }


def ladder_metrics(
    videos: Sequence[LadderVideo], scores: np.ndarray, overall_defects: Sequence[str] = LEARNABLE_DEFECTS
) -> dict:
    """``{"overall": ..., "learnable": ..., "per_defect": {defect: ...}}`` of ``scores`` against the MOS.

    ``overall`` is over the pristine videos and those of ``overall_defects`` (the demo passes the defects it
    trained on), ``learnable`` over the pristine videos and those of every learnable defect; each defect's
    entry is over that defect's videos and the pristine ones (its level 0). Each entry: ``srcc``, ``plcc``,
    ``n`` (videos scored) and ``unscored``; a constant prediction counts as correlation 0.
    """
    mos = np.array([v.mos for v in videos])
    defects = [v.defect for v in videos]

    def subset(keep: set[str]) -> dict:
        index = [i for i, d in enumerate(defects) if d in keep]
        return _metrics(scores[index], mos[index])

    per_defect = {d: subset({d, PRISTINE}) for d in dict.fromkeys(defects) if d != PRISTINE}
    return {
        "overall": subset(set(overall_defects) | {PRISTINE}),
        "learnable": subset(set(LEARNABLE_DEFECTS) | {PRISTINE}),
        "per_defect": per_defect,
    }


def heldout_metrics(
    model,
    processor,
    videos: Sequence[LadderVideo],
    frames,
    *,
    question: str,
    samples: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    overall_defects: Sequence[str],
    desc: str,
) -> dict:
    """The held-out videos' scores (interquartile mean of ``samples`` sampled answers) →
    :func:`ladder_metrics` plus ``parsed_fraction``, with a progress bar named ``desc``."""
    with tqdm(total=len(videos), desc=desc, unit="video") as bar:
        scores, parsed = score_videos(
            model,
            processor,
            frames,
            [question] * len(videos),
            samples=samples,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            progress=bar.update,
        )
    return {**ladder_metrics(videos, scores, overall_defects), "parsed_fraction": parsed}


def sampled_answers(
    model,
    processor,
    frames,
    questions: Sequence[str],
    *,
    samples: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    desc: str,
) -> list[list[str]]:
    """The answers to ``questions[i]`` about the video of ``frames[i]``: ``samples`` sampled at ``temperature``
    (one greedy answer when ``samples`` is 0), as :func:`heldout_metrics` samples them, with a progress bar
    named ``desc``."""
    answers: list[list[str]] = []
    with tqdm(total=len(frames), desc=desc, unit="video") as bar:
        for start in range(0, len(frames), batch_size):
            batch = slice(start, start + batch_size)
            answers += generate_answers(
                model,
                processor,
                frames[batch],
                questions[batch],
                max_new_tokens,
                samples=samples,
                temperature=temperature,
            )
            bar.update(len(frames[batch]))
    return answers
