"""Trainer callbacks of vqathinker's commands."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


class GRPOProgress(TrainerCallback):
    """One progress bar for GRPO, with the latest logged rewards as its postfix (instead of a dict per log).

    A reward logged as None or NaN (none of its rows in the logged steps: a task absent from them in a mixed
    run) keeps its last shown value."""

    def __init__(self, reward_names: list[str]):
        self.keys = {"reward": "reward", **{f"rewards/{name}/mean": name for name in reward_names}}
        self.bar = None
        self.shown: dict[str, str] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(total=state.max_steps, desc="GRPO", unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        fresh = {label: f"{logs[key]:.3f}" for key, label in self.keys.items() if _finite(logs.get(key))}
        if fresh:
            self.shown.update(fresh)
            self.bar.set_postfix(self.shown)

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


ZERO_SPREAD = "frac_reward_zero_std"
"""trl's share of groups whose G rewards are all equal (their advantages, and so their loss, are 0)."""
PARSED = "score/parsed_fraction"
"""The share of answers that held a score (score rows), logged by vqathinker's rewards."""
CHOICE_PARSED = "choice/parsed_fraction"
"""The share of answers that picked an option (multiple-choice rows)."""


def parsed_share(logs: dict) -> float | None:
    """The share of answers the rewards could read, over the logged kinds of rows (None: none logged)."""
    values = [logs[key] for key in (PARSED, CHOICE_PARSED) if logs.get(key) is not None]
    return sum(values) / len(values) if values else None


HEALTH_FILE = "training_health.json"


def no_format_message(steps: int, warm_start_steps: int = 0) -> str:
    if warm_start_steps:
        cure = (
            f"the warm start ({warm_start_steps} steps) did not teach it: raise --warm_start_steps or "
            "--warm_start_learning_rate"
        )
    else:
        cure = (
            "teach it first with the warm start (--warm_start_steps 100, a supervised pass on the answer "
            "format) or start from a checkpoint that answers in format"
        )
    return (
        f"no answer held a score in the last {steps} step(s) ({PARSED} = 0): every reward is 0 and GRPO learns "
        "nothing. Likely cause: the model does not answer in the <think>...</think><answer>score</answer> "
        f"format; {cure}"
    )


def zero_spread_message(steps: int, parsed: float | None, temperature: float) -> str:
    held = "" if parsed is None else f"; {parsed:.0%} of the answers held a score"
    return (
        f"every group's rewards had zero spread in the last {steps} step(s) ({ZERO_SPREAD} = 1): the G "
        "rollouts of each video earned the same reward, so every advantage and the loss are 0. Likely cause: "
        f"the G answers of a video are identical (a collapsed policy, or a sampling temperature too low: "
        f"{temperature}) or the recipe's rewards cannot tell them apart (reward_funcs){held}"
    )


class TrainingHealth(TrainerCallback):
    """Warns when GRPO has no learning signal, and summarises the run's signal at the end.

    It reads what trl logs every ``logging_steps``: ``frac_reward_zero_std`` and ``score/parsed_fraction``
    (averaged over the steps since the last log, so a logged 1 or 0 holds for each of those steps). When no
    answer held a score for ``patience`` consecutive steps, it warns that the model does not answer in format
    (the warm start is the cure); otherwise, when every group's rewards had zero spread for ``patience`` steps,
    that advantages are 0. Each warning repeats every ``repeat_steps`` steps while the condition lasts, and is
    re-armed when the signal comes back. At the end, :func:`health_summary` of the logged history is logged
    and written to ``output_dir/training_health.json``.
    """

    def __init__(self, patience: int = 3, repeat_steps: int = 50):
        self.patience, self.repeat_steps = patience, repeat_steps
        self.streak = {"no_format": 0, "zero_spread": 0}
        self.warned_at: dict[str, int] = {}
        self.warnings: list[str] = []
        self.last_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_step = state.global_step  # a resumed run counts from its checkpoint

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or logs.get(ZERO_SPREAD) is None:
            return  # an evaluation or end-of-training log
        steps, self.last_step = state.global_step - self.last_step, state.global_step
        parsed = parsed_share(logs)
        self._count("no_format", parsed is not None and parsed <= 0.0, steps)
        self._count("zero_spread", logs[ZERO_SPREAD] >= 1.0 - 1e-6, steps)
        if self.patience <= 0:
            return
        if self.streak["no_format"] >= self.patience:
            message = no_format_message(self.streak["no_format"], getattr(args, "warm_start_steps", 0))
            self._warn("no_format", state.global_step, message)
        elif self.streak["zero_spread"] >= self.patience:
            message = zero_spread_message(self.streak["zero_spread"], parsed, args.temperature)
            self._warn("zero_spread", state.global_step, message)

    def _count(self, kind: str, holds: bool, steps: int) -> None:
        self.streak[kind] = self.streak[kind] + steps if holds else 0
        if not holds:
            self.warned_at.pop(kind, None)

    def _warn(self, kind: str, step: int, message: str) -> None:
        if kind in self.warned_at and step - self.warned_at[kind] < self.repeat_steps:
            return
        self.warned_at[kind] = step
        self.warnings.append(f"step {step}: {message}")
        logger.warning("step %d: %s", step, message)

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        summary = {**health_summary(state.log_history, state.global_step), "warnings": self.warnings}
        path = Path(args.output_dir) / HEALTH_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
        logger.info("training health (%s): %s", path, summary_line(summary))


def health_summary(log_history: list[dict], global_step: int) -> dict:
    """Learning signal of a run from its logged history (``trainer_state.json``'s ``log_history``).

    ``steps_without_signal``: steps whose every group had zero reward spread (no advantage, no gradient);
    ``parsed_fraction``: the share of answers that held a score, over the logged steps; ``rewards``: each
    reward's logged mean at the first and the last log that has one (in a mixed run, a reward whose task was
    absent from the logged steps is logged as None; None here when it never had a value).
    """
    logs = [entry for entry in log_history if entry.get(ZERO_SPREAD) is not None]
    without_signal, parsed, weights, previous = 0, 0.0, 0, 0
    for entry in logs:
        steps, previous = entry["step"] - previous, entry["step"]
        if entry[ZERO_SPREAD] >= 1.0 - 1e-6:
            without_signal += steps
        if parsed_share(entry) is not None:
            parsed, weights = parsed + parsed_share(entry) * steps, weights + steps
    names = list(
        dict.fromkeys(key[len("rewards/") : -len("/mean")] for e in logs for key in e if _is_reward(key))
    )
    values = {name: [e.get(f"rewards/{name}/mean") for e in logs] for name in names}
    values = {name: [v for v in vs if _finite(v)] or [None] for name, vs in values.items()}
    return {
        "steps": global_step,
        "logged_steps": previous,
        "steps_without_signal": without_signal,
        "parsed_fraction": round(parsed / weights, 4) if weights else None,
        "rewards": {name: {"first": vs[0], "last": vs[-1]} for name, vs in values.items()},
    }


def _is_reward(key: str) -> bool:
    return key.startswith("rewards/") and key.endswith("/mean")


def summary_line(summary: dict) -> str:
    """One line of :func:`health_summary`."""
    parsed = summary["parsed_fraction"]
    rewards = ", ".join(
        f"{name} {_number(value['first'])} -> {_number(value['last'])}"
        for name, value in summary["rewards"].items()
    )
    return (
        f"{summary['steps_without_signal']} of {summary['logged_steps']} logged steps without learning signal; "
        f"answers with a score: {'n/a' if parsed is None else f'{parsed:.0%}'}; rewards first -> last: "
        f"{rewards or 'none logged'}"
    )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
