"""configs/grpo_lsvq_release.yaml: every knob at the release's behaviour, and two GRPO steps of it on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.test_train_cli import write_data
from vqathinker.commands.train import main, parse_args
from vqathinker.model.slowfast import SlowFastFeatures

REPO = Path(__file__).resolve().parents[1]
RELEASE = str(REPO / "configs/grpo_lsvq_release.yaml")
WIDTH = 8  # the CPU-sized trunk of the motion tests


def slowfast_weights(path: Path) -> dict:
    """A width-8 SlowFast in pytorchvideo's checkpoint layout; returns its state."""
    torch.manual_seed(3)
    state = SlowFastFeatures(WIDTH).state_dict()
    blocks = {key.replace("feature_extraction.", "blocks.", 1): value for key, value in state.items()}
    torch.save({"model_state": blocks}, path)
    return state


def test_release_recipe_sets_every_release_knob(tmp_path):
    weights = tmp_path / "slowfast.pyth"
    weights.write_bytes(b"")
    data_args, args, model_args = parse_args(
        ["--config", RELEASE, "--bf16", "false", "--motion_weights", str(weights)]
    )
    assert model_args.use_motion
    assert (model_args.motion_pooling, model_args.motion_batch_norm, model_args.motion_init) == (
        "release",
        "train",
        "release",
    )
    assert (data_args.frame_sampling, data_args.prompt_style, data_args.num_frames) == (
        "release",
        "release",
        6,
    )
    assert args.top_k == 50 and not args.use_bias_correction_kl and not args.temporal_consistency
    assert args.reward_kwargs == {
        "rank": {"peer_videos": 2, "parse": "release", "seed": 42},
        "reg": {"sigma": 0.5, "parse": "release", "seed": 42},
    }
    # one process's micro-batch holds the 2 videos the release's rank reward compares
    assert args.per_device_train_batch_size // args.num_generations == 2
    assert (args.learning_rate, args.beta, args.epsilon, args.loss_type) == (1e-6, 0.04, 0.2, "grpo")


def test_release_recipe_trains_two_steps_with_the_motion_branch(answering_model_dir, graded_videos, tmp_path):
    jsonl, root = write_data(tmp_path, graded_videos)
    weights = tmp_path / "SLOWFAST_8x8_R50.pyth"
    initial = slowfast_weights(weights)
    out = tmp_path / "out"
    overrides = {
        "model_name_or_path": answering_model_dir,
        "motion_weights": weights,
        "motion_width": WIDTH,
        "data_jsonl": jsonl,
        "video_root": root,
        "output_dir": out,
        "per_device_train_batch_size": 4,  # 2 videos x 2 rollouts per micro-batch: peer_videos 2 as released
        "num_generations": 2,
        "gradient_accumulation_steps": 1,
        "max_completion_length": 16,
        "max_steps": 2,
        "learning_rate": 1e-3,
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": False,
        "save_strategy": "no",
        "report_to": "none",
        "dtype": "float32",
    }
    argv = ["--config", RELEASE] + [
        item for key, value in overrides.items() for item in (f"--{key}", str(value))
    ]
    assert main(argv) == 0

    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert len(logged) == 2 and all("rewards/rank/mean" in entry for entry in logged)
    config = json.loads((out / "config.json").read_text())
    assert config["use_motion"] and config["motion_width"] == WIDTH
    assert (config["motion_pooling"], config["motion_batch_norm"]) == ("release", "train")
    saved = load_file(str(out / "model.safetensors"))
    trunk = {k.split("slowfast_model.", 1)[1]: v for k, v in saved.items() if "slowfast_model." in k}
    assert set(trunk) == set(initial)
    # the trunk's weights stay frozen; its BatchNorm statistics drift in train mode, as the release's do
    drifted = [k for k in trunk if not torch.equal(trunk[k], initial[k])]
    assert drifted and all(
        k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in drifted
    )
    # the projector started from the release's U(0, 0.01) (the default init, N(0, 0.02), reaches below -0.05)
    (first,) = [v for k, v in saved.items() if k.endswith("motion_mlp.1.weight")]
    assert -0.005 < first.min() < 0.003 and 0.008 < first.max() < 0.015
