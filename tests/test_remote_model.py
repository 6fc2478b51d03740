"""vqathinker's chat model in a (tiny) remote-code InternVL checkpoint, on frames of real encoded mp4s."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from tests.media import counter_frames, write_video
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.patching import MODELING_FILE, is_vqathinker_modeling
from vqathinker.model.processor import prepare_inputs, tile_size, tokens_per_frame
from vqathinker.training.configs import VQAModelConfig


def load(path, **options):
    return load_model_and_processor(VQAModelConfig(model_name_or_path=str(path), **options).model_options())


@pytest.fixture(scope="module")
def loaded(remote_checkpoint_dir):
    return load(remote_checkpoint_dir)


@pytest.fixture(scope="module")
def frames(tmp_path_factory, loaded):
    """Frames of two real h264 clips (3 and 2 frames sampled), at the model's tile size."""
    folder = tmp_path_factory.mktemp("remote_videos")
    size = tile_size(loaded[1])
    clips = [
        write_video(folder / "a.mp4", counter_frames(12, width=64, height=48, step=5), fps=12),
        write_video(folder / "b.mp4", counter_frames(8, width=48, height=64, step=11), fps=8),
    ]
    return [load_frames(clip, n, size=size) for clip, n in zip(clips, (3, 2), strict=True)]


def batch(processor, frames):
    return prepare_inputs(processor, [build_conversation(QUALITY_QUESTION, len(f)) for f in frames], frames)


def test_loads_as_remote_code_with_the_checkpoint_parameter_names(remote_checkpoint_dir, loaded):
    model, processor = loaded
    assert type(model).__name__ == "InternVLChatModel"
    assert type(model).__module__.startswith("transformers_modules.")  # the checkpoint's (patched) code
    with safe_open(str(remote_checkpoint_dir / "model.safetensors"), framework="pt") as stored:
        names = set(stored.keys())
        state = model.state_dict()
        assert names == set(state)
        assert all(torch.equal(stored.get_tensor(name), state[name]) for name in names)
    assert {name.split(".")[0] for name in names} == {"vision_model", "mlp1", "language_model"}
    assert tokens_per_frame(processor) == model.num_image_token == 16 and tile_size(processor) == 56
    assert model.config.image_token_id == processor.image_token_id
    # the system message of the checkpoint's conversation template, as the original chat() sends it
    text = processor.apply_chat_template(
        build_conversation("Q?", 1), add_generation_prompt=True, tokenize=False
    )
    assert text.startswith("<|im_start|>system\nYou are a tiny test model.<|im_end|>\n<|im_start|>user\n")


def test_batched_forward_matches_one_video_at_a_time(loaded, frames):
    """Left padding and the order of the tiles: each prompt gets its own frames in a batch."""
    model, processor = loaded
    inputs = batch(processor, frames)
    assert inputs["pixel_values"].shape == (5, 3, 56, 56)
    with torch.no_grad():
        together = model(**inputs).logits[:, -1]
        alone = [model(**batch(processor, [f])).logits[0, -1] for f in frames]
    for i, logits in enumerate(alone):
        torch.testing.assert_close(together[i], logits, atol=1e-4, rtol=1e-4)


def test_frames_change_the_output(loaded, frames):
    model, processor = loaded
    inputs = batch(processor, frames[:1])
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
        inputs["pixel_values"] = inputs["pixel_values"].flip(0)
        shuffled = model(**inputs).logits[0, -1]
    assert not torch.allclose(logits, shuffled)


def test_padding_tiles_are_dropped_by_image_flags(loaded, frames):
    model, processor = loaded
    inputs = batch(processor, frames)
    with torch.no_grad():
        plain = model(**inputs).logits
        padded = dict(inputs)
        padded["pixel_values"] = torch.cat([inputs["pixel_values"], torch.randn(1, 3, 56, 56)])
        padded["image_flags"] = torch.tensor([1, 1, 1, 1, 1, 0]).unsqueeze(-1)
        torch.testing.assert_close(model(**padded).logits, plain)


