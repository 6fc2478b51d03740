"""A checkpoint laid out like the VQAThinker release loads strictly, with its motion branch, and evaluates."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.media import counter_frames, write_video
from tests.release_checkpoint import release_slowfast_state, write_release_checkpoint
from vqathinker.commands import evaluate
from vqathinker.model.loading import ModelOptions, load_model_and_processor
from vqathinker.model.patching import patch_checkpoint
from vqathinker.model.slowfast import SlowFastFeatures
from vqathinker.model.tiny import TILE


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    folder = write_release_checkpoint(tmp_path_factory.mktemp("release") / "VQAThinker-tiny")
    patch_checkpoint(folder)  # what a user runs once: vqathinker patch-checkpoint DIR
    return folder


def test_the_generated_slowfast_layout_is_pytorchvideos_r50():
    state = release_slowfast_state(prefix="")
    params = sum(
        v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "tracked"))
    )
    assert round((params + 2304 * 400 + 400) / 1e4) == 3457  # slowfast_r50 with its classifier: 34.57 M
    with torch.device("meta"):
        ours = SlowFastFeatures().state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {
        f"feature_extraction.{k}": tuple(v.shape) for k, v in state.items()
    }


def test_release_checkpoint_loads_strictly_with_its_motion_branch(release_dir):
    model, processor = load_model_and_processor(ModelOptions(model_name_or_path=str(release_dir)))
    stored = load_file(str(release_dir / "model.safetensors"))
    loaded = model.state_dict()
    assert set(loaded) == set(stored)  # no missing and no unexpected key
    assert all(torch.equal(loaded[k], stored[k]) for k in stored)
    assert any(
        k.startswith("slowfast_model.feature_extraction.4.") and k.endswith("running_var") for k in stored
    )
    assert model.config.use_motion and model.config.motion_width == 64 and processor.motion
    assert model.config.motion_pooling == "release"  # the release's checkpoint pools as the release does
    assert tuple(model.motion_mlp[1].weight.shape) == (model.config.llm_config.hidden_size, 2304)


def test_release_checkpoint_evaluates_with_the_release_protocol(release_dir, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    scores = [30.0, 60.0, 85.0]
    for i in range(len(scores)):
        write_video(clips / f"v{i}.mp4", counter_frames(24, width=48, height=32, step=2 + 3 * i), fps=12)
    annotations = [
        {"image_id": f"v{i}.mp4", "ann_type": "score", "score": str(s)} for i, s in enumerate(scores)
    ]
    labels = tmp_path / "KoNViD.json"
    labels.write_text(json.dumps({"annotations": annotations}))
    out = tmp_path / "eval"
    argv = ["--model_name_or_path", str(release_dir), "--json", str(labels), "--video_root", str(clips)]
    argv += ["--output_dir", str(out), "--protocol", "release", "--max_new_tokens", "4", "--device", "cpu"]
    argv += ["--frame_size", str(2 * TILE)]  # the tiny checkpoint at twice its tile (the release: 560 px)
    assert evaluate.main(argv) == 0
    details = json.loads((out / "KoNViD.json").read_text())
    assert details["settings"]["frame_size"] == 2 * TILE
    assert details["settings"]["num_frames"] == 12 and details["settings"]["protocol"] == "release"
    assert details["failed_videos"] == 0 and details["n"] == len(scores)  # unparsed answers scored 3.00
    assert details["unparsed"] == len(scores)  # a random model writes no answer block in 4 tokens
