"""A remote-code InternVL checkpoint end to end: patched, loaded, two GRPO steps with motion, evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.grpo_helpers import NUM_FRAMES, TWO_STEPS, cpu_grpo_args, grpo_dataset, teach_answer_format
from tests.remote_checkpoint import write_remote_checkpoint
from vqathinker.cli import main as cli_main
from vqathinker.data.prompts import QUALITY_QUESTION
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.motion import PROJECTOR_NAME, TRUNK_NAME
from vqathinker.training.configs import VQAModelConfig
from vqathinker.training.trainer import VQAGRPOTrainer


@pytest.fixture(scope="module")
def answering_remote_dir(tmp_path_factory):
    """An unpatched remote-code checkpoint, patched with the command, then taught the answer format.

    60 supervised steps on ``<think>ok</think><answer>N.NN</answer>`` (random N) with the motion branch on,
    so that GRPO rollouts parse and rewards differ between them.
    """
    folder = write_remote_checkpoint(
        tmp_path_factory.mktemp("remote_run") / "InternVL3-tiny-run", patched=False
    )
    assert cli_main(["patch-checkpoint", str(folder)]) == 0
    torch.manual_seed(0)
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(folder), use_motion=True, motion_width=8).model_options()
    )
    teach_answer_format(model, processor)
    out = tmp_path_factory.mktemp("answering_remote")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def test_two_grpo_steps_then_evaluate(answering_remote_dir, graded_videos, tmp_path):
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(answering_remote_dir)).model_options()
    )
    assert type(model).__name__ == "InternVLChatModel" and model.config.use_motion and processor.motion
    rows = grpo_dataset(graded_videos, dataset_name="test", question=QUALITY_QUESTION)
    args = cpu_grpo_args(tmp_path / "run", **TWO_STEPS)
    trainer = VQAGRPOTrainer(model=model, args=args, train_dataset=rows, processing_class=processor)
    tiles = []  # tiles the vision tower sees: generation and the loss forward both get the frames
    model.vision_model.register_forward_hook(
        lambda module, args, kwargs, output: tiles.append(len(kwargs["pixel_values"])), with_kwargs=True
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all(np.isfinite(entry["loss"]) for entry in logs)
    # per step: rollouts and the loss forward, each video's frames encoded once for its G rollouts (share_vision)
    assert sum(tiles) >= 2 * 2 * len(rows) * NUM_FRAMES // args.num_generations
    assert any(entry["rewards/format/mean"] > 0 for entry in logs)
    changed = {n.split(".")[0] for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert {"vision_model", "mlp1", "language_model", PROJECTOR_NAME} <= changed
    assert TRUNK_NAME not in changed

    run = Path(args.output_dir)
    trainer.save_model(str(run))
    processor.save_pretrained(run)
    labels = tmp_path / "test.jsonl"
    with labels.open("w") as handle:
        for i, (path, mos) in enumerate(graded_videos):
            human = {"from": "human", "value": QUALITY_QUESTION}
            record = {
                "id": i,
                "image": [Path(path).name],
                "conversations": [human, {"from": "gpt", "value": mos}],
            }
            handle.write(json.dumps(record) + "\n")
    argv = [
        "evaluate",
        "--model_name_or_path",
        str(run),
        "--jsonl",
        str(labels),
        "--video_root",
        str(Path(path).parent),
    ]
    argv += ["--num_frames", str(NUM_FRAMES), "--max_new_tokens", "16", "--batch_size", "2"]
    assert cli_main(argv + ["--output_dir", str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]
    assert summary["failed_videos"] == 0 and summary["n"] + summary["unparsed"] == len(graded_videos)
    assert summary["n"] > 0  # the trained model still answers in the format
