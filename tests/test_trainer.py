"""VQAGRPOTrainer on the tiny InternVL and real mp4s: short training runs and what trl alone would miss."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from datasets import Dataset

from tests.grpo_helpers import NUM_FRAMES, TWO_STEPS, cpu_grpo_args, grpo_dataset
from vqathinker.data.prompts import QUALITY_QUESTION
from vqathinker.model.loading import VISION_PREFIX, load_model_and_processor
from vqathinker.rewards import completion_text, fidelity_rank_rewards, parse_score
from vqathinker.training.configs import VQAGRPOConfig, VQAModelConfig
from vqathinker.training.trainer import VQAGRPOTrainer


def make_dataset(videos) -> Dataset:
    return grpo_dataset(videos, dataset_name="test", question=QUALITY_QUESTION)


def make_args(tmp_path, **overrides) -> VQAGRPOConfig:
    return cpu_grpo_args(tmp_path / "out", **{**TWO_STEPS, "activation_checkpointing": False, **overrides})


def make_trainer(model_dir, videos, tmp_path, model_args=None, **overrides) -> VQAGRPOTrainer:
    model, processor = load_model_and_processor(
        (model_args or VQAModelConfig(model_name_or_path=str(model_dir))).model_options()
    )
    return VQAGRPOTrainer(
        model=model,
        args=make_args(tmp_path, **overrides),
        train_dataset=make_dataset(videos),
        processing_class=processor,
    )


def train_logs(trainer) -> list[dict]:
    trainer.train()
    return [entry for entry in trainer.state.log_history if "loss" in entry]


def test_two_steps_train_with_frames_and_named_rewards(answering_model_dir, graded_videos, tmp_path):
    trainer = make_trainer(answering_model_dir, graded_videos, tmp_path, log_completions=True)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    logs = train_logs(trainer)
    assert len(logs) == 2
    for entry in logs:
        assert entry["data/decode_failures"] == 0
        assert {"rewards/rank/mean", "rewards/reg/mean", "rewards/format/mean"} <= entry.keys()
        assert np.isfinite(entry["loss"])
    assert any(entry["rewards/format/mean"] > 0 for entry in logs)  # the warm-started model answers
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith(VISION_PREFIX) for n in changed), "the vision tower did not learn"
    assert len(list((tmp_path / "out" / "completions").glob("*.parquet"))) == 2  # log_completions
    assert not trainer._logs["images"]  # frames are not kept for logging by default


def test_two_steps_with_lora(answering_model_dir, graded_videos, tmp_path):
    model_args = VQAModelConfig(model_name_or_path=str(answering_model_dir), use_peft=True, lora_r=4)
    trainer = make_trainer(answering_model_dir, graded_videos, tmp_path, model_args=model_args)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    logs = train_logs(trainer)
    assert len(logs) == 2 and all(np.isfinite(entry["loss"]) for entry in logs)
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)


def first_generation(trainer) -> dict[str, np.ndarray]:
    """The rewards trl logs (those its advantages are computed from) for the first generation batch."""
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    trainer._generate_and_score_completions(batch)
    return {name: np.array(values) for name, values in trainer._logs["rewards"].items()}


def test_temporal_bonus_reaches_the_rewards_advantages_are_computed_from(
    answering_model_dir, graded_videos, tmp_path, monkeypatch
):
    import vqathinker.training.temporal as temporal_module

    pattern = np.array([0.3, 0.0, 0.0, 0.3])  # one bonus per rollout of the batch (2 videos × G = 2)
    calls, rewards = [], []
    for scale in (0.0, 1.0):  # the same seeded rollouts, without and with a bonus

        def bonus(true, perturbed, *, compare, scale=scale, **kwargs):
            calls.append((compare, len(true[compare]), len(perturbed[compare])))
            return pattern * scale

        monkeypatch.setattr(temporal_module, "temporal_consistency_bonus", bonus)
        trainer = make_trainer(answering_model_dir, graded_videos, tmp_path, temporal_consistency=True)
        rewards.append(first_generation(trainer))
    assert calls[:2] == [("rank", 4, 4), ("reg", 4, 4)]  # the perturbed re-rollouts were scored by name
    np.testing.assert_allclose(rewards[1]["reg"] - rewards[0]["reg"], pattern, atol=1e-6)
    np.testing.assert_allclose(rewards[1]["rank"] - rewards[0]["rank"], pattern, atol=1e-6)
    np.testing.assert_array_equal(rewards[1]["format"], rewards[0]["format"])  # not a compared reward


def test_two_steps_with_temporal_consistency(answering_model_dir, graded_videos, tmp_path):
    trainer = make_trainer(answering_model_dir, graded_videos, tmp_path, temporal_consistency=True)
    logs = train_logs(trainer)
    assert len(logs) == 2
    for entry in logs:
        assert entry["temporal/seconds"] > 0
        for name in ("rank", "reg"):
            assert 0 <= entry[f"temporal/{name}/bonus_rate"] <= 1
            assert np.isfinite(entry[f"temporal/{name}/perturbed_mean"])
    # the perturbed rollouts are scored, never trained on: the logged completions are the true ones only
    assert len(trainer._logs["completion"]) == trainer.args.generation_batch_size


def test_frames_reach_generation_and_the_loss_forward(answering_model_dir, graded_videos, tmp_path):
    """trl drops video blocks from the loss silently; frames passed as images must reach both passes."""
    trainer = make_trainer(answering_model_dir, graded_videos, tmp_path, beta=1.0)
    vision_batches = []
    hook = trainer.model.model.vision_tower.register_forward_hook(
        lambda module, args, output: vision_batches.append(output.last_hidden_state.shape[0])
    )
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    inputs = trainer._prepare_inputs(batch)
    rows = trainer.args.per_device_train_batch_size
    assert inputs["pixel_values"].shape[0] == rows * NUM_FRAMES  # G copies × frames, one tile each
    # generation saw the frames, each video's once (shared_prompt prefills each prompt once)
    assert vision_batches and sum(vision_batches) >= rows * NUM_FRAMES // trainer.num_generations
    vision_batches.clear()

    inputs["advantages"] = torch.tensor([1.0, 0.5, -1.0, 0.25])
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop
    loss = trainer.compute_loss(trainer.model, inputs)
    # the loss forward ran the vision tower on the frames, each video's once (shared_prompt packs its G rows)
    assert sum(vision_batches) == rows * NUM_FRAMES // trainer.num_generations
    loss.backward()
    grads = [p.grad for n, p in trainer.model.named_parameters() if n.startswith(VISION_PREFIX)]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "no gradient reaches the vision tower"
    hook.remove()

    with torch.no_grad():
        same = trainer.compute_loss(trainer.model, inputs)
        noise = torch.randn(inputs["pixel_values"].shape, generator=torch.Generator().manual_seed(0))
        changed = trainer.compute_loss(trainer.model, dict(inputs, pixel_values=3 * noise))
    assert torch.equal(same, loss.detach())
    # on-policy, the clipped ratio term is constant in value; the KL to the reference (computed on the true
    # frames) is zero on the true frames and grows when the frames change
    assert changed > same, "the loss does not depend on the frames"


def test_each_video_is_decoded_once_per_generation_batch(answering_model_dir, graded_videos, tmp_path):
    trainer = make_trainer(answering_model_dir, graded_videos, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    rows = trainer._attach_frames(batch)
    for a, b in zip(rows[::2], rows[1::2], strict=True):  # G = 2 consecutive copies share one frame list
        assert a["video"] == b["video"] and a["images"] is b["images"]
    assert len({id(row["images"]) for row in rows}) == len(rows) // 2


def test_rank_reward_is_recomputed_over_the_batch_without_failed_videos(
    answering_model_dir, graded_videos, tmp_path
):
    # 2 accumulation steps: one generation batch of 4 videos, trained on 2 per micro-batch; one cannot decode
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    trainer = make_trainer(
        answering_model_dir,
        [(str(broken), 3.0), *graded_videos[:3]],
        tmp_path,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
    )
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    assert len({row["video"] for row in batch}) == 4
    trainer._generate_and_score_completions(batch)
    scores = [parse_score(completion_text(c)) for c in trainer._logs["completion"]]
    preds = np.array([np.nan if s is None else s for s in scores]).reshape(4, 2)
    mos = np.array([row["mos"] for row in batch[::2]])
    ok = np.array([row["video"] != str(broken) for row in batch[::2]])
    expected = np.full((4, 2), np.nan)
    expected[ok] = fidelity_rank_rewards(preds[ok], mos[ok])  # the broken video is nobody's peer
    logged = np.array(trainer._logs["rewards"]["rank"]).reshape(4, 2)
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
    assert np.isnan(logged[~ok]).all() and np.isfinite(logged[ok]).all()


def test_undecodable_video_is_skipped_and_logged(answering_model_dir, graded_videos, tmp_path, caplog):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    videos = [(str(broken), 3.0), *graded_videos[:3]]
    trainer = make_trainer(answering_model_dir, videos, tmp_path)
    with caplog.at_level(logging.WARNING, logger="vqathinker.training.trainer"):
        logs = train_logs(trainer)
    assert len(logs) == 2
    assert sum(entry["data/decode_failures"] for entry in logs) >= 1
    assert "broken.mp4" in caplog.text
    # its rollouts carry NaN rewards and a zero advantage; the other video's are finite
    trainer = make_trainer(answering_model_dir, [(str(broken), 3.0), graded_videos[0]], tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    first_generation(trainer)
    broken_rows = np.array([row["video"] == str(broken) for row in batch])
    assert broken_rows.sum() == 2
    for name in ("reg", "format"):  # (rank: the one good video has no peer, NaN too)
        rewards = np.array(trainer._logs["rewards"][name])
        assert np.isnan(rewards[broken_rows]).all() and np.isfinite(rewards[~broken_rows]).all()
    assert np.all(np.array(trainer._logs["advantages"])[broken_rows] == 0)


def test_every_video_failing_stops_the_run(answering_model_dir, tmp_path):
    videos = [(str(tmp_path / f"missing{i}.mp4"), 3.0) for i in range(4)]
    trainer = make_trainer(answering_model_dir, videos, tmp_path)
    with pytest.raises(RuntimeError, match="none of the 2 videos"):
        trainer.train()


def test_context_length_is_checked(answering_model_dir, graded_videos, tmp_path):
    with pytest.raises(ValueError, match="max_position_embeddings"):
        make_trainer(answering_model_dir, graded_videos, tmp_path, max_completion_length=100_000)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"per_device_train_batch_size": 3, "num_generations": 2}, "(multiple|divisible by) num_generations"),
        ({"reward_funcs": ["rank", "speed"]}, "unknown reward"),
        ({"reward_weights": [1.0]}, "one weight per reward_funcs"),
        ({"reward_kwargs": {"reg": {"sigma": 0.3, "width": 2}}}, "no parameter"),
        ({"temporal_consistency": True, "temporal_perturbations": ["blur"]}, "temporal_perturbations"),
        (
            {
                "temporal_consistency": True,
                "temporal_reward_names": ["format", "rank"],
                "reward_funcs": ["rank"],
            },
            "must be in",
        ),
        ({"remove_unused_columns": True}, "remove_unused_columns"),
    ],
)
def test_config_validation(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_args(tmp_path, **overrides)
