"""Evaluation protocols: ours (``default``) and the VQAThinker release's (``release``).

=================  ==========================================  ==============================================
                   ``default``                                 ``release`` (the release's test code)
=================  ==========================================  ==============================================
frames             the checkpoint's (6)                        12, at the release's frame indices
prompt             the training prompt (the checkpoint's       its test prompt, without newlines
                   recorded style)                             (``prompt_style="release_test"``)
question of a      the checkpoint's recorded question (else    the release's default question
label without one  the release's default question)             (:data:`~vqathinker.data.prompts.QUALITY_QUESTION`)
score              first number of the LAST ``<answer>``       the FIRST ``<answer>`` block read whole as a
                   (:func:`vqathinker.rewards.parse_score`)    number, commas dropped (:func:`first_answer_score`)
unparsed answer    counted, left out of the metrics            scored 3.00, counted and reported beside
headline metric    SRCC, PLCC after the logistic fit           raw PLCC first
frame size         the checkpoint's tile (448 for InternVL3)   560 px (400 tokens per frame; the motion branch
                                                               sees the same 560 px frames)
=================  ==========================================  ==============================================

``--num_frames``, ``--frame_size`` and ``--question`` on the command line override the protocol's frames, frame
size and question.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vqathinker.data.prompts import QUALITY_QUESTION
from vqathinker.evaluation.metrics import compute_metrics
from vqathinker.rewards import parse_score

_FIRST_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)


def first_answer_score(text: str) -> float | None:
    """The release's test reading: the whole content of the FIRST ``<answer>`` block as a number.

    Commas are dropped first (``"3,5"`` → 35.0, as the release reads it); anything else that Python's
    ``float`` does not take (``"Score: 3.5"``), no answer block, or a non-finite value gives None.

    Example:
        >>> first_answer_score("<answer> 3.75 </answer><answer>2</answer>"), first_answer_score("<answer>3.5/5</answer>")
        (3.75, None)
    """
    match = _FIRST_ANSWER_RE.search(text)
    if match is None:
        return None
    try:
        value = float(match.group(1).strip().replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class EvalProtocol:
    """How ``vqathinker evaluate`` turns videos into scores and scores into metrics."""

    name: str
    num_frames: int | None
    """Frames per video; None: the checkpoint's setting."""
    prompt_style: str | None
    """:func:`vqathinker.data.prompts.build_conversation` style; None: the checkpoint's."""
    frame_sampling: str
    """:func:`vqathinker.data.video.load_frames` sampling."""
    parse: Callable[[str], float | None]
    fill: float | None
    """The score of an unparsed answer (counted beside the metrics); None: left out of the metrics."""
    frame_size: int | None = None
    """Frame (tile) side in pixels, for the vision tower and the motion branch; None: the checkpoint's."""
    question: str | None = None
    """Asked of videos whose labels carry no question; None: the checkpoint's."""

    def scored(self, preds: Sequence[float | None], mos: Sequence[float]) -> tuple[list[float], list[float]]:
        """The ``(preds, mos)`` that enter the metrics: unparsed answers (None) filled or left out."""
        pairs = [
            (self.fill if p is None else p, m)
            for p, m in zip(preds, mos, strict=True)
            if p is not None or self.fill is not None
        ]
        return [p for p, _ in pairs], [m for _, m in pairs]

    def metrics(self, preds: Sequence[float | None], mos: Sequence[float]) -> dict:
        """Metrics of ``preds`` (None where unparsed) against ``mos``, with ``unparsed`` and ``filled`` counts."""
        unparsed = sum(p is None for p in preds)
        return {
            **compute_metrics(*self.scored(preds, mos)),
            "unparsed": unparsed,
            "filled": unparsed if self.fill is not None else 0,
        }


PROTOCOLS = {
    "default": EvalProtocol("default", None, None, "centre", parse_score, None),
    "release": EvalProtocol(
        "release", 12, "release_test", "release", first_answer_score, 3.0, 560, QUALITY_QUESTION
    ),
}
"""The protocols by name (``vqathinker evaluate --protocol NAME``)."""


def release_table(summaries: dict[str, dict]) -> str:
    """Markdown table of the release protocol: raw PLCC first, then SRCC, and the answers scored 3.00."""
    lines = [
        "| Benchmark | PLCC (raw) | SRCC | PLCC (logistic) | KRCC | n | scored 3.00 (unparsed) | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries.items():
        cells = [s["plcc"], s["srcc"], s["plcc_logistic"], s["krcc"]]
        counts = [s["n"], s["unparsed"], s["failed_videos"]]  # every unparsed answer was scored 3.00
        lines.append("| " + " | ".join([name, *(_fmt(v) for v in cells), *map(str, counts)]) + " |")
    lines += [
        "",
        "Protocol 'release' (the VQAThinker release's test code): 12 frames, its test prompt, the first <answer> "
        "read as a number; an answer without one is scored 3.00 (counted in its column) and every video enters "
        "the metrics. PLCC (raw) is Pearson's r on the raw predictions, the number the release reports.",
    ]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"
