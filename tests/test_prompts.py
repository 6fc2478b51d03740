"""The prompt template of DESIGN §5, in both renderings."""

from __future__ import annotations

import pytest

from vqathinker.data.prompts import QUALITY_QUESTION, SUFFIX, build_conversation, build_prompt_text


def _render(conversation: list[dict]) -> str:
    """Join the blocks the way a chat template does, an image block shown as <image>."""
    (message,) = conversation
    assert message["role"] == "user"
    return "".join(block["text"] if block["type"] == "text" else "<image>" for block in message["content"])


def test_prompt_text_matches_the_reference_layout():
    text = build_prompt_text("How good is it?", 2)
    assert text == (
        "Now you will receive a video:\nFrame1: <image>\nFrame2: <image>\nHow good is it?"
        " First output the thinking process in <think> </think> tags and then output the final answer in"
        " <answer> </answer> tags."
    )


def test_motion_marker_follows_the_frames():
    text = build_prompt_text("Q?", 3, motion=True)
    assert text.startswith(
        "Now you will receive a video:\nFrame1: <image>\nFrame2: <image>\nFrame3: <image>\n"
    )
    assert "Frame3: <image>\nMotion Feature: <img><MOTION_CONTEXT></img>\nQ?" in text
    assert text.endswith(SUFFIX)


@pytest.mark.parametrize("num_frames", [1, 6, 16])
@pytest.mark.parametrize("motion", [False, True])
def test_conversation_has_one_image_block_per_frame_in_order(num_frames, motion):
    conversation = build_conversation(QUALITY_QUESTION, num_frames, motion=motion)
    content = conversation[0]["content"]
    assert sum(block["type"] == "image" for block in content) == num_frames
    assert all(block == {"type": "image"} for block in content if block["type"] == "image")
    # text and image blocks alternate, text first and last; the motion slot is text, not an image
    assert [block["type"] for block in content] == ["text", "image"] * num_frames + ["text"] * (1 + motion)
    if motion:
        assert content[-2]["text"] == "\nMotion Feature: <img><MOTION_CONTEXT></img>"
    assert content[0]["text"] == "Now you will receive a video:\nFrame1: "
    assert content[-1]["text"] == "\n" + QUALITY_QUESTION + SUFFIX
    assert _render(conversation) == build_prompt_text(QUALITY_QUESTION, num_frames, motion)


def test_quality_question_is_the_seed_default():
    assert QUALITY_QUESTION.startswith("You are doing the video quality assessment task.")
    assert "float between 1 and 5, rounded to two decimal places" in QUALITY_QUESTION


def test_no_frames_is_an_error():
    with pytest.raises(ValueError):
        build_conversation("Q?", 0)