def test_generate_returns_prompt_then_completion(loaded, frames):
    model, processor = loaded
    inputs = batch(processor, frames)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        again = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    prompt_length = inputs["input_ids"].shape[1]
    assert out.shape[0] == 2 and out.shape[1] > prompt_length
    assert torch.equal(out[:, :prompt_length], inputs["input_ids"])
    assert torch.equal(out, again)
    # the first generated token is the argmax of the forward pass
    with torch.no_grad():
        first = model(**inputs).logits[:, -1].argmax(-1)
    assert torch.equal(out[:, prompt_length], first)


def test_trl_fused_log_probs_use_the_multimodal_backbone(remote_checkpoint_dir, frames):
    """trl 1.16 scores completions through ``model.base_model`` (the backbone) and the LM head."""
    from trl.trainer.utils import add_fused_lm_head

    model, processor = load(remote_checkpoint_dir)
    inputs = batch(processor, frames)
    labels = inputs["input_ids"].clone()
    labels[:, :-5] = -100
    with torch.no_grad():
        logits = model(**inputs).logits
        expected = torch.log_softmax(logits[:, :-1], -1).gather(-1, inputs["input_ids"][:, 1:, None])[..., 0]
        add_fused_lm_head(model)
        fused = model(**inputs, labels=labels, fused_lm_head=True).log_probs
    torch.testing.assert_close(fused[:, -4:], expected[:, -4:], atol=1e-4, rtol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients(remote_checkpoint_dir, frames):
    grads = []
    for checkpointing in (False, True):
        model, processor = load_model_and_processor(
            VQAModelConfig(model_name_or_path=str(remote_checkpoint_dir)).model_options(),
            gradient_checkpointing=checkpointing,
        )
        model.train()
        inputs = batch(processor, frames)
        model(**inputs, labels=inputs["input_ids"]).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    model.train()
    assert model.vision_model.encoder.gradient_checkpointing
    assert all(layer.gradient_checkpointing for layer in model.language_model.model.layers)
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)
    assert grads[0]["vision_model.embeddings.patch_embedding.weight"].abs().sum() > 0


def test_freeze_options_and_lora_use_the_remote_names(remote_checkpoint_dir):
    model, _ = load(remote_checkpoint_dir, freeze_vision_tower=True, freeze_projector=True)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"language_model"}
    model, _ = load(remote_checkpoint_dir, use_peft=True, lora_r=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".language_model." in n for n in trainable)


def test_original_chat_api(loaded, frames):
    model, processor = loaded
    pixel_values = batch(processor, frames[:1])["pixel_values"]
    question = "Frame1: <image>\nFrame2: <image>\nFrame3: <image>\nHow good is it?"
    config = {"max_new_tokens": 4, "do_sample": False}
    response, history = model.chat(
        processor.tokenizer, pixel_values, question, config, num_patches_list=[1, 1, 1], return_history=True
    )
    assert isinstance(response, str) and history == [(question, response)]


def test_a_saved_run_is_a_patched_checkpoint_again(loaded, frames, tmp_path):
    model, processor = loaded
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert is_vqathinker_modeling((tmp_path / MODELING_FILE).read_bytes())
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "internvl_chat"
    again, processor_again = load(tmp_path)
    inputs = batch(processor, frames)
    assert torch.equal(batch(processor_again, frames)["input_ids"], inputs["input_ids"])
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, model(**inputs).logits)


def test_a_missing_timm_fails_at_once_naming_the_extra(tmp_path, monkeypatch):
    """The real InternViT file imports timm: without it, loading stops before anything else, saying what to install."""
    from tests.remote_checkpoint import write_remote_checkpoint
    from vqathinker.model import remote

    folder = write_remote_checkpoint(tmp_path / "with_timm")
    vit = folder / "modeling_intern_vit.py"
    vit.write_text("from timm.layers import DropPath\n" + vit.read_text())
    monkeypatch.setattr(remote, "_installed", lambda name: name != "timm")
    with pytest.raises(ImportError) as error:
        load(folder)
    assert str(error.value) == (
        f"{folder}: the checkpoint's remote code imports timm, not installed here. The InternVL remote-code files "
        "need timm and torchvision: pip install 'vqathinker[remote]' (`GPU=1 bash setup.sh` installs it)."
    )
    monkeypatch.setattr(remote, "_installed", lambda name: True)
    remote.check_remote_imports(folder)  # nothing missing: no error
