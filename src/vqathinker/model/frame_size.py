"""Frames at another size than the checkpoint's tile: e.g. the VQAThinker release's 560 px evaluation of a
model trained at 448 px.

A frame of ``size`` × ``size`` pixels is ``(size / patch)²`` patches, pixel-shuffled by the downsample ratio
(0.5) into ``(size / patch × ratio)²`` tokens: 448 px → 256, 560 px → 400 for InternVL3 (patch 14). The vision
tower interpolates its position embeddings to the patch grid it is given (transformers' InternVL does, and so
does InternViT's own code in remote-code checkpoints), so the weights need no change: :func:`set_frame_size`
sets the processor's resize target and token count, and the model's token count where it keeps one.

A convolutional tower (the demo's EfficientNet-Lite trunk) has no patches nor position embeddings: its vision
config's own ``tokens_per_frame(size)`` gives the count (``ceil(size / stride)²``).
"""

from __future__ import annotations


def _scalar(value) -> int:
    return int(value[0] if isinstance(value, list | tuple) else value)


def vision_geometry(model) -> tuple[int, int, float]:
    """``(tile size, patch size, downsample ratio)`` of an InternVL model (HF format or remote code)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    vision = config.vision_config
    tile = getattr(config, "force_image_size", None) or vision.image_size
    return _scalar(tile), _scalar(vision.patch_size), float(config.downsample_ratio)


def tokens_for(size: int, patch: int, ratio: float) -> int:
    """Tokens of one ``size`` px frame; ``ValueError`` unless the patch grid pixel-shuffles evenly."""
    grid = size / patch
    shuffled = grid * ratio
    if size < patch or grid != int(grid) or shuffled != int(shuffled):
        step = round(patch / ratio)
        raise ValueError(
            f"frame size {size} px does not fit the vision tower: it must be a multiple of {step} px (patch "
            f"{patch} px, pixel shuffle {ratio}), e.g. {max(step, size // step * step)} or {(size // step + 1) * step}"
        )
    return int(shuffled) ** 2


def frame_tokens(model, size: int) -> int:
    """Tokens of one ``size`` px frame for ``model``'s vision tower."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    vision = base.config.vision_config
    if hasattr(vision, "tokens_per_frame"):
        return vision.tokens_per_frame(size)
    _, patch, ratio = vision_geometry(model)
    return tokens_for(size, patch, ratio)


def set_frame_size(model, processor, size: int) -> int:
    """Make ``model`` and ``processor`` take frames of ``size`` px; returns the tokens per frame."""
    tokens = frame_tokens(model, size)
    processor.image_processor.size = {"height": size, "width": size}
    processor.image_seq_length = tokens
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(base, "num_image_token"):  # vqathinker's remote-code chat model
        base.num_image_token = tokens
    if hasattr(base.config, "image_seq_length"):  # HF format (the motion model reads it)
        base.config.image_seq_length = tokens
    return tokens
