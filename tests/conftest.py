"""Shared fixtures: a tiny random InternVL checkpoint built once per test session."""

from __future__ import annotations

import pytest

from vqathinker.model.tiny import make_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Folder of a tiny InternVL checkpoint (seed 0) loadable by ``load_model_and_processor``."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_internvl"), seed=0)


@pytest.fixture(scope="session")
def answering_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny InternVL after 60 supervised steps on ``<think>ok</think><answer>N.NN</answer>`` with random N.

    It answers in the format with scores that vary between rollouts, so GRPO rewards, advantages and losses
    are not all zero (a random tiny model never closes an answer block). Trainer tests (4-frame prompts).
    """
    import random

    import torch
    from PIL import Image

    from vqathinker.config import VQAModelConfig
    from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
    from vqathinker.model.internvl import load_model_and_processor, prepare_inputs, tile_size

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared by parallel jobs: OpenMP contention is 8x slower here
    torch.manual_seed(0)
    rng = random.Random(0)
    model, processor = load_model_and_processor(VQAModelConfig(model_name_or_path=str(tiny_model_dir)))
    tile = tile_size(processor)
    frames = [[Image.new("RGB", (tile, tile), (grey,) * 3)] * 4 for grey in (30, 90, 150, 210)]
    batch = prepare_inputs(processor, [build_conversation(QUALITY_QUESTION, 4)] * len(frames), frames)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        answers = [f"<think>ok</think><answer>{rng.uniform(1, 5):.2f}</answer><|im_end|>" for _ in frames]
        target = torch.tensor(processor.tokenizer(answers, add_special_tokens=False)["input_ids"])
        input_ids = torch.cat([batch["input_ids"], target], dim=1)
        labels = input_ids.clone()
        labels[:, : batch["input_ids"].shape[1]] = -100
        attention_mask = torch.cat([batch["attention_mask"], torch.ones_like(target)], dim=1)
        loss = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values=batch["pixel_values"],
            labels=labels,
        ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.set_num_threads(threads)
    out = tmp_path_factory.mktemp("answering_internvl")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def graded_videos(tmp_path_factory):
    """Four real 8-frame h264 clips, darker to brighter, with MOS 1.5, 2.5, 3.5, 4.5: ``[(path, mos)]``."""
    from media import counter_frames, write_video

    folder = tmp_path_factory.mktemp("graded_videos")
    return [
        (str(write_video(folder / f"clip{i}.mp4", counter_frames(8, step=6 + 6 * i), fps=8)), 1.5 + i)
        for i in range(4)
    ]


@pytest.fixture(scope="session")
def remote_checkpoint_dir(tmp_path_factory):
    """A tiny remote-code InternVL checkpoint (model_type internvl_chat) patched with vqathinker's model."""
    from remote_checkpoint import write_remote_checkpoint

    return write_remote_checkpoint(tmp_path_factory.mktemp("remote_internvl") / "InternVL3-tiny")
