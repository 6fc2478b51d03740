"""shared_prompt in generation: each distinct prompt is prefilled once and its rollouts decoded together."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import GenerationConfig
from trl.data_utils import prepare_multimodal_messages

from tests.grpo_helpers import NUM_FRAMES
from tests.shared_prompt_helpers import build_trainer
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import prepare_inputs, tile_size
from vqathinker.model.shared_prefill import shared_prefill
from vqathinker.training.configs import VQAModelConfig


class Reads:
    """Rows × positions read by the language model's decoder, and frames by the vision tower."""

    def __init__(self, model):
        self.positions, self.frames, self.calls = 0, 0, []
        modules = list(model.modules())
        decoder = next(m for m in modules if hasattr(m, "layers") and hasattr(m, "embed_tokens"))
        tower = next(
            m for name, m in model.named_modules() if name.endswith(("vision_tower", "vision_model"))
        )
        self.handles = [
            decoder.register_forward_pre_hook(self._decoder, with_kwargs=True),
            tower.register_forward_pre_hook(self._tower, with_kwargs=True),
        ]

    def _decoder(self, module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        x = kwargs["input_ids"] if x is None else x
        self.positions += x.shape[0] * x.shape[1]
        self.calls.append(tuple(x.shape[:2]))

    def _tower(self, module, args, kwargs):
        self.frames += (args[0] if args else kwargs["pixel_values"]).shape[0]

    def remove(self):
        for handle in self.handles:
            handle.remove()


def video_batch(processor, group: int):
    """2 videos × ``group`` copies (the copies share their frame objects), prompts of two lengths."""
    rng = np.random.default_rng(0)
    tile = tile_size(processor)
    videos = [
        [Image.fromarray(rng.integers(0, 256, (tile, tile, 3), dtype=np.uint8)) for _ in range(NUM_FRAMES)]
        for _ in range(2)
    ]
    questions = [QUALITY_QUESTION, "Rate it."]
    conversations = [build_conversation(questions[v], NUM_FRAMES) for v in range(2) for _ in range(group)]
    frames = [videos[v] for v in range(2) for _ in range(group)]
    return prepare_inputs(processor, conversations, frames)


def settings(model, processor) -> dict:
    return dict(
        image_token_id=processor.image_token_id,
        tokens_per_tile=processor.image_seq_length,
        motion_token_id=getattr(model.config, "motion_token_id", None),
    )


@pytest.mark.parametrize(
    ("checkpoint", "options"),
    [
        ("native", {}),
        ("native", {"use_motion": True, "motion_width": 8}),
        ("remote", {}),
        ("remote", {"use_motion": True, "motion_width": 8}),
        ("native", {"use_peft": True, "lora_r": 4, "lora_alpha": 8}),
    ],
    ids=["native", "native-motion", "remote", "remote-motion", "lora"],
)
def test_greedy_generation_is_generate_with_one_prefill_per_prompt(
    checkpoint, options, tiny_model_dir, remote_checkpoint_dir
):
    """Greedy: the same tokens and step scores (1e-5) as plain generate; prefill and frames once per video."""
    model_dir = tiny_model_dir if checkpoint == "native" else remote_checkpoint_dir
    torch.manual_seed(0)
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(model_dir), dtype="float32", **options).model_options()
    )
    model.eval()
    group = 3
    batch = video_batch(processor, group)
    assert bool((batch["attention_mask"][:, 0] == 0).any())  # left padding
    tokenizer = processor.tokenizer
    config = GenerationConfig(
        max_new_tokens=10,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        output_scores=True,
        return_dict_in_generate=True,
    )
    results = []
    for shared in (False, True):
        reads = Reads(model)
        with shared_prefill(model, **settings(model, processor)) if shared else contextlib.nullcontext():
            results.append((model.generate(**batch, generation_config=config), reads))
        reads.remove()
    (plain, plain_reads), (shared, shared_reads) = results
    assert torch.equal(shared.sequences, plain.sequences)
    assert len(shared.scores) == len(plain.scores) == 10
    for a, b in zip(shared.scores, plain.scores, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    rows, width = batch["input_ids"].shape
    # plain: every row's prompt, then one token per row and step; shared: 2 prompts, then 2 packed rows of 3
    assert plain_reads.calls == [(rows, width)] + [(rows, 1)] * 9
    assert shared_reads.calls == [(2, width)] + [(2, group)] * 9
    assert plain_reads.frames == rows * NUM_FRAMES and shared_reads.frames == 2 * NUM_FRAMES


def test_sampling_draws_what_generate_draws(tiny_model_dir):
    """Sampling (temperature, top-k, top-p, min_new_tokens): the same seed gives generate's rollouts."""
    torch.manual_seed(0)
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(tiny_model_dir), dtype="float32").model_options()
    )
    batch = video_batch(processor, 4)
    config = GenerationConfig(
        max_new_tokens=12, min_new_tokens=4, do_sample=True, temperature=0.9, top_k=50, top_p=0.95
    )
    config.pad_token_id = processor.tokenizer.pad_token_id
    config.eos_token_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    runs = []
    for shared in (False, True):
        torch.manual_seed(1)
        with shared_prefill(model, **settings(model, processor)) if shared else contextlib.nullcontext():
            runs.append(model.generate(**batch, generation_config=config))
    plain, shared = runs
    assert torch.equal(shared, plain)
    completions = plain[:, batch["input_ids"].shape[1] :]
    for video in range(2):
        rows = completions[4 * video : 4 * video + 4]
        assert len({tuple(row.tolist()) for row in rows}) > 1, "the copies of a prompt drew one sample"


def test_trainer_rollouts_prefill_each_video_once(answering_model_dir, graded_videos, tmp_path):
    """transformers' generate in the trainer: 2 videos × G 2 prefilled as 2 prompts, frames encoded once."""
    trainer = build_trainer(answering_model_dir, graded_videos, tmp_path, share_vision=False)
    del trainer._generate_single_turn  # the real rollouts
    torch.manual_seed(0)
    rows = trainer._attach_frames(next(iter(trainer.get_train_dataloader())))
    prompts = [prepare_multimodal_messages(row["prompt"], images=row["images"]) for row in rows]
    prompt_ids, images, fields = trainer._tokenize_prompts(prompts)
    reads = {}
    for shared in (True, False):
        trainer.args.shared_prompt = shared
        counter = Reads(trainer.model)
        completion_ids, _ = trainer._generate_single_turn(prompt_ids, images, fields, trainer.num_generations)
        counter.remove()
        reads[shared] = counter
        assert len(completion_ids) == 4 and all(ids for ids in completion_ids)
    assert reads[True].frames == 2 * NUM_FRAMES and reads[False].frames == 4 * NUM_FRAMES
    width = max(len(ids) for ids in prompt_ids)
    assert reads[False].calls[0] == (4, width)  # every copy prefilled
    assert reads[True].calls[:2] == [(2, width), (2, 2)]  # 2 prompts, then 2 packed rows of G tokens
