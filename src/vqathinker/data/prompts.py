"""The prompt of VQAThinker: numbered frames, the question, the answer format.

A multiple-choice question (:func:`build_choice_conversation`) has the same frames and answer format; its
question ends with its lettered options and asks for the letter of the correct one.

:func:`build_conversation` renders it as the structured chat message trl fills from the ``images`` column,
one ``{"type": "image"}`` block per frame in order. A model with the motion branch gets its motion slot from
its processor (:func:`vqathinker.model.motion.add_motion_slot`, written like the frame labels), so the
dataset's prompt is the same with or without it.

Styles (``style``):

- ``"default"``: ``Now you will receive a video:\\nFrame1: <image>\\nFrame2: <image>…\\n{question} First output…``.
- ``"release"``: the release's training prompt, the same without the space after ``FrameN:``.
- ``"release_test"``: the release's evaluation prompt, without newlines:
  ``Now you will receive a video:Frame1: <image>Frame2: <image>…{question}First output…``.
"""

from __future__ import annotations

from vqathinker.data.choices import letters_phrase

QUALITY_QUESTION = (
    "You are doing the video quality assessment task. Here is the question: What is your overall rating on "
    "the quality of this video? The rating should be a float between 1 and 5, rounded to two decimal places, "
    "with 1 representing very poor quality and 5 representing excellent quality."
)
"""The default question of the LSVQ jsonl of the VQAThinker release."""

INTRO = "Now you will receive a video:"
CHOICE_INSTRUCTION = "Answer with the letter of the correct option ({letters})."
"""Appended to a multiple-choice question, after its options."""
SUFFIX = (
    "First output the thinking process in <think> </think> tags and then output the final answer in "
    "<answer> </answer> tags."
)
PROMPT_STYLES = ("default", "release", "release_test")

# style → (separator before each frame label and before the question, text after "FrameN:")
_LAYOUTS = {"default": ("\n", " "), "release": ("\n", ""), "release_test": ("", " ")}


def build_conversation(question: str, num_frames: int, style: str = "default") -> list[dict]:
    """The prompt as a one-message conversation whose image blocks trl fills with the frames, in order."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if style not in _LAYOUTS:
        raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")
    newline, space = _LAYOUTS[style]
    content: list[dict] = []
    for i in range(1, num_frames + 1):
        content.append({"type": "text", "text": (INTRO if i == 1 else "") + f"{newline}Frame{i}:{space}"})
        content.append({"type": "image"})
    answer_format = SUFFIX if style == "release_test" else " " + SUFFIX
    content.append({"type": "text", "text": newline + question + answer_format})
    return [{"role": "user", "content": content}]


def choice_question(question: str, num_options: int) -> str:
    """A multiple-choice question (its text already lists the ``num_options`` options) followed by
    :data:`CHOICE_INSTRUCTION`: the question text of its prompt."""
    instruction = CHOICE_INSTRUCTION.format(letters=letters_phrase(num_options))
    return f"{question.rstrip()}\n{instruction}"


def build_choice_conversation(
    question: str, num_options: int, num_frames: int, style: str = "default"
) -> list[dict]:
    """The prompt of a multiple-choice question: :func:`choice_question` in :func:`build_conversation`'s frame
    layout."""
    return build_conversation(choice_question(question, num_options), num_frames, style)
