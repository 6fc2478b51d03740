"""Writes a tiny remote-code InternVL checkpoint, laid out like ``OpenGVLab/InternVL3-8B``, for the tests.

Files: ``config.json`` (model_type ``internvl_chat``, an ``auto_map`` naming the remote code), the test
versions of the checkpoint's Python files (``tests/fixtures_remote/``), a tokenizer without the HF
processor's extras (a plain ChatML template, no image-marker attributes, like the real ones), and
``model.safetensors`` with random weights under the checkpoint's parameter names. Vision: 56 px tiles,
patch 7, 16 tokens per tile; LLM: the tiny Qwen2 of :mod:`vqathinker.model.tiny`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel, PreTrainedTokenizerFast

from vqathinker.model.patching import patch_checkpoint, revert_checkpoint
from vqathinker.model.tiny import IM_END, PAD, PATCH, TILE, build_tokenizer

FIXTURES = Path(__file__).parent / "fixtures_remote"
REMOTE_FILES = (
    "configuration_intern_vit.py",
    "configuration_internvl_chat.py",
    "conversation.py",
    "modeling_intern_vit.py",
    "modeling_internvl_chat.py",
)

TEST_SYSTEM_MESSAGE = "You are a tiny test model."
"""The system message of the test conversation template (``fixtures_remote/conversation.py``)."""

TEXT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def remote_config_dict(tokenizer) -> dict:
    return {
        "architectures": ["InternVLChatModel"],
        "auto_map": {
            "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
            "AutoModel": "modeling_internvl_chat.InternVLChatModel",
            "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel",
        },
        "model_type": "internvl_chat",
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,
        "force_image_size": TILE,
        "max_dynamic_patch": 12,
        "min_dynamic_patch": 1,
        "ps_version": "v2",
        "select_layer": -1,
        "template": "internvl2_5",
        "use_thumbnail": True,
        "torch_dtype": "float32",
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "model_type": "intern_vit_6b",
            "image_size": TILE,
            "patch_size": PATCH,
            "hidden_size": 32,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
        },
        "llm_config": {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
    }


def write_remote_checkpoint(
    out_dir: str | Path, seed: int = 0, patched: bool = True, system_message: str | None = None
) -> Path:
    """Write the checkpoint into ``out_dir``; ``patched`` leaves vqathinker's modeling file installed.

    ``system_message`` replaces the test conversation template's (before its module is first imported: a
    remote-code module stays imported under its folder's name for the rest of the process).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in REMOTE_FILES:
        shutil.copyfile(FIXTURES / name, out_dir / name)
    if system_message is not None:
        conversation = out_dir / "conversation.py"
        text = conversation.read_text(encoding="utf-8").replace(TEST_SYSTEM_MESSAGE, system_message)
        conversation.write_text(text, encoding="utf-8")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer().backend_tokenizer,
        eos_token=IM_END,
        pad_token=PAD,
        chat_template=TEXT_CHAT_TEMPLATE,
    )
    tokenizer.save_pretrained(out_dir)
    (out_dir / "config.json").write_text(json.dumps(remote_config_dict(tokenizer), indent=2) + "\n")
    patch_checkpoint(out_dir)
    config = AutoConfig.from_pretrained(out_dir, trust_remote_code=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(config, trust_remote_code=True)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    if not patched:
        revert_checkpoint(out_dir)
    return out_dir
