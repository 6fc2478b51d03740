"""Frames at another size than the tile (the release's 560 px protocol): tokens per frame follow, the vision
tower interpolates its positions, for the HF-format and the remote-code model."""

from __future__ import annotations

import pytest
import torch
from media import counter_frames, write_video

from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.data.video import load_frames
from vqathinker.evaluation.inference import GenerationOptions, answer_videos, load_for_inference
from vqathinker.model.frame_size import tokens_for, vision_geometry
from vqathinker.model.loading import ModelOptions
from vqathinker.model.processor import prepare_inputs, tile_size, tokens_per_frame


def test_tokens_per_frame():
    assert tokens_for(448, 14, 0.5) == 256 and tokens_for(560, 14, 0.5) == 400  # InternVL3, the release
    assert (
        tokens_for(56, 7, 0.5) == 16 and tokens_for(112, 7, 0.5) == 64
    )  # the tiny model: 2x size, 4x tokens
    with pytest.raises(
        ValueError, match=r"frame size 60 px does not fit .* multiple of 14 px .* e\.g\. 56 or 70"
    ):
        tokens_for(60, 7, 0.5)
    with pytest.raises(ValueError, match="multiple of 28 px"):
        tokens_for(546, 14, 0.5)  # 39 patches: the pixel shuffle needs an even grid


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clip") / "c.mp4", counter_frames(8, 64, 48, step=20))


def image_features(model, pixel_values):
    if hasattr(model, "extract_feature"):  # remote code
        return model.extract_feature(pixel_values)
    return model.get_image_features(pixel_values=pixel_values).pooler_output


@pytest.mark.parametrize("checkpoint", ["tiny_model_dir", "remote_checkpoint_dir"])
@pytest.mark.parametrize("size, tokens", [(56, 16), (112, 64)])
def test_frames_at_two_sizes(request, checkpoint, clip, size, tokens):
    folder = request.getfixturevalue(checkpoint)
    model, processor, _ = load_for_inference(ModelOptions(str(folder)), "cpu", frame_size=size)
    assert vision_geometry(model)[0] == 56  # the checkpoint's own tile
    assert (tile_size(processor), tokens_per_frame(processor)) == (size, tokens)
    frames = load_frames(clip, 2, size=tile_size(processor))
    assert all(frame.size == (size, size) for frame in frames)
    inputs = prepare_inputs(processor, [build_conversation(QUALITY_QUESTION, 2)], [frames])
    assert inputs["pixel_values"].shape == (2, 3, size, size)
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == 2 * tokens
    with torch.no_grad():
        assert image_features(model, inputs["pixel_values"]).shape[:2] == (2, tokens)
        assert torch.isfinite(model(**inputs).logits).all()
    [[answer]] = answer_videos(
        model, processor, [frames], [QUALITY_QUESTION], GenerationOptions(max_new_tokens=4)
    )
    assert isinstance(answer.text, str)


def test_a_frame_size_the_tower_cannot_take_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="frame size 100 px does not fit"):
        load_for_inference(ModelOptions(str(tiny_model_dir)), "cpu", frame_size=100)
