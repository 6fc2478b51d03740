"""The HF-format and the remote-code paths render the same prompt for the same record, token for token."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from tests.remote_checkpoint import write_remote_checkpoint
from vqathinker.data.prompts import PROMPT_STYLES, QUALITY_QUESTION, build_conversation
from vqathinker.model.loading import ModelOptions, load_model_and_processor
from vqathinker.model.processor import (
    INTERNVL_SYSTEM_MESSAGE,
    VideoInternVLProcessor,
    prepare_inputs,
    tile_size,
)

# the layout of the HF-format InternVL checkpoints' own template: no system turn, a newline after each image
HF_STYLE_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for block in message['content'] %}{% if block['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
    "{% elif block['type'] == 'text' %}{{ block['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def hf_dir(tiny_model_dir, tmp_path_factory):
    """The tiny HF-format checkpoint with a processor template laid out like the HF InternVL checkpoints'."""
    folder = tmp_path_factory.mktemp("hf_parity") / "checkpoint"
    shutil.copytree(tiny_model_dir, folder)
    processor = VideoInternVLProcessor.from_pretrained(folder)
    processor.chat_template = HF_STYLE_TEMPLATE
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def remote_dir(tmp_path_factory):
    """A tiny remote-code checkpoint whose conversation template carries InternVL's system message."""
    folder = tmp_path_factory.mktemp("remote_parity") / "InternVL3-parity"
    return write_remote_checkpoint(folder, system_message=INTERNVL_SYSTEM_MESSAGE)


def render(path, style: str, motion: bool):
    _, processor = load_model_and_processor(
        ModelOptions(model_name_or_path=str(path), use_motion=motion, motion_width=8 if motion else None)
    )
    frames = [Image.new("RGB", (tile_size(processor),) * 2, (40 * i, 90, 160)) for i in range(3)]
    inputs = prepare_inputs(processor, [build_conversation(QUALITY_QUESTION, 3, style)], [frames])
    return inputs["input_ids"][0].tolist(), processor


@pytest.mark.parametrize("motion", [False, True])
@pytest.mark.parametrize("style", PROMPT_STYLES)
def test_hf_format_and_remote_code_render_the_same_tokens(hf_dir, remote_dir, style, motion):
    hf_ids, hf_processor = render(hf_dir, style, motion)
    remote_ids, _ = render(remote_dir, style, motion)
    assert hf_ids == remote_ids
    text = hf_processor.tokenizer.decode(hf_ids)
    assert text.startswith(f"<|im_start|>system\n{INTERNVL_SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\n")
    assert "</img>\n" not in text.replace("</img>\nFrame", "").replace("</img>\nMotion", "").replace(
        "</img>\nYou", ""
    )  # no newline of the template's own after an image
    assert ("Motion Feature:" in text) == motion


def test_a_template_of_ours_is_kept(tiny_model_dir):
    _, processor = load_model_and_processor(ModelOptions(model_name_or_path=str(tiny_model_dir)))
    assert "system" not in processor.chat_template  # the tiny model's plain ChatML stays as saved
