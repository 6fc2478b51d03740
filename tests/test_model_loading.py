"""Loading options of the InternVL loader: freezing, LoRA, dtype, attention, checkpointing, errors, sizes."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from PIL import Image

from vqathinker.cli import main as cli_main
from vqathinker.data.prompts import build_conversation
from vqathinker.model.loading import choose_attn_implementation, load_model_and_processor
from vqathinker.model.processor import VideoInternVLProcessor, prepare_inputs, tokens_per_frame
from vqathinker.model.shapes import count_parameters, internvl3_config, meta_internvl3
from vqathinker.training.configs import VQAModelConfig

PARTS = {
    "vision": "model.vision_tower.",
    "projector": "model.multi_modal_projector.",
    "llm": ("model.language_model.", "lm_head."),
}


def load(path, **options):
    return load_model_and_processor(VQAModelConfig(model_name_or_path=str(path), **options).model_options())


def trainable(model) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


def batch_for(processor, num_frames=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    frames = [
        Image.fromarray(torch.randint(0, 256, (40, 64, 3), generator=generator, dtype=torch.uint8).numpy())
        for _ in range(num_frames)
    ]
    return prepare_inputs(processor, [build_conversation("How good is it?", num_frames)], [frames])


@pytest.mark.parametrize("part", ["vision", "projector", "llm"])
def test_each_freeze_option_freezes_exactly_its_part(tiny_model_dir, part):
    model, _ = load(tiny_model_dir, **{f"freeze_{'vision_tower' if part == 'vision' else part}": True})
    names = {name for name, _ in model.named_parameters()}
    frozen = {name for name in names if name.startswith(PARTS[part])}
    assert frozen and trainable(model) == names - frozen


def test_lora_trains_only_adapters_on_the_llm_linear_layers(tiny_model_dir):
    model, _ = load(tiny_model_dir, use_peft=True, lora_r=4, lora_alpha=8)
    names = trainable(model)
    assert names and all(".lora_A." in name or ".lora_B." in name for name in names)
    assert all(".language_model." in name for name in names)
    layers = {name.split(".lora_")[0].rsplit(".", 1)[1] for name in names}
    assert layers == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    # LoRA B starts at zero: the wrapped model computes what the base model does.
    base, processor = load(tiny_model_dir)
    batch = batch_for(processor)
    torch.testing.assert_close(model(**batch).logits, base(**batch).logits)


def test_lora_with_chosen_targets_and_modules_to_save(tiny_model_dir):
    model, _ = load(
        tiny_model_dir,
        use_peft=True,
        lora_target_modules=["q_proj", "v_proj"],
        lora_modules_to_save=["multi_modal_projector"],
    )
    names = trainable(model)
    adapters = {name for name in names if ".lora_" in name}
    assert {name.split(".lora_")[0].rsplit(".", 1)[1] for name in adapters} == {"q_proj", "v_proj"}
    assert names - adapters and all("multi_modal_projector" in name for name in names - adapters)


def test_save_load_round_trip_gives_identical_logits(tiny_model_dir, tmp_path):
    model, processor = load(tiny_model_dir)
    with torch.no_grad():
        for param in model.model.multi_modal_projector.parameters():
            param.add_(0.01)  # a trained checkpoint differs from the tiny one
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again, processor_again = load(tmp_path)
    assert isinstance(processor_again, VideoInternVLProcessor)
    assert processor_again.num_frames == processor.num_frames
    batch, batch_again = batch_for(processor), batch_for(processor_again)
    assert all(torch.equal(batch[key], batch_again[key]) for key in batch)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, again(**batch_again).logits)


def test_dtype_gradient_checkpointing_and_attention(tiny_model_dir, caplog):
    with caplog.at_level(logging.INFO, logger="vqathinker.model.loading"):
        model, processor = load_model_and_processor(
            VQAModelConfig(model_name_or_path=str(tiny_model_dir), dtype="bfloat16").model_options(),
            gradient_checkpointing=True,
        )
    expected = "flash_attention_2" if choose_attn_implementation(None) == "flash_attention_2" else "sdpa"
    assert f"attention implementation: {expected}" in caplog.text
    assert model.config._attn_implementation == expected
    assert {param.dtype for param in model.parameters()} == {torch.bfloat16}
    assert model.is_activation_checkpointing
    model.train()
    model(**batch_for(processor)).logits.float().mean().backward()
    assert model.lm_head.weight.grad is not None
    assert choose_attn_implementation("eager") == "eager"


def test_clear_errors_for_wrong_paths_and_checkpoints(tiny_model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load(tmp_path / "missing")
    with pytest.raises(ValueError, match="no config.json"):
        load(tmp_path)
    qwen = tmp_path / "qwen"
    qwen.mkdir()
    (qwen / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(ValueError, match="not an InternVL checkpoint.*'qwen2'"):
        load(qwen)
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"model_type": "internvl_chat"}))
    with pytest.raises(ValueError, match="remote-code InternVL"):
        load(remote)


def test_input_errors(tiny_model_dir):
    _, processor = load(tiny_model_dir)
    frame = Image.new("RGB", (32, 32))
    with pytest.raises(ValueError, match="2 image blocks but 1 frames"):
        prepare_inputs(processor, [build_conversation("q", 2)], [[frame]])
    with pytest.raises(ValueError, match="list of frames in `images`"):
        processor(text=["<video>"], videos=[[frame]])


def test_make_tiny_model_command(tmp_path):
    assert cli_main(["make-tiny-model", str(tmp_path / "tiny"), "--seed", "3", "--num_frames", "4"]) == 0
    model, processor = load(tmp_path / "tiny")
    assert processor.num_frames == 4
    assert tokens_per_frame(processor) == model.config.image_seq_length == 16


@pytest.mark.parametrize(("size", "billions"), [("1B", 0.94), ("2B", 2.09), ("8B", 7.94)])
def test_internvl3_shapes_on_meta_device(size, billions):
    model = meta_internvl3(size)
    assert {param.device.type for param in model.parameters()} == {"meta"}
    counts = count_parameters(model)
    assert counts["total"] == pytest.approx(billions * 1e9, rel=0.01)
    assert counts["vision_tower"] == pytest.approx(0.304e9, rel=0.01)
    assert counts["total"] == counts["vision_tower"] + counts["projector"] + counts["language_model"]
    config = internvl3_config(size)
    grid = config.vision_config.image_size[0] // config.vision_config.patch_size[0]
    assert grid**2 * config.downsample_ratio**2 == config.image_seq_length == 256
    with pytest.raises(ValueError, match="unknown InternVL3 size"):
        internvl3_config("4B")
