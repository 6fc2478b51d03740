"""``vqathinker train``: YAML recipe + command-line overrides, resume resolution, a run on bad records."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
import yaml

from vqathinker.commands.train import main, parse_args
from vqathinker.data.prompts import QUALITY_QUESTION
from vqathinker.evaluation.report import training_curves
from vqathinker.training.run import last_checkpoint, record_prompt, resolve_resume

REPO = Path(__file__).resolve().parents[1]


def write_data(folder: Path, videos, bad_lines: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """An LSVQ-style jsonl (video paths relative to the root) for ``videos`` [(path, mos)], plus bad lines."""
    root = Path(videos[0][0]).parent
    lines = [
        json.dumps(
            {
                "id": i,
                "dataset_name": "graded",
                "image": [Path(path).name],
                "conversations": [
                    {"from": "human", "value": QUALITY_QUESTION},
                    {"from": "gpt", "value": mos},
                ],
            }
        )
        for i, (path, mos) in enumerate(videos)
    ]
    jsonl = folder / "train.jsonl"
    jsonl.write_text("\n".join([*lines[:2], *bad_lines, *lines[2:]]) + "\n")
    return jsonl, root


def write_recipe(folder: Path, model_dir, videos, **overrides) -> Path:
    """A tiny CPU recipe: 4 frames, G = 2, 2 videos per step, 16 new tokens, constant learning rate."""
    jsonl, root = write_data(folder, videos)
    recipe = {
        "model_name_or_path": str(model_dir),
        "data_jsonl": str(jsonl),
        "video_root": str(root),
        "num_frames": 4,
        "bad_records": "skip",
        "output_dir": str(folder / "out"),
        "per_device_train_batch_size": 4,
        "num_generations": 2,
        "max_completion_length": 16,
        "max_steps": 2,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": 0,
        "reward_funcs": ["rank", "reg", "format"],
        **overrides,
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_reference_recipe_loads_and_the_command_line_overrides_it(tmp_path):
    weights = tmp_path / "SLOWFAST_8x8_R50.pyth"
    weights.write_bytes(b"")  # checked for existence when the recipe is read
    data_args, args, model_args = parse_args(
        [
            "--config",
            str(REPO / "configs/grpo_lsvq.yaml"),
            "--motion_weights",
            str(weights),
            "--bf16",
            "false",  # no GPU here
            "--learning_rate",
            "2e-6",
            "--num_generations",
            "8",
            "--reward_kwargs",
            '{"reg": {"sigma": 0.3}}',
            "--temporal_consistency",
            "true",
            "--output_dir",
            str(tmp_path),
            "--num_frames",
            "8",
            "--use_peft",
            "true",
        ]
    )
    # the recipe of the VQAThinker release
    assert model_args.model_name_or_path == "OpenGVLab/InternVL3-8B-hf"
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (8, 2)
    assert (args.beta, args.epsilon, args.loss_type, args.scale_rewards) == (0.04, 0.2, "grpo", "group")
    assert (args.max_completion_length, args.num_train_epochs, args.seed) == (2048, 3, 42)
    assert args.reward_funcs == ["rank", "reg", "format"] and args.reward_weights == [1.0, 1.0, 1.0]
    assert args.activation_checkpointing and args.log_completions and not args.log_multimodal
    assert data_args.bad_records == "skip" and not args.remove_unused_columns
    # the paper's run: the motion branch, top-k 50, the plain k3 KL; our global rank and score parsing
    assert model_args.use_motion and model_args.motion_weights == str(weights)
    assert (model_args.motion_pooling, model_args.motion_init, model_args.motion_batch_norm) == (
        "release",
        "release",
        "frozen",
    )
    assert args.top_k == 50 and not args.use_bias_correction_kl
    assert (data_args.frame_sampling, data_args.prompt_style) == ("centre", "default")
    # the overrides
    assert args.learning_rate == 2e-6 and args.num_generations == 8 and not args.bf16
    assert args.reward_kwargs == {"reg": {"sigma": 0.3}}
    assert args.temporal_consistency and args.temporal_reward_names == ["rank", "reg"]
    assert data_args.num_frames == 8 and model_args.use_peft
    assert args.output_dir == str(tmp_path)


def test_command_line_values_are_validated(tmp_path):
    recipe = ["--config", str(REPO / "configs/grpo_lsvq.yaml"), "--bf16", "false"]
    with pytest.raises(ValueError, match="SLOWFAST_8x8_R50.pyth.*no such file"):
        parse_args(recipe)
    weights = tmp_path / "slowfast.pyth"
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match="multiple of num_generations|divisible by num_generations"):
        parse_args([*recipe, "--motion_weights", str(weights), "--num_generations", "3"])


def test_resume_last_picks_the_newest_complete_checkpoint(tmp_path):
    assert resolve_resume("last", str(tmp_path)) is None  # nothing to resume: start afresh
    for step, complete in ((2, True), (10, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert resolve_resume("last", str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert resolve_resume(None, str(tmp_path)) is None
    with pytest.raises(FileNotFoundError):
        resolve_resume(str(tmp_path / "checkpoint-99"), str(tmp_path))


def test_the_processor_records_the_most_common_score_question_and_the_style(caplog):
    rows = {"question": ["A?", "B?", "B?", "C?", "C?", "C?"], "task": ["score"] * 3 + ["choice"] * 3}
    processor = SimpleNamespace(question=None, prompt_style="default")
    with caplog.at_level(logging.INFO, logger="vqathinker"):
        record_prompt(processor, datasets.Dataset.from_dict(rows), "release")
    assert (processor.question, processor.prompt_style) == ("B?", "release")  # choice rows do not count
    assert "ask 2 different questions" in caplog.text and "(2 of 3 rows)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vqathinker"):
        record_prompt(
            processor, datasets.Dataset.from_dict({"question": ["A?"], "task": ["score"]}), "default"
        )
    assert (processor.question, processor.prompt_style) == ("A?", "default") and caplog.text == ""
    choices = {"question": ["C?"], "task": ["choice"]}
    record_prompt(processor, datasets.Dataset.from_dict(choices), "default")
    assert processor.question == "A?"  # no score row: the question is kept


def test_training_on_a_dataset_with_bad_records_counts_and_logs_the_skips(
    answering_model_dir, graded_videos, tmp_path, caplog
):
    recipe = write_recipe(tmp_path, answering_model_dir, graded_videos)
    bad = ('{"id": 7, "image": ["clip0.mp4"]', '{"id": 8, "image": ["clip1.mp4"], "conversations": []}')
    jsonl, _ = write_data(tmp_path, graded_videos, bad_lines=bad)
    with caplog.at_level(logging.INFO):
        argv = ["--config", str(recipe), "--data_jsonl", str(jsonl), "--max_steps", "1", "--num_frames", "3"]
        assert main(argv) == 0
    assert "skipped 2 bad record(s)" in caplog.text
    assert "4 records (2 skipped)" in caplog.text
    out = tmp_path / "out"
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and any("loss" in entry for entry in state["log_history"])
    assert (out / "model.safetensors").is_file() and (out / "processor_config.json").is_file()
    # the run's frames per video are recorded where evaluate and predict read them
    assert json.loads((out / "processor_config.json").read_text())["num_frames"] == 3
    # the curves of plot-training read the keys this run logged
    panels = training_curves(state["log_history"])
    assert {"rank", "reg", "format"} <= set(panels["reward"])
