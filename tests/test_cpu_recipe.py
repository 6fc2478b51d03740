"""Training on CPU: a GPU recipe stops in one line naming the overrides, the model dtype follows ``bf16``, and
``configs/grpo_cpu.yaml`` trains (LoRA, warm start) a model that ``evaluate`` and ``predict`` then load."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from test_train_cli import write_data

import vqathinker.training.configs as configs
from vqathinker.cli import main
from vqathinker.commands.train import parse_args
from vqathinker.training.checks import training_dtype
from vqathinker.training.configs import VQAGRPOConfig, VQAModelConfig

REPO = Path(__file__).resolve().parents[1]
GPU_RECIPE, CPU_RECIPE = str(REPO / "configs/grpo_lsvq.yaml"), str(REPO / "configs/grpo_cpu.yaml")


@pytest.fixture
def no_bf16_device(monkeypatch):
    """A machine without a bf16 GPU, whatever this one has."""
    monkeypatch.setattr(configs, "bf16_device_available", lambda: False)


def test_a_gpu_recipe_without_a_bf16_device_stops_in_one_line_naming_the_overrides(
    no_bf16_device, tmp_path, capsys
):
    weights = tmp_path / "SLOWFAST_8x8_R50.pyth"
    weights.write_bytes(b"")  # the recipe's motion weights, checked for existence
    recipe = ["--config", GPU_RECIPE, "--motion_weights", str(weights)]
    assert main(["train", *recipe]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vqathinker train: error: bf16 needs a GPU")
    assert "--bf16 false --use_cpu true" in err and "configs/grpo_cpu.yaml" in err
    _, args, _ = parse_args([*recipe, "--bf16", "false", "--use_cpu", "true"])
    assert not args.bf16 and args.use_cpu
    with pytest.raises(ValueError, match="bf16 needs a GPU"):  # trl's default bf16 (None: on) too
        VQAGRPOConfig(output_dir="out")


def test_the_model_dtype_follows_bf16(tmp_path, caplog):
    def dtype(model_dtype, **precision):
        args = VQAGRPOConfig(output_dir=str(tmp_path), use_cpu=True, **{"bf16": False, **precision})
        return training_dtype(VQAModelConfig(model_name_or_path="m", dtype=model_dtype), args).dtype

    with caplog.at_level(logging.WARNING):
        assert dtype("bfloat16") == "float32"
    assert "dtype bfloat16 with bf16 and fp16 off: the model trains and is saved in float32" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert dtype(None) == "float32" and dtype("auto") == "float32"  # the checkpoint's could be bf16
        assert dtype("float32") == "float32"
    assert caplog.text == ""
    assert dtype("bfloat16", bf16=True) == "bfloat16" and dtype(None, bf16=True) is None


def test_the_cpu_recipe_is_consistent():
    data_args, args, model_args = parse_args(["--config", CPU_RECIPE])
    assert args.use_cpu and not args.bf16 and model_args.dtype == "float32" and model_args.use_peft
    assert args.generation_batch_size // args.num_generations >= 2  # the rank reward compares videos
    assert args.warm_start_steps > 0 and args.beta == 0.0 and args.report_to == ["tensorboard"]
    assert data_args.num_frames == 4 and model_args.model_name_or_path == "OpenGVLab/InternVL3-1B-hf"


@pytest.mark.slow
def test_the_cpu_recipe_trains_the_tiny_model_two_steps_then_evaluate_and_predict_load_it(
    tiny_model_dir, graded_videos, tmp_path, capsys
):
    jsonl, root = write_data(tmp_path, graded_videos)
    out = tmp_path / "run"
    data = ["--data_jsonl", str(jsonl), "--video_root", str(root)]
    argv = ["train", "--config", CPU_RECIPE, *data, "--model_name_or_path", str(tiny_model_dir)]
    argv += ["--output_dir", str(out), "--max_steps", "2", "--warm_start_steps", "2"]
    argv += ["--max_completion_length", "16", "--report_to", "none"]
    assert main(argv) == 0
    assert (out / "adapter_config.json").is_file()  # LoRA
    assert len(json.loads((out / "warm_start" / "warm_start.json").read_text())["losses"]) == 2
    assert json.loads((out / "training_health.json").read_text())["steps"] == 2

    evaluate = [
        "evaluate",
        "--model_name_or_path",
        str(out),
        "--jsonl",
        str(jsonl),
        "--video_root",
        str(root),
    ]
    assert main([*evaluate, "--max_new_tokens", "16"]) == 0
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    (scored,) = metrics.values()
    assert scored["failed_videos"] == 0 and scored["n"] + scored["unparsed"] == 4
    capsys.readouterr()
    video = graded_videos[0][0]
    assert main(["predict", "--model_name_or_path", str(out), video, "--max_new_tokens", "16", "--json"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["video"] == video and answer["error"] is None and answer["completion"]
