"""The vLLM rollout path (``use_vllm``) with our overrides: what reaches vLLM, one tile per frame, checks.

vllm needs a GPU and is not installed here, so trl's vLLM backend (``trainer.vllm_generation``, the object
that builds ``multi_modal_data`` and calls ``LLM.generate`` or the server) is replaced by a recorder with its
``generate`` signature; everything on our side and trl's trainer code around it runs for real.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.models.got_ocr2 import GotOcr2ImageProcessorPil

from tests.grpo_helpers import NUM_FRAMES, cpu_grpo_args, grpo_dataset
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import tokens_per_frame
from vqathinker.training.configs import VQAGRPOConfig, VQAModelConfig
from vqathinker.training.trainer import VQAGRPOTrainer


class RecordingVLLM:
    """Stands in for trl's ``VLLMGeneration``: records each call, answers one fixed completion per prompt."""

    def __init__(self, completion_ids: list[int]):
        self.completion_ids = completion_ids
        self.calls: list[dict] = []
        self.syncs = 0

    def sync_weights(self):
        self.syncs += 1

    def generate(self, prompts, images, num_generations, profiler=None):
        self.calls.append({"prompts": prompts, "images": images, "num_generations": num_generations})
        completions = [list(self.completion_ids) for _ in prompts]
        logprobs = [[[-0.5] for _ in ids] for ids in completions]
        return prompts, completions, logprobs, None


def make_args(tmp_path, **overrides) -> VQAGRPOConfig:
    return cpu_grpo_args(tmp_path / "out", **{"max_steps": 1, **overrides})


def test_rollouts_reach_vllm_with_the_frames_as_images(answering_model_dir, graded_videos, tmp_path):
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(answering_model_dir)).model_options()
    )
    args = make_args(tmp_path, temporal_consistency=True, temporal_perturbations=["reverse"])
    trainer = VQAGRPOTrainer(model, args, grpo_dataset(graded_videos), processor)
    answer = processor.tokenizer("<think>ok</think><answer>3.10</answer><|im_end|>", add_special_tokens=False)
    vllm = RecordingVLLM(answer["input_ids"])
    # what trl's __init__ sets up with use_vllm (it would start vLLM itself)
    trainer.use_vllm, trainer.vllm_generation, trainer._last_loaded_step = True, vllm, -1
    trainer.model.train()
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))

    rollouts, perturbed = vllm.calls  # the rollouts, then the temporal re-rollouts
    assert vllm.syncs == 1 and rollouts["num_generations"] == 2
    tile = processor.image_processor.size["height"]
    image_token = processor.image_token_id
    for ids, frames in zip(rollouts["prompts"], rollouts["images"], strict=True):
        assert len(frames) == NUM_FRAMES and all(f.size == (tile, tile) for f in frames)
        assert ids.count(image_token) == NUM_FRAMES * tokens_per_frame(processor)  # one tile per frame
    for copy, first in zip(rollouts["images"][1::2], rollouts["images"][::2], strict=True):
        assert all(a is b for a, b in zip(copy, first, strict=True))  # decoded once, shared by the copies
    for frames, reversed_frames in zip(rollouts["images"], perturbed["images"], strict=True):
        assert [f.tobytes() for f in reversed_frames] == [f.tobytes() for f in reversed(frames)]  # reordered

    # vLLM's log-probs feed the importance-sampling correction, against the (shared) policy forward
    assert "importance_sampling_ratio" in inputs and "old_per_token_logps" in inputs
    assert inputs["pixel_values"].shape[0] == 4 * NUM_FRAMES
    trainer.current_gradient_accumulation_steps = 1
    assert torch.isfinite(trainer.compute_loss(trainer.model, inputs))


def test_a_sampled_image_token_ends_the_rollout(answering_model_dir, graded_videos, tmp_path):
    """vLLM does not suppress <IMG_CONTEXT> as trl's generate does: the loss forward must still run."""
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(answering_model_dir)).model_options()
    )
    trainer = VQAGRPOTrainer(model, make_args(tmp_path), grpo_dataset(graded_videos), processor)
    text = processor.tokenizer("<think>ok</think><answer>", add_special_tokens=False)["input_ids"]
    vllm = RecordingVLLM([*text, processor.image_token_id, *text])
    trainer.use_vllm, trainer.vllm_generation, trainer._last_loaded_step = True, vllm, -1
    trainer.model.train()
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    eos = processor.tokenizer.eos_token_id
    for ids, mask in zip(inputs["completion_ids"], inputs["completion_mask"], strict=True):
        assert ids[mask.bool()].tolist() == [*text, eos]
    assert torch.isnan(inputs["sampling_per_token_logps"][:, len(text)]).all()  # no IS correction there
    trainer.current_gradient_accumulation_steps = 1
    assert torch.isfinite(trainer.compute_loss(trainer.model, inputs))


def test_vllm_with_the_motion_branch_is_refused(tiny_model_dir, graded_videos, tmp_path):
    model, processor = load_model_and_processor(
        VQAModelConfig(
            model_name_or_path=str(tiny_model_dir), use_motion=True, motion_width=8
        ).model_options()
    )
    with pytest.raises(ValueError, match="no implementation of it"):
        VQAGRPOTrainer(model, make_args(tmp_path, use_vllm=True), grpo_dataset(graded_videos), processor)


def test_vllm_context_must_hold_frames_text_and_completion(tiny_model_dir, graded_videos, tmp_path):
    with pytest.raises(ValueError, match="leaves no room for the prompt"):
        make_args(tmp_path, use_vllm=True, vllm_max_model_length=16)
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(tiny_model_dir)).model_options()
    )
    args = make_args(tmp_path, use_vllm=True, vllm_max_model_length=NUM_FRAMES * tokens_per_frame(processor))
    with pytest.raises(ValueError, match=rf"with {NUM_FRAMES} frames.*exceeds vllm_max_model_length"):
        VQAGRPOTrainer(model, args, grpo_dataset(graded_videos), processor)


@pytest.mark.parametrize("tile", [56, 448])
def test_dynamic_tiling_leaves_a_tile_size_frame_in_one_tile(tile):
    """vLLM's colocate mode tiles with InternVL's defaults (crop_to_patches on, up to 12 tiles, thumbnail).

    A square image of exactly the tile size picks the 1 × 1 grid, and the thumbnail is only added to grids
    of several tiles: one tile, the same pixels as with tiling off, so the prompt trl tokenised holds.
    """
    tiling = GotOcr2ImageProcessorPil(
        size={"height": tile, "width": tile},
        crop_to_patches=True,
        min_patches=1,
        max_patches=12,
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )
    rng = np.random.default_rng(0)
    frame = Image.fromarray(rng.integers(0, 256, (tile, tile, 3), dtype=np.uint8))
    tiled = tiling(images=[frame], return_tensors="pt")
    single = tiling(images=[frame], crop_to_patches=False, return_tensors="pt")
    assert tiled["num_patches"].tolist() == [1]
    assert tiling.get_number_of_image_patches(tile, tile, {}) == 1  # what vLLM counts tokens with
    torch.testing.assert_close(tiled["pixel_values"], single["pixel_values"])
    wide = Image.fromarray(rng.integers(0, 256, (tile, tile * 16 // 9, 3), dtype=np.uint8))
    assert tiling(images=[wide], return_tensors="pt")["num_patches"].item() > 1  # hence frames at tile size
