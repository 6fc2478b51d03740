"""The prompt of VQAThinker (DESIGN §5): numbered frames, an optional motion token, the question, the format.

Two renderings of the same prompt:

- :func:`build_conversation`: the structured chat message trl fills from the ``images`` column, one
  ``{"type": "image"}`` block per frame in order.
- :func:`build_prompt_text`: the same text with ``<image>`` markers, for logs and display.

With ``motion=True`` the frames are followed by ``Motion Feature: `` and :data:`MOTION_PLACEHOLDER`, plain
text holding the single :data:`MOTION_TOKEN` whose embedding the motion branch (vqathinker.model.motion)
replaces: it is not an image block, so trl and the processor see exactly one image per frame.
"""

from __future__ import annotations

QUALITY_QUESTION = (
    "You are doing the video quality assessment task. Here is the question: What is your overall rating on "
    "the quality of this video? The rating should be a float between 1 and 5, rounded to two decimal places, "
    "with 1 representing very poor quality and 5 representing excellent quality."
)
"""The default question of the LSVQ jsonl of the VQAThinker release."""

INTRO = "Now you will receive a video:\n"
MOTION_MARKER = "Motion Feature: "
SUFFIX = (
    " First output the thinking process in <think> </think> tags and then output the final answer in "
    "<answer> </answer> tags."
)
IMAGE_MARKER = "<image>"
MOTION_TOKEN = "<MOTION_CONTEXT>"
"""The one token of a video's motion feature (added to the tokenizer when the motion branch is on)."""
MOTION_PLACEHOLDER = "<img>" + MOTION_TOKEN + "</img>"
"""The motion slot as it appears in the prompt text, wrapped like the VQAThinker reference's motion image."""


def _slots(num_frames: int) -> list[str]:
    """The text before each image block: ``Frame1: ``, ``Frame2: ``, ..."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return [f"Frame{i}: " for i in range(1, num_frames + 1)]


def build_prompt_text(question: str, num_frames: int, motion: bool = False) -> str:
    """The prompt as one string, each frame shown as ``<image>``."""
    slots = "".join(f"{slot}{IMAGE_MARKER}\n" for slot in _slots(num_frames))
    motion_slot = f"{MOTION_MARKER}{MOTION_PLACEHOLDER}\n" if motion else ""
    return f"{INTRO}{slots}{motion_slot}{question}{SUFFIX}"


def build_conversation(question: str, num_frames: int, motion: bool = False) -> list[dict]:
    """The prompt as a one-message conversation whose image blocks trl fills with the frames, in order."""
    content: list[dict] = []
    for i, slot in enumerate(_slots(num_frames)):
        content.append({"type": "text", "text": (INTRO if i == 0 else "\n") + slot})
        content.append({"type": "image"})
    if motion:
        content.append({"type": "text", "text": "\n" + MOTION_MARKER + MOTION_PLACEHOLDER})
    content.append({"type": "text", "text": "\n" + question + SUFFIX})
    return [{"role": "user", "content": content}]
