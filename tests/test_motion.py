"""The motion branch: SlowFast trunk (pytorchvideo layout, frozen), projector, one token per video."""

from __future__ import annotations

import json

import pytest
import torch

from tests.media import counter_frames, write_video
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.motion import (
    MOTION_LABEL,
    MOTION_PLACEHOLDER,
    MOTION_TOKEN,
    PROJECTOR_NAME,
    TRUNK_NAME,
)
from vqathinker.model.processor import prepare_inputs, tile_size
from vqathinker.model.slowfast import SlowFastFeatures, feature_dim, load_slowfast_weights, pathways
from vqathinker.training.configs import VQAModelConfig

WIDTH = 8  # CPU-sized trunk: 288 features


def pytorchvideo_state(trunk: SlowFastFeatures, classes: int = 400) -> dict:
    """``trunk``'s weights as pytorchvideo's slowfast_r50 names them, with its classifier head."""
    state = {
        key.replace("feature_extraction.", "blocks.", 1): value.clone()
        for key, value in trunk.state_dict().items()
    }
    state["blocks.6.proj.weight"] = torch.randn(classes, trunk.out_features)
    state["blocks.6.proj.bias"] = torch.zeros(classes)
    return state


def test_r50_trunk_has_the_shapes_of_pytorchvideo_slowfast_r50():
    with torch.device("meta"):
        trunk = SlowFastFeatures()
    state = trunk.state_dict()
    assert trunk.out_features == feature_dim() == 2304
    expected = {
        "blocks.0.multipathway_blocks.0.conv.weight": (64, 3, 1, 7, 7),
        "blocks.0.multipathway_blocks.1.conv.weight": (8, 3, 5, 7, 7),
        "blocks.0.multipathway_fusion.conv_fast_to_slow.weight": (16, 8, 7, 1, 1),
        "blocks.1.multipathway_blocks.0.res_blocks.0.branch1_conv.weight": (256, 80, 1, 1, 1),
        "blocks.1.multipathway_blocks.1.res_blocks.2.branch2.conv_a.weight": (8, 32, 3, 1, 1),
        "blocks.3.multipathway_blocks.0.res_blocks.5.branch2.conv_a.weight": (256, 1024, 3, 1, 1),
        "blocks.3.multipathway_fusion.conv_fast_to_slow.weight": (256, 128, 7, 1, 1),
        "blocks.4.multipathway_blocks.0.res_blocks.0.branch2.conv_a.weight": (512, 1280, 3, 1, 1),
        "blocks.4.multipathway_blocks.0.res_blocks.2.branch2.conv_c.weight": (2048, 512, 1, 1, 1),
        "blocks.4.multipathway_blocks.1.res_blocks.2.branch2.norm_c.running_var": (256,),
    }
    for key, shape in expected.items():
        assert tuple(state[key.replace("blocks.", "feature_extraction.", 1)].shape) == shape, key
    assert not any("blocks.4.multipathway_fusion" in key for key in state)  # no lateral after stage 4
    params = sum(p.numel() for p in trunk.parameters()) + 2304 * 400 + 400  # + the Kinetics classifier
    assert round(params / 1e4) == 3457  # slowfast_r50: 34.57 M parameters


def test_slow_pathway_takes_a_quarter_of_the_frames():
    clip = torch.arange(12.0).view(1, 1, 12, 1, 1).expand(1, 3, 12, 1, 1)
    for frames, slow_index in [(6, [0, 5]), (8, [0, 7]), (12, [0, 5, 11]), (1, [0])]:
        slow, fast = pathways(clip[:, :, :frames])
        assert slow[0, 0, :, 0, 0].tolist() == slow_index and fast.shape[2] == frames


def test_trunk_is_frozen_in_eval_mode_and_gives_one_vector_per_clip():
    trunk = SlowFastFeatures(WIDTH)
    trunk.train()
    assert not trunk.training and not any(p.requires_grad for p in trunk.parameters())
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    clips = torch.randn(2, 3, 6, 32, 32, requires_grad=True)
    features = trunk(clips)
    assert features.shape == (2, feature_dim(WIDTH)) and not features.requires_grad
    assert all(torch.equal(v, before[k]) for k, v in trunk.state_dict().items())  # BN statistics unchanged
    torch.testing.assert_close(trunk(clips[1:]), features[1:], atol=1e-5, rtol=1e-4)


