"""The tiny InternVL end to end on frames decoded from real encoded mp4s, and the loading options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.media import write_video
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import prepare_inputs, tile_size, tokens_per_frame
from vqathinker.model.tiny import REASONING_TAGS, make_tiny_model
from vqathinker.training.configs import VQAModelConfig


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model_and_processor(VQAModelConfig(model_name_or_path=str(tiny_model_dir)).model_options())


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Frames of two real h264 clips of different sizes (6 and 4 frames sampled)."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    clips = []
    for name, (w, h), n in (("a.mp4", (64, 48), 6), ("b.mp4", (96, 54), 4)):
        arrays = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(12)]
        clips.append(load_frames(write_video(root / name, arrays), n, size=None))
    return clips


def test_forward_backward_generate_on_video_frames(loaded, videos):
    model, processor = loaded
    conversations = [build_conversation(QUALITY_QUESTION, len(f)) for f in videos]
    batch = prepare_inputs(processor, conversations, videos)
    assert batch["pixel_values"].shape == (10, 3, tile_size(processor), tile_size(processor))
    image_tokens = (batch["input_ids"] == model.config.image_token_id).sum(dim=1)
    assert image_tokens.tolist() == [6 * tokens_per_frame(processor), 4 * tokens_per_frame(processor)]
    assert tokens_per_frame(processor) == 16

    out = model(**batch)
    out.logits[:, -1].logsumexp(-1).sum().backward()
    vision_grad = model.model.vision_tower.embeddings.patch_embeddings.projection.weight.grad
    assert vision_grad is not None and vision_grad.abs().sum() > 0

    generated = model.generate(**batch, max_new_tokens=8, do_sample=True)
    assert generated.shape[0] == 2 and generated.shape[1] > batch["input_ids"].shape[1]


def test_trl_processor_calls_give_one_tile_per_frame(loaded, videos):
    """The two ways trl 1.16 calls the processor: chat template with PIL blocks, and text + images."""
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    model, processor = loaded
    frames = videos[1]  # 16:9 frames: the InternVL default tiling cuts each into 2 tiles + a thumbnail
    conversation = build_conversation(QUALITY_QUESTION, len(frames))
    ours = prepare_inputs(processor, [conversation], [frames])

    filled = prepare_multimodal_messages(conversation, images=frames)
    via_template = processor.apply_chat_template(
        conversation=[filled], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    text = apply_chat_template({"prompt": conversation}, processor)["prompt"]
    via_call = processor(images=[frames], text=[text], padding=True, return_tensors="pt")
    for other in (via_template, via_call):
        assert torch.equal(torch.as_tensor(other["input_ids"]), ours["input_ids"])
        assert torch.equal(torch.as_tensor(np.asarray(other["pixel_values"])), ours["pixel_values"])
    assert ours["pixel_values"].shape[0] == len(frames)
    tiled = processor(
        images=[frames], text=[text], images_kwargs={"crop_to_patches": True, "max_patches": 12}
    )
    assert len(tiled["pixel_values"]) > len(frames)


def test_tokenizer_digits_tags_and_chat(loaded):
    _, processor = loaded
    tokenizer = processor.tokenizer
    tokens = tokenizer.tokenize("<think>sharp 3.75</think><answer>3.75</answer>")
    assert tokens[:1] == ["<think>"] and tokens[-5:-1] == ["3", ".", "7", "5"]
    for text in [*list("0123456789."), *REASONING_TAGS]:
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 1, text
    completion = "<think>clear</think><answer>4.20</answer>"
    ids = tokenizer(completion + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == completion
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id is not None


def test_same_seed_same_files(tiny_model_dir, tmp_path):
    again = make_tiny_model(tmp_path / "again", seed=0)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
    other = make_tiny_model(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (tiny_model_dir / "model.safetensors").read_bytes()
