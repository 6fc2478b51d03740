"""Held-out scoring of the demo: each video's score, then SRCC/PLCC overall and per defect.

A video's score is the mean of ``samples`` sampled answers (temperature as in training), or the greedy
answer when ``samples`` is 0. The mean of samples is the model's expected score: it is defined even for a
model that answers the same number greedily for every video (the warm-started one does; its greedy SRCC
is undefined), and it is the quantity GRPO moves. Unparsed answers are left out of the mean and counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from vqathinker.demo.ladder import LEARNABLE_DEFECTS, PRISTINE, LadderVideo
from vqathinker.evaluation.metrics import compute_metrics
from vqathinker.model.internvl import prepare_inputs
from vqathinker.rewards import parse_score


@torch.inference_mode()
def score_videos(
    model,
    processor,
    conversations: Sequence[list[dict]],
    frames: Sequence[Sequence[Image.Image]],
    *,
    samples: int = 8,
    temperature: float = 1.0,
    max_new_tokens: int = 24,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float]:
    """``(scores, parsed fraction)``: one score per video (NaN when no answer parsed) and the fraction of
    answers that held a score. ``progress`` is called with the number of videos of each finished batch."""
    was_training = model.training
    model.eval()
    tokenizer = processor.tokenizer
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    per_video = max(samples, 1)
    scores, parsed = [], 0
    for start in range(0, len(frames), batch_size):
        inputs = prepare_inputs(
            processor, conversations[start : start + batch_size], frames[start : start + batch_size]
        ).to(device)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        sampling = {"do_sample": True, "temperature": temperature} if samples else {"do_sample": False}
        output = model.generate(
            **inputs,
            **sampling,
            num_return_sequences=per_video,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        values = np.array([np.nan if (s := parse_score(t)) is None else s for t in texts]).reshape(
            -1, per_video
        )
        parsed += int(np.isfinite(values).sum())
        for row in values:
            kept = row[np.isfinite(row)]
            scores.append(float(kept.mean()) if kept.size else math.nan)
        if progress is not None:
            progress(len(values))
    model.train(was_training)
    return np.array(scores), parsed / (len(frames) * per_video)


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