def test_loads_the_public_checkpoint_layout_and_refuses_others(tmp_path):
    torch.manual_seed(0)
    source = SlowFastFeatures(WIDTH)
    for module in source.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-1, 1)  # buffers travel too
    path = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": pytorchvideo_state(source), "epoch": 196}, path)
    target = SlowFastFeatures(WIDTH)
    load_slowfast_weights(target, path)
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())

    partial = tmp_path / "partial.pt"
    state = pytorchvideo_state(source)
    del state["blocks.2.multipathway_blocks.0.res_blocks.1.branch2.conv_b.weight"]
    torch.save(state, partial)
    with pytest.raises(ValueError, match="layout of pytorchvideo's slowfast_r50.*1 missing"):
        load_slowfast_weights(target, partial)
    wider = tmp_path / "wider.pt"
    torch.save(pytorchvideo_state(SlowFastFeatures(2 * WIDTH)), wider)
    with pytest.raises(ValueError, match="width-8 trunk"):
        load_slowfast_weights(target, wider)
    with pytest.raises(FileNotFoundError):
        load_slowfast_weights(target, tmp_path / "missing.pyth")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("motion_videos")
    return [
        write_video(folder / "a.mp4", counter_frames(12, width=64, height=48, step=5), fps=12),
        write_video(folder / "b.mp4", counter_frames(8, width=48, height=64, step=13), fps=8),
    ]


@pytest.fixture(scope="module", params=["native", "remote"])
def checkpoint(request, tiny_model_dir, remote_checkpoint_dir):
    return tiny_model_dir if request.param == "native" else remote_checkpoint_dir


def load(path, **options):
    return load_model_and_processor(VQAModelConfig(model_name_or_path=str(path), **options).model_options())


def with_motion_slot(conversation: list[dict]) -> list[dict]:
    """The conversation with the motion slot written out after its last frame, as the release's prompt has it."""
    content = list(conversation[0]["content"])
    content.insert(-1, {"type": "text", "text": "\n" + MOTION_LABEL + " " + MOTION_PLACEHOLDER})
    return [{"role": "user", "content": content}]


def inputs_for(processor, videos, counts=(6, 4)):
    frames = [load_frames(v, n, size=tile_size(processor)) for v, n in zip(videos, counts, strict=True)]
    conversations = [build_conversation(QUALITY_QUESTION, len(f)) for f in frames]
    return prepare_inputs(processor, conversations, frames)


def test_motion_adds_exactly_one_token_per_video(checkpoint, videos):
    _, plain = load(checkpoint, use_motion=False)
    model, processor = load(checkpoint, use_motion=True, motion_width=WIDTH)
    off, on = inputs_for(plain, videos), inputs_for(processor, videos)
    tokenizer = processor.tokenizer
    motion_id = tokenizer.convert_tokens_to_ids(MOTION_TOKEN)
    assert model.config.motion_token_id == motion_id
    assert (on["input_ids"] == motion_id).sum(dim=1).tolist() == [1, 1]
    assert not (off["input_ids"] == motion_id).any()
    with pytest.raises(ValueError, match="no motion branch"):  # a motion prompt for a model without one
        frames = [load_frames(videos[0], 2, size=tile_size(plain))]
        prepare_inputs(plain, [with_motion_slot(build_conversation(QUALITY_QUESTION, 2))], frames)
    # a prompt that already has the slot gets no second one
    motion_prompt = [with_motion_slot(build_conversation(QUALITY_QUESTION, 2))]
    frames = [load_frames(videos[0], 2, size=tile_size(processor))]
    assert (prepare_inputs(processor, motion_prompt, frames)["input_ids"] == motion_id).sum() == 1
    assert torch.equal(on["pixel_values"], off["pixel_values"])  # no extra image, the frames feed both
    image_id = processor.image_token_id
    assert torch.equal((on["input_ids"] == image_id).sum(1), (off["input_ids"] == image_id).sum(1))
    marker = tokenizer("\nMotion Feature: <img>", add_special_tokens=False)["input_ids"]
    for i in range(2):
        ids_on = on["input_ids"][i][on["attention_mask"][i].bool()].tolist()
        ids_off = off["input_ids"][i][off["attention_mask"][i].bool()].tolist()
        at = ids_on.index(motion_id)
        slot = marker + [motion_id, tokenizer.convert_tokens_to_ids("</img>")]
        start = at - len(marker)
        assert ids_on[start : start + len(slot)] == slot
        assert ids_on[:start] + ids_on[start + len(slot) :] == ids_off  # nothing else changes
        assert ids_on[start - 1] == tokenizer.convert_tokens_to_ids("</img>")  # right after the last frame


def test_projector_learns_and_the_trunk_does_not(checkpoint, videos):
    model, processor = load(checkpoint, use_motion=True, motion_width=WIDTH)
    model.train()
    inputs = inputs_for(processor, videos)
    labels = inputs["input_ids"].masked_fill(inputs["input_ids"] >= model.config.motion_token_id, -100)
    model(**inputs, labels=labels).loss.backward()
    named = dict(model.named_parameters())
    projector = {n: p for n, p in named.items() if f"{PROJECTOR_NAME}." in n}
    trunk = {n: p for n, p in named.items() if f"{TRUNK_NAME}." in n}
    assert len(projector) == 6 and trunk
    assert all(p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0 for p in projector.values())
    assert all(not p.requires_grad and p.grad is None for p in trunk.values())


