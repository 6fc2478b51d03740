"""The VQAThinker prompt template, as the structured conversation trl fills with frames."""

from __future__ import annotations

import pytest

from vqathinker.data.prompts import QUALITY_QUESTION, SUFFIX, build_conversation


def _render(conversation: list[dict]) -> str:
    """Join the blocks the way a chat template does, an image block shown as <image>."""
    (message,) = conversation
    assert message["role"] == "user"
    return "".join(block["text"] if block["type"] == "text" else "<image>" for block in message["content"])


def test_rendered_prompt_matches_the_reference_layout():
    assert _render(build_conversation("How good is it?", 2)) == (
        "Now you will receive a video:\nFrame1: <image>\nFrame2: <image>\nHow good is it?"
        " First output the thinking process in <think> </think> tags and then output the final answer in"
        " <answer> </answer> tags."
    )


@pytest.mark.parametrize("num_frames", [1, 6, 16])
def test_conversation_has_one_image_block_per_frame_in_order(num_frames):
    content = build_conversation(QUALITY_QUESTION, num_frames)[0]["content"]
    assert [block["type"] for block in content] == ["text", "image"] * num_frames + ["text"]
    assert all(block == {"type": "image"} for block in content if block["type"] == "image")
    assert [block["text"] for block in content[2:-1:2]] == [f"\nFrame{i}: " for i in range(2, num_frames + 1)]
    assert content[0]["text"] == "Now you will receive a video:\nFrame1: "
    assert content[-1]["text"] == "\n" + QUALITY_QUESTION + " " + SUFFIX


def test_release_styles_match_the_release_prompts():
    """The release's training prompt (no space after FrameN:) and its test prompt (no newlines at all)."""
    assert _render(build_conversation("How good is it?", 2, style="release")) == (
        "Now you will receive a video:\nFrame1:<image>\nFrame2:<image>\nHow good is it? " + SUFFIX
    )
    assert _render(build_conversation(QUALITY_QUESTION, 2, style="release_test")) == (
        "Now you will receive a video:Frame1: <image>Frame2: <image>You are doing the video quality assessment "
        "task. Here is the question: What is your overall rating on the quality of this video? The rating should "
        "be a float between 1 and 5, rounded to two decimal places, with 1 representing very poor quality and 5 "
        "representing excellent quality.First output the thinking process in <think> </think> tags and then "
        "output the final answer in <answer> </answer> tags."
    )
    with pytest.raises(ValueError, match="prompt style"):
        build_conversation("Q?", 2, style="newlines")


def test_quality_question_is_the_seed_default():
    assert QUALITY_QUESTION.startswith("You are doing the video quality assessment task.")
    assert "float between 1 and 5, rounded to two decimal places" in QUALITY_QUESTION


def test_no_frames_is_an_error():
    with pytest.raises(ValueError):
        build_conversation("Q?", 0)
