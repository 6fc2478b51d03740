"""InternVL3-1B / 2B / 8B shaped models with no weights (``meta`` device), for parameter and FLOP counts.

Shapes are those of the public configs: every size uses InternViT-300M-448px (hidden 1024, 24 layers,
16 heads, MLP 4096, qkv bias, 448 px tiles of 14 px patches → 256 tokens per tile after pixel-shuffle 0.5)
and a Qwen2.5 language model (0.5B, 1.5B, 7B) with InternVL's 151674-token vocabulary and untied output
embeddings. Totals: about 0.94B, 2.09B and 7.94B parameters.
"""

from __future__ import annotations

import torch
from transformers import InternVLConfig, InternVLForConditionalGeneration

from vqathinker.model.loading import LLM_PREFIXES, PROJECTOR_PREFIX, VISION_PREFIX

INTERNVIT_300M = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "attention_bias": True,
    "image_size": 448,
    "patch_size": 14,
    "layer_scale_init_value": 0.1,
}

QWEN25 = {
    "0.5B": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2},
    "1.5B": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2},
    "7B": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4},
}  # fmt: skip

# InternVL3 size → its language model.
INTERNVL3_LLM = {"1B": "0.5B", "2B": "1.5B", "8B": "7B"}
INTERNVL_VOCAB_SIZE = 151674
IMG_CONTEXT_TOKEN_ID = 151667


def internvl3_config(size: str) -> InternVLConfig:
    """The config of InternVL3-``size`` (``"1B"``, ``"2B"`` or ``"8B"``) in the HF InternVL format."""
    if size not in INTERNVL3_LLM:
        raise ValueError(f"unknown InternVL3 size {size!r}; choose one of {sorted(INTERNVL3_LLM)}")
    text_config = {
        "model_type": "qwen2",
        **QWEN25[INTERNVL3_LLM[size]],
        "vocab_size": INTERNVL_VOCAB_SIZE,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
    }
    return InternVLConfig(
        vision_config=dict(INTERNVIT_300M),
        text_config=text_config,
        image_token_id=IMG_CONTEXT_TOKEN_ID,
        image_seq_length=256,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )


def meta_internvl3(size: str) -> InternVLForConditionalGeneration:
    """InternVL3-``size`` built on the ``meta`` device: real shapes, no memory, no weights."""
    with torch.device("meta"):
        return InternVLForConditionalGeneration(internvl3_config(size))


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts of the vision tower, projector, language model (with ``lm_head``) and in total."""
    counts = {"vision_tower": 0, "projector": 0, "language_model": 0, "total": 0}
    seen = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        name = name.removeprefix("base_model.model.")
        if name.startswith(VISION_PREFIX):
            counts["vision_tower"] += param.numel()
        elif name.startswith(PROJECTOR_PREFIX):
            counts["projector"] += param.numel()
        elif name.startswith(LLM_PREFIXES):
            counts["language_model"] += param.numel()
        counts["total"] += param.numel()
    return counts
