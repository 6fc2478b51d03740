"""The motion branch: a frozen SlowFast-R50 over a video's frames and a trainable projector → one token.

The SlowFast network (Feichtenhofer et al. 2019, Kinetics-400 weights) sees the frames of a
video as a clip; its two pathways are pooled and concatenated (2048 + 256 = 2304 features for R50), then
``LayerNorm → Linear(2304, d) → GELU → Linear(d, d)`` maps them to ONE embedding of the language model's
width ``d``. That embedding replaces the :data:`MOTION_TOKEN` in the prompt (one
per video, after the frames, behind the ``Motion Feature: `` marker).

Where the clip comes from: the frames the vision tower already gets. A video's rows of ``pixel_values``
(one 448 px tile per frame, ImageNet-normalised) are stacked along time, as the VQAThinker reference
does, so the trainer, evaluation and prediction pass nothing extra; the processor of a motion model puts
the slot after the last frame of every prompt (:func:`add_motion_slot`). The fast pathway sees every
frame, the slow one ``ceil(T / 4)`` of them (evenly spaced, first and last included), which is the count
the fast-to-slow lateral connections (temporal stride 4) produce.

The trunk (its pooling and BatchNorm mode) lives in :mod:`vqathinker.model.slowfast`; the HF-format model
class in :mod:`vqathinker.model.motion_native`.

Both backends use the same modules under the same names, ``slowfast_model`` (trunk) and ``motion_mlp``
(projector), the names of the VQAThinker release: the remote-code model of ``model/patch/`` and, for HF-format
checkpoints, ``InternVLMotionForConditionalGeneration`` (:mod:`vqathinker.model.motion_native`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch
from torch import nn

from vqathinker.model.slowfast import (
    BATCH_NORM_MODES,
    POOLINGS,
    R50_WIDTH,
    TRUNK_NAME,
    SlowFastFeatures,
    load_slowfast_weights,
)

logger = logging.getLogger(__name__)

MOTION_TOKEN = "<MOTION_CONTEXT>"
"""The one token of a video's motion feature (added to the tokenizer when the motion branch is on)."""
MOTION_LABEL = "Motion Feature:"
"""The label before the motion slot, as in the VQAThinker release's prompt (spaced like the frame labels)."""
MOTION_PLACEHOLDER = "<img>" + MOTION_TOKEN + "</img>"
"""The motion slot as it appears in the prompt text, wrapped like the release's motion image."""

PROJECTOR_NAME = "motion_mlp"
PROJECTOR_INITS = ("default", "release")


def motion_projector(in_features: int, hidden_size: int) -> nn.Sequential:
    """``LayerNorm → Linear(in, d) → GELU → Linear(d, d)``: pooled SlowFast features → one LLM embedding."""
    return nn.Sequential(
        nn.LayerNorm(in_features),
        nn.Linear(in_features, hidden_size),
        nn.GELU(),
        nn.Linear(hidden_size, hidden_size),
    )


def add_motion_modules(model: nn.Module, config) -> None:
    """Give ``model`` the trunk and projector named in ``config`` (``motion_width``, LLM hidden size)."""
    trunk = SlowFastFeatures(
        config.motion_width,
        pooling=getattr(config, "motion_pooling", None) or "mean",
        batch_norm=getattr(config, "motion_batch_norm", None) or "frozen",
    )
    setattr(model, TRUNK_NAME, trunk)
    setattr(model, PROJECTOR_NAME, motion_projector(trunk.out_features, _text_hidden_size(config)))


def _text_hidden_size(config) -> int:
    for name in ("text_config", "llm_config"):
        sub = getattr(config, name, None)
        if sub is not None:
            return sub.hidden_size
    return config.hidden_size


# ------------------------------------------------------------------------------- set-up


