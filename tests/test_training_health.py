"""Training health: a batch in which the rank reward can never compare two videos is refused, a run without
learning signal warns with its likely cause, and the end of a run writes a summary of its signal."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
from test_train_cli import write_recipe
from transformers import TrainerControl, TrainerState

from vqathinker.commands.train import main
from vqathinker.rewards import format_reward
from vqathinker.training.callbacks import (
    CHOICE_PARSED,
    HEALTH_FILE,
    PARSED,
    ZERO_SPREAD,
    GRPOProgress,
    TrainingHealth,
    health_summary,
)
from vqathinker.training.checks import check_batch_geometry
from vqathinker.training.configs import VQAGRPOConfig

CPU = dict(use_cpu=True, bf16=False, report_to="none")


def grpo_args(tmp_path, **settings) -> VQAGRPOConfig:
    return VQAGRPOConfig(output_dir=str(tmp_path), **{**CPU, **settings})


# ------------------------------------------------------------------------------------------ batch geometry


def test_a_generation_batch_of_one_video_is_refused_when_the_rank_reward_is_used(tmp_path):
    args = grpo_args(tmp_path, per_device_train_batch_size=4, num_generations=4)
    with pytest.raises(ValueError) as error:
        check_batch_geometry(args)
    message = str(error.value)
    assert "single video" in message and "4 × 1 × 1 = 4 rollouts" in message
    assert "['rank'] can never compare two videos" in message
    assert "--per_device_train_batch_size 8" in message


@pytest.mark.parametrize(
    "settings",
    [
        {"per_device_train_batch_size": 8, "num_generations": 4},  # two videos
        {"per_device_train_batch_size": 4, "num_generations": 4, "gradient_accumulation_steps": 2},
        {"per_device_train_batch_size": 4, "num_generations": 4, "reward_funcs": ["reg", "format"]},
        {"per_device_train_batch_size": 4, "num_generations": 4, "reward_weights": [1.0, 1.0, 0.0]},
    ],
)
def test_geometries_where_the_rank_reward_compares_videos_or_is_not_used_pass(tmp_path, settings):
    check_batch_geometry(grpo_args(tmp_path, **settings))  # no error


def test_the_train_command_refuses_it_in_one_line_before_loading(tmp_path, capsys):
    argv = ["--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false", "--report_to", "none"]
    argv += ["--per_device_train_batch_size", "2", "--num_generations", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqathinker train: error: each generation batch holds a single video")
    assert err.count("\n") == 1


# ------------------------------------------------------------------------------------- warnings while training


class Run:
    """Drives a :class:`TrainingHealth` with logs as trl writes them (one every ``logging_steps``)."""

    def __init__(self, tmp_path, patience=3, repeat_steps=50):
        self.health = TrainingHealth(patience, repeat_steps)
        self.state = TrainerState()
        self.args = SimpleNamespace(temperature=1.0, output_dir=str(tmp_path), warm_start_steps=0)
        self.health.on_train_begin(self.args, self.state, TrainerControl())

    def log(self, step, zero_spread, parsed, **rewards):
        self.state.global_step = step
        logs = {ZERO_SPREAD: zero_spread, PARSED: parsed, "loss": 0.0}
        logs.update({f"rewards/{name}/mean": value for name, value in rewards.items()})
        self.state.log_history.append({**logs, "step": step})
        self.health.on_log(self.args, self.state, TrainerControl(), logs=logs)

    def end(self):
        self.health.on_train_end(self.args, self.state, TrainerControl())


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_no_answer_in_format_warns_after_patience_then_every_repeat_steps(tmp_path, caplog):
    run = Run(tmp_path, patience=3, repeat_steps=5)
    with caplog.at_level(logging.WARNING, logger="vqathinker"):
        for step in range(1, 3):
            run.log(step, 1.0, 0.0, format=0.0)
        assert warnings_of(caplog) == []  # two steps: not yet
        for step in range(3, 13):
            run.log(step, 1.0, 0.0, format=0.0)
    warned = warnings_of(caplog)
    assert [w.split(":")[0] for w in warned] == ["step 3", "step 8"]  # once, then every 5 steps
    assert "no answer held a score in the last 3 step(s)" in warned[0]
    assert "does not answer in the <think>...</think><answer>score</answer> format" in warned[0]
    assert "--warm_start_steps" in warned[0]


def test_after_a_warm_start_the_warning_says_it_was_not_enough(tmp_path, caplog):
    run = Run(tmp_path, patience=1)
    run.args.warm_start_steps = 20
    with caplog.at_level(logging.WARNING, logger="vqathinker"):
        run.log(1, 1.0, 0.0)
    (warned,) = warnings_of(caplog)
    assert "format; the warm start (20 steps) did not teach it: raise --warm_start_steps or" in warned


def test_the_format_reward_logs_the_parsed_share_of_score_and_choice_rows():
    logged = {}
    format_reward(
        ["<answer>3.5</answer>", "<answer>good</answer>", "<answer>B</answer>", "<answer>maybe</answer>"],
        task=["score", "score", "choice", "choice"],
        options=[[], [], ["x", "y"], ["x", "y"]],
        log_metric=logged.__setitem__,
    )
    assert logged == {PARSED: 0.5, CHOICE_PARSED: 0.5}


def test_multiple_choice_answers_that_pick_no_option_warn_too(tmp_path, caplog):
    run = Run(tmp_path, patience=1)
    with caplog.at_level(logging.WARNING, logger="vqathinker"):
        run.state.global_step = 1
        run.health.on_log(run.args, run.state, TrainerControl(), logs={ZERO_SPREAD: 1.0, CHOICE_PARSED: 0.0})
    assert len(warnings_of(caplog)) == 1 and "no answer held a score" in warnings_of(caplog)[0]


def test_a_log_covering_several_steps_counts_them_all(tmp_path, caplog):
    run = Run(tmp_path, patience=3)
    with caplog.at_level(logging.WARNING, logger="vqathinker"):
        run.log(10, 1.0, 0.0)  # logging_steps 10: averages of 1 and 0 hold at each of the 10 steps
    assert len(warnings_of(caplog)) == 1 and "last 10 step(s)" in warnings_of(caplog)[0]


def test_zero_spread_with_parsed_answers_names_identical_answers(tmp_path, caplog):
    run = Run(tmp_path, patience=2)
    with caplog.at_level(logging.WARNING, logger="vqathinker"):
        for step in (1, 2):
            run.log(step, 1.0, 0.75)
    (warned,) = warnings_of(caplog)
    assert "every group's rewards had zero spread in the last 2 step(s)" in warned
    assert "temperature too low: 1.0" in warned and "75% of the answers held a score" in warned
    assert "warm_start" not in warned


def test_the_warning_is_rearmed_when_the_signal_comes_back(tmp_path, caplog):
    run = Run(tmp_path, patience=2, repeat_steps=100)
    with caplog.at_level(logging.WARNING, logger="vqathinker"):
        for step, parsed in zip(range(1, 8), (0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0), strict=True):
            run.log(step, 1.0 if parsed == 0.0 else 0.25, parsed)
    assert [w.split(":")[0] for w in warnings_of(caplog)] == ["step 2", "step 5"]


def test_a_run_with_signal_never_warns_and_patience_zero_disables(tmp_path, caplog):
    run, off = Run(tmp_path), Run(tmp_path, patience=0)
    with caplog.at_level(logging.WARNING, logger="vqathinker"):
        for step in range(1, 10):
            run.log(step, 0.5, 0.9)
            off.log(step, 1.0, 0.0)
    assert warnings_of(caplog) == []


# ------------------------------------------------------------------------------------------------ summary


def test_summary_counts_steps_without_signal_parsed_share_and_rewards_first_and_last(tmp_path, caplog):
    run = Run(tmp_path, patience=2)
    with caplog.at_level(logging.INFO, logger="vqathinker"):
        run.log(2, 1.0, 0.0, format=0.0, reg=0.0)  # logging_steps 2
        run.log(4, 1.0, 0.0, format=0.0, reg=0.0)
        run.log(6, 0.5, 0.5, format=0.5, reg=0.25)
        run.log(8, 0.0, 1.0, format=1.0, reg=0.5)
        run.end()
    summary = json.loads((tmp_path / HEALTH_FILE).read_text())
    assert summary["steps"] == 8 and summary["logged_steps"] == 8
    assert summary["steps_without_signal"] == 4
    assert summary["parsed_fraction"] == pytest.approx((0 + 0 + 0.5 + 1.0) * 2 / 8)
    assert summary["rewards"] == {"format": {"first": 0.0, "last": 1.0}, "reg": {"first": 0.0, "last": 0.5}}
    assert len(summary["warnings"]) == 1 and summary["warnings"][0].startswith("step 2: no answer")
    line = [r.getMessage() for r in caplog.records if "training health" in r.getMessage()]
    assert len(line) == 1
    assert "4 of 8 logged steps without learning signal; answers with a score: 38%" in line[0]
    assert "format 0.000 -> 1.000, reg 0.000 -> 0.500" in line[0]


def test_rewards_of_a_task_absent_from_the_logged_steps_neither_crash_nor_hide_the_others(tmp_path):
    """trl logs None for a reward none of whose rows were in the logged steps (a mixed run)."""
    history = [
        {"step": 1, ZERO_SPREAD: 0.5, "rewards/reg/mean": 0.2, "rewards/choice/mean": None},
        {"step": 2, ZERO_SPREAD: 0.5, "rewards/reg/mean": None, "rewards/choice/mean": 0.5},
        {"step": 3, ZERO_SPREAD: 0.5, "rewards/reg/mean": 0.4, "rewards/choice/mean": float("nan")},
        {"step": 4, ZERO_SPREAD: 0.5, "rewards/reg/mean": 0.6, "rewards/choice/mean": None},
    ]
    summary = health_summary(history, 4)
    assert summary["rewards"] == {"reg": {"first": 0.2, "last": 0.6}, "choice": {"first": 0.5, "last": 0.5}}
    never = health_summary([{"step": 1, ZERO_SPREAD: 0.5, "rewards/choice/mean": None}], 1)
    assert never["rewards"] == {"choice": {"first": None, "last": None}}

    progress = GRPOProgress(["reg", "choice"])
    args, state, control = grpo_args(tmp_path), TrainerState(), TrainerControl()
    state.max_steps = 4
    progress.on_train_begin(args, state, control)
    for entry in history:
        state.global_step = entry["step"]
        progress.on_step_end(args, state, control)
        progress.on_log(args, state, control, logs=entry)
    assert progress.shown == {"reg": "0.600", "choice": "0.500"}  # the last value each had
    progress.on_train_end(args, state, control)


def test_summary_of_a_history_without_grpo_logs():
    summary = health_summary([{"step": 3, "train_runtime": 1.0}], 3)
    assert summary == {
        "steps": 3,
        "logged_steps": 0,
        "steps_without_signal": 0,
        "parsed_fraction": None,
        "rewards": {},
    }


# ------------------------------------------------------------------- a base model that never answers in format


@pytest.mark.slow
def test_four_steps_from_a_model_that_never_answers_in_format_warn_and_name_the_cause(
    tiny_model_dir, graded_videos, tmp_path, caplog
):
    """The tiny random InternVL never writes an answer block: every reward is 0 at every step."""
    recipe = write_recipe(tmp_path, tiny_model_dir, graded_videos, max_steps=4, max_completion_length=8)
    with caplog.at_level(logging.INFO):
        assert main(["--config", str(recipe)]) == 0
    warned = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "step" in r.getMessage()
    ]
    assert any(w.startswith("step 3: no answer held a score") and "--warm_start_steps" in w for w in warned)
    summary = json.loads((tmp_path / "out" / HEALTH_FILE).read_text())
    assert (
        summary["steps"] == 4 and summary["steps_without_signal"] == 4 and summary["parsed_fraction"] == 0.0
    )
    assert summary["rewards"]["format"] == {"first": 0.0, "last": 0.0}
    assert "4 of 4 logged steps without learning signal" in caplog.text
