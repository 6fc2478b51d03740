"""Shared fixtures: a tiny random InternVL checkpoint built once per test session."""

from __future__ import annotations

import pytest
import torch

from vqathinker.model.tiny import make_tiny_model


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Two cores shared by parallel jobs: one intra-op thread avoids OpenMP contention (8x faster here).

    Session-scoped, so it is in place before the session fixtures that train (``answering_model_dir``).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    from tests.grpo_helpers import teach_answer_format
    from vqathinker.model.loading import load_model_and_processor
    from vqathinker.training.configs import VQAModelConfig

    torch.manual_seed(0)
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(tiny_model_dir)).model_options()
    )
    teach_answer_format(model, processor)
    out = tmp_path_factory.mktemp("answering_internvl")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def graded_videos(tmp_path_factory):
    """Four real 8-frame h264 clips, darker to brighter, with MOS 1.5, 2.5, 3.5, 4.5: ``[(path, mos)]``."""
    from tests.media import counter_frames, write_video

    folder = tmp_path_factory.mktemp("graded_videos")
    return [
        (str(write_video(folder / f"clip{i}.mp4", counter_frames(8, step=6 + 6 * i), fps=8)), 1.5 + i)
        for i in range(4)
    ]


@pytest.fixture(scope="session")
def remote_checkpoint_dir(tmp_path_factory):
    """A tiny remote-code InternVL checkpoint (model_type internvl_chat) patched with vqathinker's model."""
    from tests.remote_checkpoint import write_remote_checkpoint

    return write_remote_checkpoint(tmp_path_factory.mktemp("remote_internvl") / "InternVL3-tiny")
