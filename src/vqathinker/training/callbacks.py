"""Trainer callbacks of vqathinker's commands."""

from __future__ import annotations

from tqdm.auto import tqdm
from transformers import TrainerCallback


class GRPOProgress(TrainerCallback):
    """One progress bar for GRPO, with the latest logged rewards as its postfix (instead of a dict per log)."""

    def __init__(self, reward_names: list[str]):
        self.keys = {"reward": "reward", **{f"rewards/{name}/mean": name for name in reward_names}}
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(total=state.max_steps, desc="GRPO", unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        shown = {label: f"{logs[key]:.3f}" for key, label in self.keys.items() if key in (logs or {})}
        if shown:
            self.bar.set_postfix(shown)

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()