def test_batched_motion_matches_one_video_at_a_time_and_generates(checkpoint, videos):
    model, processor = load(checkpoint, use_motion=True, motion_width=WIDTH)
    inputs = inputs_for(processor, videos)
    with torch.no_grad():
        together = model(**inputs).logits[:, -1]
        for i, (video, count) in enumerate(zip(videos, (6, 4), strict=True)):
            alone = model(**inputs_for(processor, [video], (count,))).logits[0, -1]
            torch.testing.assert_close(together[i], alone, atol=1e-4, rtol=1e-4)
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert torch.equal(out[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])
    # the motion token carries the clip: other frame order, other motion feature, other prediction
    reversed_inputs = inputs_for(processor, videos)
    reversed_inputs["pixel_values"] = torch.cat(
        [reversed_inputs["pixel_values"][:6].flip(0), inputs["pixel_values"][6:]]
    )
    with torch.no_grad():
        assert not torch.allclose(model(**reversed_inputs).logits[0, -1], together[0])


def test_saved_motion_model_and_weights_file(checkpoint, videos, tmp_path):
    torch.manual_seed(1)
    weights = tmp_path / "slowfast.pyth"
    source = SlowFastFeatures(WIDTH)
    torch.save({"model_state": pytorchvideo_state(source)}, weights)
    model, processor = load(checkpoint, use_motion=True, motion_width=WIDTH, motion_weights=str(weights))
    trunk = getattr(model, TRUNK_NAME, None) or getattr(model.model, TRUNK_NAME)
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in trunk.state_dict().items())
    out = tmp_path / "run"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    assert json.loads((out / "processor_config.json").read_text())["motion"] is True

    config = json.loads((out / "config.json").read_text())
    assert config["use_motion"] and config["motion_width"] == WIDTH
    del config["use_motion"], config["motion_token_id"]  # like the VQAThinker release: motion weights only
    (out / "config.json").write_text(json.dumps(config))
    again, processor_again = load(out)  # use_motion None: follows the checkpoint's weights
    assert again.config.use_motion and processor_again.motion
    inputs = inputs_for(processor, videos)
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, model(**inputs).logits)


def test_grpo_reference_model_is_the_initial_policy(checkpoint, videos, tmp_path):
    """trl would reload the KL reference from disk and draw another random motion branch: it is a copy."""
    from datasets import Dataset

    from vqathinker.training.configs import VQAGRPOConfig
    from vqathinker.training.trainer import VQAGRPOTrainer

    model, processor = load(checkpoint, use_motion=True, motion_width=WIDTH)
    row = {"prompt": build_conversation(QUALITY_QUESTION, 4), "mos": 3.0, "video": str(videos[0]), "id": "0"}
    args = VQAGRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        beta=0.04,
        use_cpu=True,
        report_to="none",
        reward_funcs=["reg", "format"],  # one video per generation batch: nothing for the rank reward
    )
    trainer = VQAGRPOTrainer(model, args, Dataset.from_list([row, {**row, "id": "1"}]), processor)
    reference = trainer.accelerator.unwrap_model(trainer.ref_model)
    assert reference is not model and type(reference) is type(model)
    policy = model.state_dict()
    assert all(torch.equal(value, policy[name]) for name, value in reference.state_dict().items())


def test_lora_trains_the_motion_projector_beside_the_adapters(checkpoint, videos):
    model, processor = load(checkpoint, use_motion=True, motion_width=WIDTH, use_peft=True, lora_r=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(f"{PROJECTOR_NAME}." in n for n in trainable)
    assert all("lora_" in n or f"{PROJECTOR_NAME}." in n for n in trainable)
    inputs = inputs_for(processor, videos)
    model(
        **inputs, labels=inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    ).loss.backward()
    assert all(
        p.grad is not None
        for n, p in model.named_parameters()
        if f"{PROJECTOR_NAME}." in n and p.requires_grad
    )


def test_trl_fused_log_probs_see_the_motion_token(checkpoint, videos):
    """trl scores completions through ``model.base_model``: the motion embedding must be there too."""
    from trl.trainer.utils import add_fused_lm_head

    model, processor = load(checkpoint, use_motion=True, motion_width=WIDTH)
    inputs = inputs_for(processor, videos)
    labels = inputs["input_ids"].clone()
    labels[:, :-4] = -100
    with torch.no_grad():
        logits = model(**inputs).logits
        expected = torch.log_softmax(logits[:, -4:-1], -1).gather(-1, inputs["input_ids"][:, -3:, None])[
            ..., 0
        ]
        add_fused_lm_head(model)
        fused = model(**inputs, labels=labels, fused_lm_head=True).log_probs
    torch.testing.assert_close(fused[:, -3:], expected, atol=1e-4, rtol=1e-4)
