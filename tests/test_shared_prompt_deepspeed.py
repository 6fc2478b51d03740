"""shared_prompt under DeepSpeed on CPU, 2 processes (gloo): trains, and equals the unshared run step by step."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from test_train_cli import REPO
from test_trainer_runs import environment


def launch(config: str, model_dir, videos, tmp_path, port: int, shared: bool) -> dict:
    out = tmp_path / ("shared.json" if shared else "unshared.json")
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        config,
        "--num_processes",
        "2",
        "--main_process_port",
        str(port),
        str(REPO / "tests/deepspeed_shared_prompt_run.py"),
        str(model_dir),
        str(out),
        "1" if shared else "0",
        "0.04",
        *[path for path, _ in videos],
    ]
    run = subprocess.run(command, env=environment(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return json.loads(out.read_text())


def check(config: str, model_dir, videos, tmp_path, port: int, stage: int) -> None:
    """The same 2 steps with shared_prompt on and off (two launches): equal losses and gradient norms."""
    shared = launch(config, model_dir, videos, tmp_path, port, shared=True)
    unshared = launch(config, model_dir, videos, tmp_path, port, shared=False)
    assert shared["zero_stage"] == unshared["zero_stage"] == stage
    assert (
        shared["wrappers"] == unshared["wrappers"] == ["DeepSpeedEngine"]
    )  # the loss went through the engine
    assert len(shared["loss"]) == len(unshared["loss"]) == 2
    assert shared["loss"] == pytest.approx(unshared["loss"], abs=1e-5)
    assert shared["grad_norm"] == pytest.approx(unshared["grad_norm"], rel=1e-4)
    assert all(norm > 0 for norm in unshared["grad_norm"])
    assert shared["positions"] < unshared["positions"]


@pytest.mark.slow
def test_zero2_two_processes(tiny_model_dir, graded_videos, tmp_path):
    check(
        str(REPO / "configs/accelerate/cpu_zero2.yaml"),
        tiny_model_dir,
        graded_videos,
        tmp_path,
        29531,
        stage=2,
    )


@pytest.mark.slow
def test_zero3_two_processes(tiny_model_dir, graded_videos, tmp_path):
    config = yaml.safe_load((REPO / "configs/accelerate/cpu_zero2.yaml").read_text())
    config["deepspeed_config"]["deepspeed_config_file"] = str(REPO / "configs/deepspeed/zero3.json")
    path = tmp_path / "cpu_zero3.yaml"
    path.write_text(yaml.safe_dump(config))
    check(str(path), tiny_model_dir, graded_videos, tmp_path, 29532, stage=3)
