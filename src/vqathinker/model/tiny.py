"""A tiny random InternVL checkpoint (tests, the CPU demo), built offline and deterministically.

Vision tower: 56 px tiles, patch 7 → 8×8 patches, pixel-shuffle 0.5 → 16 tokens per frame; hidden 32,
2 layers, 2 heads. Language model: Qwen2, hidden 64, 2 layers, 4 heads, 2 key-value heads. Tokenizer: a
byte-level BPE trained here with ``tokenizers`` on a few hundred words of quality vocabulary and the prompt
template; each digit and "." is a token of its own, ``<think>`` ``</think>`` ``<answer>`` ``</answer>``
are ordinary added tokens (they survive ``skip_special_tokens`` decoding, which trl uses). The folder loads
through :func:`vqathinker.model.loading.load_model_and_processor` like a real checkpoint.

``--vision efficientnet-lite0`` replaces the random vision tower with the frozen ImageNet EfficientNet-Lite0
trunk of :mod:`vqathinker.model.efficientnet` (a 4 × 4 map of 80 features per 56 px frame: the same 16
tokens per frame), followed by InternVL's trainable projector.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    InternVLConfig,
    InternVLForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from vqathinker.model.efficientnet import (
    VISION_NAME,
    InternVLEfficientNetLiteConfig,
    InternVLEfficientNetLiteForConditionalGeneration,
    load_pretrained_tower,
)
from vqathinker.model.processor import CHAT_TEMPLATE, VideoInternVLProcessor, one_tile_image_processor

TILE = 56
PATCH = 7
DOWNSAMPLE_RATIO = 0.5
TOKENS_PER_FRAME = round((TILE // PATCH) ** 2 * DOWNSAMPLE_RATIO**2)
VOCAB_SIZE = 512
VISION_TOWERS = ("internvit", VISION_NAME)
"""Vision towers of the tiny model: a random InternViT, or the frozen ImageNet EfficientNet-Lite0 trunk."""

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
IMG_START, IMG_END, IMG_CONTEXT, VIDEO = "<img>", "</img>", "<IMG_CONTEXT>", "<video>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END, IMG_START, IMG_END, IMG_CONTEXT, VIDEO]
REASONING_TAGS = ["<think>", "</think>", "<answer>", "</answer>"]


CORPUS = [
    "Now you will receive a video:\nFrame1: \nFrame2: \nFrame3: \nFrame4: \nFrame5: \nFrame6: \n",
    "Motion Feature: ",
    "What is your overall rating on the quality of this video? The rating should be a float between 1 and 5, "
    "rounded to two decimal places, with 1 representing very poor quality and 5 representing excellent quality.",
    " First output the thinking process in <think> </think> tags and then output the final answer in "
    "<answer> </answer> tags.",
    "The video is sharp and clear, with vivid colors, good exposure and smooth motion, so the quality is high.",
    "The video is blurry and noisy, with blocky compression artifacts, dark underexposed frames, overexposed "
    "highlights, washed out colors, shaky camera and stuttering motion, so the quality is low.",
    "excellent good fair poor bad very slightly strongly moderate average overall rating score quality",
    "sharpness detail texture contrast brightness color saturation noise blur blockiness banding ringing "
    "flicker jitter stable static fast slow camera scene content lighting resolution frame rate",
    "user assistant system video frame image the a is are with and of in to it this that but not",
]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on :data:`CORPUS` (no network); digits and "." are never merged."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[0-9.]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    tokenizer.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in REASONING_TAGS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        extra_special_tokens={
            "start_image_token": IMG_START,
            "end_image_token": IMG_END,
            "context_image_token": IMG_CONTEXT,
            "video_token": VIDEO,
        },
    )


def tiny_config(tokenizer: PreTrainedTokenizerFast, vision: str = "internvit") -> InternVLConfig:
    """The tiny InternVL config (vocabulary and special ids from ``tokenizer``, vision tower ``vision``)."""
    if vision not in VISION_TOWERS:
        raise ValueError(f"unknown vision tower {vision!r}; known: {list(VISION_TOWERS)}")
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    text_config = {
        "model_type": "qwen2",
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
        "bos_token_id": None,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
    }
    common = dict(
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMG_CONTEXT),
        image_seq_length=TOKENS_PER_FRAME,
        tie_word_embeddings=True,
    )
    if vision == VISION_NAME:  # 56 px → a 4 × 4 map of the trunk = TOKENS_PER_FRAME
        return InternVLEfficientNetLiteConfig(vision_config={"image_size": TILE}, **common)
    return InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": TILE,
            "patch_size": PATCH,
        },
        downsample_ratio=DOWNSAMPLE_RATIO,
        **common,
    )


def make_tiny_model(
    out_dir: str | Path, seed: int = 0, num_frames: int = 6, vision: str = "internvit"
) -> Path:
    """Write a tiny random InternVL checkpoint + tokenizer + processor into ``out_dir`` and return it.

    Same ``seed`` → identical files. ``num_frames`` is saved as the processor's default frames per video.
    ``vision`` (:data:`VISION_TOWERS`) ``"efficientnet-lite0"`` gives it the frozen ImageNet trunk of
    :mod:`vqathinker.model.efficientnet` (needs the ``demo`` extra); projector and language model stay random.
    """
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    processor = VideoInternVLProcessor(
        image_processor=one_tile_image_processor(TILE),
        tokenizer=tokenizer,
        image_seq_length=TOKENS_PER_FRAME,
        num_frames=num_frames,
        chat_template=CHAT_TEMPLATE,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model_class = (
            InternVLEfficientNetLiteForConditionalGeneration
            if vision == VISION_NAME
            else InternVLForConditionalGeneration
        )
        model = model_class(tiny_config(tokenizer, vision))
    if vision == VISION_NAME:
        load_pretrained_tower(model)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
