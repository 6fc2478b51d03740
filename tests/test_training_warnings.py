"""The reference recipe trains without FutureWarnings (transformers 5.24 renamed gradient checkpointing to
activation checkpointing), logs to TensorBoard, and with ``--bf16 false`` trains and saves float32 weights."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vqathinker.cli import main
from vqathinker.data.prompts import QUALITY_QUESTION
from vqathinker.training.configs import VQAGRPOConfig

REPO = Path(__file__).resolve().parents[1]
CPU = dict(use_cpu=True, bf16=False, report_to="none", per_device_train_batch_size=4, num_generations=2)


def future_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]


def make_config(tmp_path, **settings) -> tuple[VQAGRPOConfig, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = VQAGRPOConfig(output_dir=str(tmp_path), **CPU, **settings)
    return config, future_warnings(caught)


def test_checkpointing_is_on_by_default_without_the_deprecated_field(tmp_path):
    config, warned = make_config(tmp_path)
    assert warned == []
    assert config.activation_checkpointing is True and config.gradient_checkpointing is True  # trl's default
    config, warned = make_config(tmp_path, activation_checkpointing=False)
    assert (
        warned == [] and config.activation_checkpointing is False and config.gradient_checkpointing is False
    )


def test_the_deprecated_name_still_works_and_warns(tmp_path):
    config, warned = make_config(tmp_path, gradient_checkpointing=False)
    assert config.activation_checkpointing is False
    assert warned == [
        "`gradient_checkpointing` is deprecated and will be removed in v6. Use `activation_checkpointing` instead."
    ]


@pytest.mark.slow
def test_a_short_run_of_the_reference_recipe_emits_no_future_warning_and_logs_to_tensorboard(
    tiny_model_dir, graded_videos, tmp_path
):
    jsonl = tmp_path / "train.jsonl"
    turns = [{"from": "human", "value": QUALITY_QUESTION}]
    jsonl.write_text(
        "".join(
            json.dumps(
                {
                    "id": i,
                    "image": [Path(path).name],
                    "conversations": [*turns, {"from": "gpt", "value": mos}],
                }
            )
            + "\n"
            for i, (path, mos) in enumerate(graded_videos)
        )
    )
    out = tmp_path / "out"
    weights = tmp_path / "SLOWFAST_8x8_R50.pyth"
    weights.write_bytes(b"")  # checked for existence when the recipe is read, unused without use_motion
    overrides = {
        "model_name_or_path": tiny_model_dir,  # the recipe's dtype: bfloat16
        "use_motion": "false",  # the recipe's motion branch needs SlowFast weights (tests/test_release_recipe.py)
        "motion_weights": weights,
        "data_jsonl": jsonl,
        "video_root": Path(graded_videos[0][0]).parent,
        "num_frames": 4,
        "output_dir": out,
        "bf16": "false",
        "use_cpu": "true",
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "num_generations": 2,
        "max_completion_length": 8,
        "max_steps": 2,
        "save_strategy": "no",
        "log_completions": "false",
    }
    argv = ["train", "--config", str(REPO / "configs" / "grpo_lsvq.yaml")]
    argv += [arg for key, value in overrides.items() for arg in (f"--{key}", str(value))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every occurrence, at every step
        assert main(argv) == 0
    assert future_warnings(caught) == []
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    events = list((out / "runs").glob("*/events.out.tfevents.*"))  # the recipe's report_to: [tensorboard]
    assert len(events) == 1 and events[0].stat().st_size > 0
    # with --bf16 false the recipe's dtype: bfloat16 gives way: trained and saved in float32
    assert {tensor.dtype for tensor in load_file(out / "model.safetensors").values()} == {torch.float32}
