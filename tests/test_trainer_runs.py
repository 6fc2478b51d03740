"""Training runs in real subprocesses: resume after SIGKILL, DeepSpeed ZeRO-2 on CPU with 2 processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train_cli import REPO, write_recipe

COMPARED = ("loss", "reward", "kl", "entropy", "rewards/reg/mean", "rewards/rank/mean")


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",  # two cores shared by parallel jobs
        "TORCH_EXTENSIONS_DIR": str(REPO / ".torch_extensions"),  # DeepSpeed's compiled op, built once
        "TOKENIZERS_PARALLELISM": "false",
    }


def train(recipe: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "vqathinker.cli", "train", "--config", str(recipe), *args]
    return subprocess.Popen(
        command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def step_logs(state_path: Path) -> dict[int, dict]:
    history = json.loads(state_path.read_text())["log_history"]
    return {entry["step"]: entry for entry in history if "loss" in entry}


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(answering_model_dir, graded_videos, tmp_path):
    # 2 videos per step, 2 steps per epoch: steps 3-4 are in the second epoch
    recipe = write_recipe(
        tmp_path, answering_model_dir, graded_videos, max_steps=4, save_strategy="steps", save_steps=2
    )
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    uninterrupted = train(recipe, "--output_dir", str(whole))
    # the same run (constant learning rate), killed with SIGKILL once checkpoint-2 is complete
    killed = train(recipe, "--output_dir", str(broken), "--max_steps", "1000")
    checkpoint = broken / "checkpoint-2"
    deadline = time.monotonic() + 240
    while not (checkpoint / "trainer_state.json").is_file():
        assert killed.poll() is None, killed.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "checkpoint-2 never appeared"
        time.sleep(0.05)
    time.sleep(0.2)  # let the state file's write end
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    assert not (broken / "trainer_state.json").exists()  # it did not finish

    resumed = train(
        recipe, "--output_dir", str(broken), "--max_steps", "4", "--resume_from_checkpoint", "last"
    )
    output = finish(resumed)
    finish(uninterrupted)
    assert "resuming from" in output and "checkpoint-" in output

    expected, got = step_logs(whole / "trainer_state.json"), step_logs(broken / "trainer_state.json")
    assert sorted(expected) == sorted(got) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert {k: expected[step][k] for k in COMPARED} == {k: got[step][k] for k in COMPARED}, step
    assert any(expected[step]["loss"] != 0 for step in (3, 4))  # the comparison is not of zeros


@pytest.mark.slow
def test_run_script_deepspeed_zero2_on_cpu_two_processes_and_auto_resume(
    answering_model_dir, graded_videos, tmp_path
):
    """run_grpo_lsvq.sh with the CPU accelerate config: ZeRO-2, 2 processes (gloo); a second call resumes."""
    # one video per process and step: the rank reward has peers only through the cross-process gather
    recipe = write_recipe(tmp_path, answering_model_dir, graded_videos, per_device_train_batch_size=2)
    jsonl, root = tmp_path / "train.jsonl", Path(graded_videos[0][0]).parent
    out = tmp_path / "run"
    env = {
        **environment(),
        "MODEL_PATH": str(answering_model_dir),
        "DATA_JSONL": str(jsonl),
        "VIDEO_ROOT": str(root),
        "OUTPUT_DIR": str(out),
        "CONFIG": str(recipe),
        "MOTION_WEIGHTS": "",  # the test recipe has no motion branch
        "NUM_GPUS": "2",
        "ACCELERATE_CONFIG": "configs/accelerate/cpu_zero2.yaml",
        "MAIN_PROCESS_PORT": "29517",
    }
    script = str(REPO / "run_scripts/run_grpo_lsvq.sh")
    first = subprocess.run(
        ["bash", script, "--save_strategy", "steps", "--save_steps", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    assert "DeepSpeed" in first.stdout + first.stderr
    logs = step_logs(out / "trainer_state.json")
    assert sorted(logs) == [1, 2]
    assert any((logs[step]["rewards/rank/mean"] or 0) > 0 for step in logs)
    assert (out / "checkpoint-2" / "trainer_state.json").is_file() and (out / "model.safetensors").is_file()

    second = subprocess.run(
        ["bash", script, "--max_steps", "3"], env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert f"resuming from {out / 'checkpoint-2'}" in second.stdout
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3
