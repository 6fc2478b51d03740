"""The prompt of VQAThinker: numbered frames, the question, the answer format.

A multiple-choice question (:func:`build_choice_conversation`) has the same frames and answer format; its
question ends with its lettered options and asks for the letter of the correct one.

:func:`build_conversation` renders it as the structured chat message trl fills from the ``images`` column,
one ``{"type": "image"}`` block per frame in order. A model with the motion branch gets its motion slot from
its processor (:func:`vqathinker.model.motion.add_motion_slot`), so the dataset's prompt is the same with or
without it.
"""

from __future__ import annotations

from vqathinker.data.choices import letters_phrase

QUALITY_QUESTION = (
    "You are doing the video quality assessment task. Here is the question: What is your overall rating on "
    "the quality of this video? The rating should be a float between 1 and 5, rounded to two decimal places, "
    "with 1 representing very poor quality and 5 representing excellent quality."
)
"""The default question of the LSVQ jsonl of the VQAThinker release."""

INTRO = "Now you will receive a video:\n"
CHOICE_INSTRUCTION = "Answer with the letter of the correct option ({letters})."
"""Appended to a multiple-choice question, after its options."""
SUFFIX = (
    " First output the thinking process in <think> </think> tags and then output the final answer in "
    "<answer> </answer> tags."
)


def _slots(num_frames: int) -> list[str]:
    """The text before each image block: ``Frame1: ``, ``Frame2: ``, ..."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return [f"Frame{i}: " for i in range(1, num_frames + 1)]


def build_conversation(question: str, num_frames: int) -> list[dict]:
    """The prompt as a one-message conversation whose image blocks trl fills with the frames, in order."""
    content: list[dict] = []
    for i, slot in enumerate(_slots(num_frames)):
        content.append({"type": "text", "text": (INTRO if i == 0 else "\n") + slot})
        content.append({"type": "image"})
    content.append({"type": "text", "text": "\n" + question + SUFFIX})
    return [{"role": "user", "content": content}]


def build_choice_conversation(question: str, num_options: int, num_frames: int) -> list[dict]:
    """The prompt of a multiple-choice question (its text already lists the ``num_options`` options): the
    question, then :data:`CHOICE_INSTRUCTION`, in :func:`build_conversation`'s frame layout."""
    instruction = CHOICE_INSTRUCTION.format(letters=letters_phrase(num_options))
    return build_conversation(f"{question.rstrip()}\n{instruction}", num_frames)
