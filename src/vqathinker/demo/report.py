"""The demo's report: held-out metrics before and after GRPO, reward trends, timings, and its printout."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from vqathinker.demo.ladder import DEFECTS, LEARNABLE_DEFECTS

TARGET_MINUTES = 10.0
TARGET_SRCC = 0.8
"""Held-out SRCC after GRPO over the trained defects + pristine."""
TARGET_DEFECT_SRCC = 0.6
"""Held-out SRCC after GRPO of every trained defect (with the pristine videos)."""
TARGET_ACCURACY = 0.7
"""Multi-task demo: attribution accuracy on the held-out scenes after GRPO."""
TARGET_FAITHFULNESS = 0.6
"""Multi-task demo: the share of held-out answers whose reasoning names the true defect (and no other)."""


def best_constant_reward(mos: np.ndarray, sigma: float) -> float:
    """The mean regression reward of the best constant answer on ``mos``: the bar a model must beat."""
    grid = np.linspace(1.0, 5.0, 401)
    rewards = np.exp(-((grid[:, None] - mos[None, :]) ** 2) / (2 * sigma**2)).mean(axis=1)
    return float(rewards.max())


def regression_sigma(reward_kwargs: dict) -> float:
    """The regression reward's sigma in a recipe's ``reward_kwargs`` (0.5 unless set)."""
    return (reward_kwargs.get("reg") or reward_kwargs.get("regression") or {}).get("sigma", 0.5)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def reward_trend(log_history: list[dict], key: str) -> dict:
    """Mean of ``key`` over the first and the last fifth of the logged steps that have a value for it (trl logs
    None, or NaN, for a reward none of whose rows were in the logged steps: a task absent from them)."""
    values = [entry[key] for entry in log_history if _finite(entry.get(key))]
    if not values:
        return {"first": math.nan, "last": math.nan, "points": 0}
    window = max(1, len(values) // 5)
    return {
        "first": float(np.mean(values[:window])),
        "last": float(np.mean(values[-window:])),
        "points": len(values),
    }


def _before_after(before: dict, after: dict) -> dict:
    return {
        "srcc_before": before["srcc"],
        "srcc_after": after["srcc"],
        "plcc_before": before["plcc"],
        "plcc_after": after["plcc"],
    }


def build_report(
    before: dict,
    after: dict,
    *,
    defects: list[str],
    trained_defects: list[str],
    log_history: list[dict],
    reward_names: list[str],
    constant_reward: float,
    warm_start_losses: list[float],
    seconds: dict[str, float],
    minutes: float,
) -> dict:
    """The report's numbers from the held-out metrics (:func:`vqathinker.demo.scoring.ladder_metrics` plus
    ``parsed_fraction``) before and after GRPO and the trainer's log history."""
    overall = _before_after(before["overall"], after["overall"])
    return {
        **overall,
        "minutes": minutes,
        "trained_defects": trained_defects,
        "learnable": {
            "defects": list(LEARNABLE_DEFECTS),
            **_before_after(before["learnable"], after["learnable"]),
        },
        "per_defect": {
            defect: {
                "learnable": DEFECTS[defect].learnable,
                "trained": defect in trained_defects,
                **_before_after(before["per_defect"][defect], after["per_defect"][defect]),
                "n": after["per_defect"][defect]["n"],
            }
            for defect in defects
        },
        "parsed_fraction_before": before["parsed_fraction"],
        "parsed_fraction_after": after["parsed_fraction"],
        "grpo_steps": max((entry.get("step", 0) for entry in log_history), default=0),
        "reward_trend": {
            "total": reward_trend(log_history, "reward"),
            **{name: reward_trend(log_history, f"rewards/{name}/mean") for name in reward_names},
        },
        "constant_answer_reg_reward": constant_reward,
        "warm_start_loss": {"first": warm_start_losses[0], "last": warm_start_losses[-1]}
        if warm_start_losses
        else None,
        "seconds": seconds,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg": os.getloadavg(),
        },
    }


def summary_lines(report: dict) -> list[str]:
    """The measured numbers next to the demo's targets, then the one-line result."""
    reg = report["reward_trend"].get("reg") or report["reward_trend"]["total"]
    learnable = report["learnable"]
    lines = [
        f"\nheld-out videos of the trained defects ({', '.join(report['trained_defects'])}) + pristine:",
        f"  SRCC {report['srcc_before']:.3f} -> {report['srcc_after']:.3f}   (target after >= {TARGET_SRCC})",
        f"  PLCC {report['plcc_before']:.3f} -> {report['plcc_after']:.3f}",
        f"every learnable defect ({', '.join(learnable['defects'])}) + pristine: "
        f"SRCC {learnable['srcc_before']:.3f} -> {learnable['srcc_after']:.3f}",
    ]
    for defect, m in report["per_defect"].items():
        kind = ("global statistic" if m["learnable"] else "fine detail") + (
            f", trained: target >= {TARGET_DEFECT_SRCC}" if m["trained"] else ", never trained on"
        )
        lines.append(f"  {defect:9s} SRCC {m['srcc_before']:+.3f} -> {m['srcc_after']:+.3f}  ({kind})")
    if "attribution" in report:
        lines += attribution_lines(report["attribution"])
    lines += [
        f"regression reward {reg['first']:.3f} -> {reg['last']:.3f} over {report['grpo_steps']} GRPO steps "
        f"(constant answer earns {report['constant_answer_reg_reward']:.3f}; target: up and above it)",
        f"time {report['minutes']:.1f} min (target <= {TARGET_MINUTES:.0f} min on 2 CPU cores); {report['seconds']}",
        f"held-out SRCC before={report['srcc_before']:.3f} after={report['srcc_after']:.3f}",
    ]
    return lines


def attribution_lines(attribution: dict) -> list[str]:
    """The printout of the report's ``attribution`` entry: each figure before -> after, then per defect."""
    a = attribution
    each = "one greedy answer each" if not a.get("samples") else f"{a['samples']} sampled answers each"
    lines = [
        f"attribution, held-out scenes ({a['questions']} questions, {each}: {a['answers']} answers; chance "
        f"{a['chance']:.3f}):",
        f"  accuracy     {a['accuracy_before']:.3f} -> {a['accuracy_after']:.3f}   (target after >= "
        f"{TARGET_ACCURACY}; the answer picks the true defect)",
        f"  faithfulness {a['faithfulness_before']:.3f} -> {a['faithfulness_after']:.3f}   (target after >= "
        f"{TARGET_FAITHFULNESS}; the reasoning names the true defect and no other)",
        f"  consistency  {a['consistency_before']:.3f} -> {a['consistency_after']:.3f}   (the reasoning names the "
        "defect the answer picks)",
        f"  unparsed     {a['unparsed_before']} -> {a['unparsed_after']} answers",
    ]
    for defect, m in a["per_defect"].items():
        lines.append(
            f"  {defect:14s} accuracy {m['accuracy_before']:.2f} -> {m['accuracy_after']:.2f}, faithfulness "
            f"{m['faithfulness_before']:.2f} -> {m['faithfulness_after']:.2f}"
        )
    return lines
