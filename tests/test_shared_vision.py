"""One vision pass per video (share_vision): same losses and gradients, G times fewer encodings, one decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.image_utils import make_flat_list_of_images

import vqathinker.training.trainer as trainer_module
from tests.grpo_helpers import NUM_FRAMES, cpu_grpo_args, grpo_dataset
from tests.media import write_video
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import prepare_inputs, tile_size
from vqathinker.model.shared_vision import distinct_rows, share_encoders
from vqathinker.model.slowfast import SlowFastFeatures
from vqathinker.training.configs import VQAModelConfig
from vqathinker.training.sampler import shuffle_groups
from vqathinker.training.trainer import VQAGRPOTrainer


@pytest.fixture(scope="module")
def noise_videos(tmp_path_factory):
    """Four 8-frame h264 clips of random blocks: every sampled frame differs from every other one."""
    folder = tmp_path_factory.mktemp("noise_videos")
    rng = np.random.default_rng(0)
    videos = []
    for i in range(4):
        blocks = rng.integers(0, 256, (8, 6, 8, 3), dtype=np.uint8)
        frames = [np.kron(block, np.ones((8, 8, 1), dtype=np.uint8)) for block in blocks]
        videos.append((str(write_video(folder / f"noise{i}.mp4", frames, fps=8)), 1.5 + i))
    return videos


def build_trainer(model_dir, videos, tmp_path, model_options=None, **overrides) -> VQAGRPOTrainer:
    model, processor = load_model_and_processor(
        VQAModelConfig(
            model_name_or_path=str(model_dir), dtype="float32", **(model_options or {})
        ).model_options()
    )
    # shared_prompt off: the encoders see every row, as trl gives them (tests/test_shared_prompt.py has it on)
    settings = dict(max_completion_length=8, max_steps=1, seed=0, beta=0.04, shared_prompt=False)
    args = cpu_grpo_args(tmp_path / "out", **{**settings, **overrides})
    return VQAGRPOTrainer(model, args, grpo_dataset(videos), processor)


def loss_and_grads(trainer, inputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def test_distinct_rows_matches_exact_copies_only():
    x = torch.randn(3, 2, 4096)
    near = x[1].clone()
    near[0, 1] += 1.0  # outside the strided sample (every 8th value): only the exact check tells them apart
    batch = torch.stack([x[0], x[1], x[0], near, x[2], x[1]])
    first, inverse = distinct_rows(batch)
    assert first.tolist() == [0, 1, 3, 4]
    assert inverse.tolist() == [0, 1, 0, 2, 3, 1]
    assert torch.equal(batch[first][inverse], batch)
    assert distinct_rows(x) is None and distinct_rows(x[:1]) is None


def test_shuffle_groups_moves_whole_groups():
    batch = {
        "ids": torch.arange(12).view(6, 2),
        "rows": list("abcdef"),
        "count": torch.tensor(7),
        "none": None,
    }
    shuffled = shuffle_groups(batch, 2)
    groups = [tuple(shuffled["rows"][i : i + 2]) for i in range(0, 6, 2)]
    assert sorted(groups) == [("a", "b"), ("c", "d"), ("e", "f")]
    assert [int(r[0]) // 2 for r in shuffled["ids"]] == ["abcdef".index(r) for r in shuffled["rows"]]
    assert shuffled["count"] is batch["count"] and shuffled["none"] is None
    with pytest.raises(ValueError, match="whole groups"):
        shuffle_groups(batch, 4)


@pytest.mark.parametrize(
    ("checkpoint", "model_options"),
    [
        ("native", None),
        ("native", {"use_motion": True, "motion_width": 8}),
        ("remote", {"use_motion": True, "motion_width": 8}),
    ],
    ids=["native", "native-motion", "remote-motion"],
)
def test_loss_gradients_and_log_probs_equal_the_unshared_path(
    checkpoint, model_options, tiny_model_dir, remote_checkpoint_dir, noise_videos, tmp_path
):
    """fp32: the shared forward is the unshared one to 1e-6, vision tower gradients included."""
    model_dir = tiny_model_dir if checkpoint == "native" else remote_checkpoint_dir
    trainer = build_trainer(model_dir, noise_videos, tmp_path, model_options)
    encoders = trainer.shared_encoders
    assert len(encoders) == (4 if model_options else 2)  # policy and reference: vision tower (+ motion trunk)
    trainer.model.train()
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    inputs["advantages"] = torch.tensor([1.0, -0.5, 0.75, -1.0])  # a random model's rewards are all equal
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop
    completion = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)

    def ref_logps():
        with torch.no_grad():
            return trainer._get_per_token_logps_and_entropies(
                trainer.ref_model,
                completion,
                mask,
                inputs["completion_ids"].shape[1],
                pixel_values=inputs["pixel_values"],
                num_images=inputs["num_images"],
            )[0]

    seen = [e.rows_seen for e in encoders]
    encoded = [e.rows_encoded for e in encoders]
    shared_loss, shared_grads = loss_and_grads(trainer, inputs)
    shared_ref = ref_logps()
    # 4 rows = 2 videos × G 2: the towers encoded 2 × 4 frames of the 4 × 4 they were given
    tower = next(e for e in encoders if not isinstance(e.module, SlowFastFeatures))
    assert (tower.rows_seen - seen[0], tower.rows_encoded - encoded[0]) == (16, 8)

    for encoder in encoders:
        encoder.enabled = False
    loss, grads = loss_and_grads(trainer, inputs)
    torch.testing.assert_close(shared_loss, loss, atol=1e-6, rtol=0)
    torch.testing.assert_close(shared_ref, ref_logps(), atol=1e-6, rtol=0)
    assert shared_grads.keys() == grads.keys()
    assert any("vision" in name and g.abs().sum() > 0 for name, g in grads.items()), "vision tower is frozen"
    for name, grad in grads.items():
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize("temporal", [False, True])
def test_a_step_decodes_each_video_once_and_encodes_it_once_per_pass(
    temporal, answering_model_dir, noise_videos, tmp_path, monkeypatch
):
    """Generation batch of 8 rows (4 videos × G 2) in 2 micro-batches: 4 decodes, every pass ÷ G."""
    decoded = []
    load_frames = trainer_module.load_frames
    monkeypatch.setattr(
        trainer_module,
        "load_frames",
        lambda path, *a, **k: decoded.append(path) or load_frames(path, *a, **k),
    )
    trainer = build_trainer(
        answering_model_dir,
        noise_videos,
        tmp_path,
        gradient_accumulation_steps=2,
        temporal_consistency=temporal,
        temporal_perturbations=["reverse"],  # no repeated frames: exact counts
    )
    trainer.train()
    assert sorted(decoded) == sorted(path for path, _ in noise_videos)
    policy, reference = trainer.shared_encoders
    # policy: generation (+ the perturbed rollouts) and 2 loss micro-batches; reference: 2 chunks of 4 rows
    assert policy.rows_seen == 8 * NUM_FRAMES * (3 if temporal else 2) == 2 * policy.rows_encoded
    assert reference.rows_seen == 8 * NUM_FRAMES == 2 * reference.rows_encoded
    for inputs in trainer._buffered_inputs:  # whole groups: rows 2k and 2k + 1 are the same video
        frames = inputs["pixel_values"].view(4, NUM_FRAMES, -1)
        assert torch.equal(frames[0], frames[1]) and torch.equal(frames[2], frames[3])


def test_processor_preprocesses_each_frame_object_once(tiny_model_dir, monkeypatch):
    _, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(tiny_model_dir)).model_options()
    )
    tile = tile_size(processor)
    rng = np.random.default_rng(0)
    videos = [
        [Image.fromarray(rng.integers(0, 256, (tile, tile, 3), dtype=np.uint8)) for _ in range(NUM_FRAMES)]
        for _ in range(2)
    ]
    shared = [videos[0], videos[0], videos[1], videos[1]]  # G = 2 copies hold the same objects
    copies = [[frame.copy() for frame in frames] for frames in shared]
    conversations = [build_conversation(QUALITY_QUESTION, NUM_FRAMES)] * 4
    processed = []
    preprocess = processor.image_processor.preprocess
    monkeypatch.setattr(
        processor.image_processor,
        "preprocess",
        lambda images, *a, **k: (
            processed.append(len(make_flat_list_of_images(images))) or preprocess(images, *a, **k)
        ),
    )
    one = prepare_inputs(processor, conversations, shared)
    assert sum(processed) == 2 * NUM_FRAMES
    processed.clear()
    every = prepare_inputs(processor, conversations, copies)
    assert sum(processed) == 4 * NUM_FRAMES
    assert one.keys() == every.keys() and all(torch.equal(one[k], every[k]) for k in one)


def test_share_encoders_hooks_each_encoder_once(tiny_model_dir):
    model, _ = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(tiny_model_dir)).model_options()
    )
    encoders = share_encoders([model, None, model])
    assert [e.module for e in encoders] == [model.model.vision_tower]
    for encoder in encoders:
        encoder.remove()
    assert not model.model.vision_tower._forward_hooks and not model.model.vision_tower._forward_pre_hooks