def motion_weight_names(checkpoint: str | Path) -> list[str]:
    """Names of the motion-branch tensors stored in a local checkpoint's safetensors (empty when none)."""
    checkpoint = Path(checkpoint)
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        names = list(json.loads(index.read_text())["weight_map"])
    elif (checkpoint / "model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as handle:
            names = list(handle.keys())
    else:
        return []
    return [name for name in names if f"{PROJECTOR_NAME}." in name or f"{TRUNK_NAME}." in name]


def configure_motion(
    config,
    tokenizer,
    checkpoint: str | Path,
    use_motion: bool | None,
    width: int | None,
    pooling: str | None = None,
    batch_norm: str | None = None,
) -> bool:
    """Decide whether the model gets the motion branch and prepare ``config`` and ``tokenizer`` for it.

    ``use_motion`` None follows the checkpoint: on when its config says so (a vqathinker run saved it) or its
    weights hold a motion branch (the VQAThinker release). When on, ``config`` gets ``use_motion``,
    ``motion_width`` (``width``, else the checkpoint's, else R50's), ``motion_pooling`` and ``motion_batch_norm``
    (the arguments, else the checkpoint's, else ``"mean"`` / ``"frozen"``; a checkpoint with motion weights but
    no motion settings is the release's and pools as it does, ``"release"``) and ``motion_token_id``, and the
    tokenizer gets :data:`MOTION_TOKEN` as a special token if it lacks it (outside the model's vocabulary: its
    embedding is always replaced). Returns whether the branch is on.
    """
    saved = getattr(config, "use_motion", None)
    release_weights = saved is None and bool(motion_weight_names(checkpoint))
    if use_motion is None:
        use_motion = bool(saved) or release_weights
    config.use_motion = use_motion
    if not use_motion:
        return False
    config.motion_width = width or getattr(config, "motion_width", None) or R50_WIDTH
    config.motion_pooling = (
        pooling or getattr(config, "motion_pooling", None) or ("release" if release_weights else "mean")
    )
    config.motion_batch_norm = batch_norm or getattr(config, "motion_batch_norm", None) or "frozen"
    if config.motion_pooling not in POOLINGS or config.motion_batch_norm not in BATCH_NORM_MODES:
        raise ValueError(
            f"motion_pooling {config.motion_pooling!r} / motion_batch_norm {config.motion_batch_norm!r}: "
            f"choose from {POOLINGS} / {BATCH_NORM_MODES}"
        )
    if MOTION_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([MOTION_TOKEN], special_tokens=True)
    config.motion_token_id = tokenizer.convert_tokens_to_ids(MOTION_TOKEN)
    return True


def finish_motion(
    model: nn.Module, weights: str | Path | None, missing_keys: list[str], projector_init: str = "default"
) -> None:
    """After loading: freeze the trunk, load its SlowFast weights from ``weights`` if given, and initialise a
    projector the checkpoint did not hold as ``projector_init`` says.

    ``projector_init`` ``"default"`` keeps the model's initialisation (normal, std 0.02); ``"release"`` draws
    the Linear weights from U(0, 0.01) with zero biases, as the VQAThinker release does. Without ``weights``,
    a trunk the checkpoint did not hold stays randomly initialised (fine for tests, not for quality): that is
    logged as a warning.
    """
    if projector_init not in PROJECTOR_INITS:
        raise ValueError(f"motion projector init must be one of {PROJECTOR_INITS}, got {projector_init!r}")
    trunk = next(module for module in model.modules() if isinstance(module, SlowFastFeatures))
    trunk.requires_grad_(False)
    trunk.eval()
    if weights:
        load_slowfast_weights(trunk, weights)
    elif any(f"{TRUNK_NAME}." in key for key in missing_keys):
        logger.warning(
            "the SlowFast motion trunk is randomly initialised: set motion_weights to a local Kinetics "
            "SlowFast-R50 checkpoint (pytorchvideo's SLOWFAST_8x8_R50.pyth)"
        )
    if projector_init == "release" and any(f"{PROJECTOR_NAME}." in key for key in missing_keys):
        projector = next(m for name, m in model.named_modules() if name.split(".")[-1] == PROJECTOR_NAME)
        with torch.no_grad():
            for layer in projector.modules():
                if isinstance(layer, nn.Linear):
                    layer.weight.uniform_(0.0, 0.01)
                    layer.bias.zero_()


_FRAME_LABEL = re.compile(r"(\n?)Frame\d+:( ?)$")


def add_motion_slot(text: str, image_token: str) -> str:
    """``text`` with the motion slot after its last frame placeholder (unchanged without frames or when present).

    Applied by the processor of a model with the motion branch to the rendered prompt, so that every prompt
    (trainer, evaluation, prediction) reads ``…FrameN: <image>\nMotion Feature: <img><MOTION_CONTEXT></img>``,
    the layout of the VQAThinker release's motion prompt. The slot is written like the last frame's label:
    a newline before ``Motion Feature:`` when ``FrameN:`` has one, a space after it when ``FrameN:`` has one
    (``FrameN:<image>\nMotion Feature:<image>`` in the release's training prompt, ``FrameN: <image>Motion
    Feature: <image>`` in its test prompt); after any other text it is ``\nMotion Feature: ``.
    """
    if MOTION_TOKEN in text or image_token not in text:
        return text
    at = text.rindex(image_token)
    label = _FRAME_LABEL.search(text[:at])
    newline, space = label.groups() if label else ("\n", " ")
    cut = at + len(image_token)
    return text[:cut] + newline + MOTION_LABEL + space + MOTION_PLACEHOLDER + text[cut:]


# ------------------------------------------------------------------------- prompt → embeddings


def frames_per_sample(image_mask: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
    """Frames of each sample from its image-token mask ``[B, L]`` (one tile per frame)."""
    counts = image_mask.sum(dim=1)
    if bool((counts % tokens_per_frame).any()):
        raise ValueError(
            f"image tokens per sample {counts.tolist()} are not multiples of {tokens_per_frame} tokens per "
            "frame: the motion branch needs one tile per frame"
        )
    return counts // tokens_per_frame


def motion_embeddings(
    model: nn.Module, pixel_values: torch.Tensor, frames: torch.Tensor, motion_mask: torch.Tensor
) -> torch.Tensor:
    """One projected motion embedding per sample that has a motion token, in sample order.

    ``pixel_values`` holds the frames of all samples in order (``frames[i]`` rows for sample i); each
    sample's rows become one clip ``[3, T, H, W]``. Clips of equal length run through the trunk together.
    """
    per_sample = motion_mask.sum(dim=1)
    if bool((per_sample > 1).any()):
        raise ValueError(f"a prompt has more than one {MOTION_TOKEN} token: {per_sample.tolist()}")
    if int(frames.sum()) != pixel_values.shape[0]:
        raise ValueError(
            f"the prompts hold {int(frames.sum())} frames but pixel_values has {pixel_values.shape[0]} tiles"
        )
    starts = torch.cumsum(frames, 0) - frames
    wanted = [i for i in range(len(frames)) if per_sample[i]]
    if any(int(frames[i]) == 0 for i in wanted):
        raise ValueError(f"a prompt has a {MOTION_TOKEN} token but no frames")
    trunk, projector = getattr(model, TRUNK_NAME), getattr(model, PROJECTOR_NAME)
    features: list[torch.Tensor | None] = [None] * len(wanted)
    lengths = sorted({int(frames[i]) for i in wanted})
    for length in lengths:
        group = [j for j, i in enumerate(wanted) if int(frames[i]) == length]
        clips = torch.stack(
            [pixel_values[int(starts[wanted[j]]) : int(starts[wanted[j]]) + length] for j in group]
        ).transpose(1, 2)  # [n, T, 3, H, W] → [n, 3, T, H, W]
        for j, feature in zip(group, trunk(clips), strict=True):
            features[j] = feature
    stacked = torch.stack(features).to(next(projector.parameters()).dtype)
    return projector(stacked)


def embed_with_motion(
    model: nn.Module,
    input_ids: torch.Tensor,
    embed_tokens: nn.Module,
    motion_token_id: int,
    pixel_values: torch.Tensor | None,
    image_mask: torch.Tensor,
    tokens_per_frame: int,
) -> torch.Tensor:
    """Token embeddings of ``input_ids`` with each motion token replaced by its video's motion embedding.

    The motion token need not exist in the embedding matrix (it is added to the tokenizer, not to the
    model): its positions are looked up as token 0 and then overwritten.
    """
    motion_mask = input_ids == motion_token_id
    embeds = embed_tokens(input_ids.masked_fill(motion_mask, 0))
    if not bool(motion_mask.any()):
        return embeds
    if pixel_values is None:
        raise ValueError(f"prompts with a {MOTION_TOKEN} token need the frames (pixel_values)")
    frames = frames_per_sample(image_mask, tokens_per_frame)
    motion = motion_embeddings(model, pixel_values, frames, motion_mask)
    return embeds.masked_scatter(motion_mask.unsqueeze(-1), motion.to(embeds.dtype))


def restore_prompt(sequences: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Generated ``sequences`` with their first columns set back to the caller's ``input_ids``."""
    sequences = sequences.clone()
    sequences[:, : input_ids.shape[1]] = input_ids
    return sequences
