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

The trunk is plain torch and its state-dict keys follow pytorchvideo's ``slowfast_r50`` (``blocks.0`` …
``blocks.4``, here under ``feature_extraction.``): :func:`load_slowfast_weights` reads that public Kinetics
checkpoint from a local file; nothing is ever downloaded. ``width`` scales every channel count (64 is R50;
8 runs on a CPU in milliseconds for tests).

Both backends use the same modules under the same names, ``slowfast_model`` (trunk) and ``motion_mlp``
(projector), the names of the VQAThinker release: the remote-code model of ``model/patch/`` and, for HF-format
checkpoints, :class:`InternVLMotionForConditionalGeneration`.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import torch
from torch import nn
from transformers import InternVLForConditionalGeneration
from transformers.conversion_mapping import (
    get_checkpoint_conversion_mapping,
    register_checkpoint_conversion_mapping,
)
from transformers.models.internvl.modeling_internvl import (
    InternVLModel,
    InternVLMultiModalProjector,
    InternVLPreTrainedModel,
)

logger = logging.getLogger(__name__)

ALPHA = 4
"""Frame-rate ratio of the fast to the slow pathway (temporal stride of the lateral connections)."""
BETA = 8
"""Channel ratio of the slow to the fast pathway."""
FUSION_CHANNEL_RATIO = 2
"""A lateral connection turns C fast channels into 2·C channels appended to the slow pathway."""
STAGE_DEPTHS = (3, 4, 6, 3)
"""Bottleneck blocks per stage of a ResNet-50."""
R50_WIDTH = 64
"""Stem channels of the slow pathway in SlowFast-R50; every other width scales from it."""

MOTION_TOKEN = "<MOTION_CONTEXT>"
"""The one token of a video's motion feature (added to the tokenizer when the motion branch is on)."""
MOTION_MARKER = "Motion Feature: "
"""The text before the motion slot, as in the VQAThinker release's prompt."""
MOTION_PLACEHOLDER = "<img>" + MOTION_TOKEN + "</img>"
"""The motion slot as it appears in the prompt text, wrapped like the release's motion image."""

TRUNK_NAME = "slowfast_model"
PROJECTOR_NAME = "motion_mlp"


def feature_dim(width: int = R50_WIDTH) -> int:
    """Pooled SlowFast features per video: 32·width (slow) + 4·width (fast); 2304 for R50."""
    return 32 * width + 32 * width // BETA


def _conv(c_in: int, c_out: int, kernel: tuple[int, int, int], stride=(1, 1, 1)) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=tuple(k // 2 for k in kernel), bias=False)


class _Stem(nn.Module):
    """Conv → BN → ReLU → 1×3×3 max-pool (stride 2 in space)."""

    def __init__(self, c_in: int, c_out: int, temporal_kernel: int):
        super().__init__()
        self.conv = _conv(c_in, c_out, (temporal_kernel, 7, 7), stride=(1, 2, 2))
        self.norm = nn.BatchNorm3d(c_out)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.norm(self.conv(x))))


class _Bottleneck(nn.Module):
    """1×1×1 (or 3×1×1) → 1×3×3 (spatial stride) → 1×1×1 convolutions, each followed by BN."""

    def __init__(self, c_in: int, c_inner: int, c_out: int, temporal_kernel: int, spatial_stride: int):
        super().__init__()
        self.conv_a = _conv(c_in, c_inner, (temporal_kernel, 1, 1))
        self.norm_a = nn.BatchNorm3d(c_inner)
        self.act_a = nn.ReLU()
        self.conv_b = _conv(c_inner, c_inner, (1, 3, 3), stride=(1, spatial_stride, spatial_stride))
        self.norm_b = nn.BatchNorm3d(c_inner)
        self.act_b = nn.ReLU()
        self.conv_c = _conv(c_inner, c_out, (1, 1, 1))
        self.norm_c = nn.BatchNorm3d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class _ResBlock(nn.Module):
    """Bottleneck plus shortcut (a strided 1×1×1 projection when the width changes), then ReLU."""

    def __init__(self, c_in: int, c_inner: int, c_out: int, temporal_kernel: int, spatial_stride: int):
        super().__init__()
        if c_in != c_out:
            self.branch1_conv = _conv(c_in, c_out, (1, 1, 1), stride=(1, spatial_stride, spatial_stride))
            self.branch1_norm = nn.BatchNorm3d(c_out)
        else:
            self.branch1_conv = self.branch1_norm = None
        self.branch2 = _Bottleneck(c_in, c_inner, c_out, temporal_kernel, spatial_stride)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.activation(self.branch2(x) + shortcut)


class _ResStage(nn.Module):
    def __init__(self, depth: int, c_in: int, c_inner: int, c_out: int, temporal_kernel: int, stride: int):
        super().__init__()
        self.res_blocks = nn.ModuleList(
            _ResBlock(c_in if i == 0 else c_out, c_inner, c_out, temporal_kernel, stride if i == 0 else 1)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


class _FuseFastToSlow(nn.Module):
    """Lateral connection: a 7×1×1 conv with temporal stride ALPHA on the fast pathway, appended to slow."""

    def __init__(self, fast_channels: int):
        super().__init__()
        out = fast_channels * FUSION_CHANNEL_RATIO
        self.conv_fast_to_slow = nn.Conv3d(
            fast_channels, out, (7, 1, 1), stride=(ALPHA, 1, 1), padding=(3, 0, 0), bias=False
        )
        self.norm = nn.BatchNorm3d(out)
        self.activation = nn.ReLU()

    def forward(self, pathways: list[torch.Tensor]) -> list[torch.Tensor]:
        slow, fast = pathways
        lateral = self.activation(self.norm(self.conv_fast_to_slow(fast)))
        return [torch.cat([slow, lateral], dim=1), fast]


class _PathwayBlock(nn.Module):
    """One module per pathway ([slow, fast]), then an optional lateral connection."""

    def __init__(self, slow: nn.Module, fast: nn.Module, fusion: nn.Module | None):
        super().__init__()
        self.multipathway_blocks = nn.ModuleList([slow, fast])
        self.multipathway_fusion = fusion

    def forward(self, pathways: list[torch.Tensor]) -> list[torch.Tensor]:
        out = [block(x) for block, x in zip(self.multipathway_blocks, pathways, strict=True)]
        return out if self.multipathway_fusion is None else self.multipathway_fusion(out)


class SlowFastFeatures(nn.Module):
    """SlowFast-R50 without its classifier: clip ``[B, 3, T, H, W]`` → pooled features ``[B, feature_dim]``.

    Always frozen: parameters do not require gradients, the forward runs under ``no_grad`` and the module
    stays in eval mode (BatchNorm uses its stored statistics) whatever ``train()`` asks.
    """

    def __init__(self, width: int = R50_WIDTH):
        super().__init__()
        if width < BETA or width % BETA:
            raise ValueError(f"SlowFast width must be a positive multiple of {BETA}, got {width}")
        self.width = width
        slow_in, fast_in = width, width // BETA
        blocks = [_PathwayBlock(_Stem(3, slow_in, 1), _Stem(3, fast_in, 5), _FuseFastToSlow(fast_in))]
        slow_in += fast_in * FUSION_CHANNEL_RATIO
        slow_out = 4 * width
        for stage, depth in enumerate(STAGE_DEPTHS):
            fast_out = slow_out // BETA
            stride = 1 if stage == 0 else 2
            slow = _ResStage(depth, slow_in, slow_out // 4, slow_out, 1 if stage < 2 else 3, stride)
            fast = _ResStage(depth, fast_in, fast_out // 4, fast_out, 3, stride)
            last = stage == len(STAGE_DEPTHS) - 1
            blocks.append(_PathwayBlock(slow, fast, None if last else _FuseFastToSlow(fast_out)))
            slow_in, fast_in = slow_out + fast_out * FUSION_CHANNEL_RATIO, fast_out
            slow_out *= 2
        self.feature_extraction = nn.Sequential(*blocks)
        self.out_features = feature_dim(width)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> SlowFastFeatures:
        return super().train(False)

    @torch.no_grad()
    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        clip = clip.to(next(self.parameters()).dtype)
        slow, fast = self.feature_extraction(pathways(clip))
        return torch.cat([slow.mean(dim=(2, 3, 4)), fast.mean(dim=(2, 3, 4))], dim=1)


def pathways(clip: torch.Tensor) -> list[torch.Tensor]:
    """``[slow, fast]`` inputs of a clip ``[B, 3, T, H, W]``: fast = all T frames, slow = ceil(T/ALPHA)."""
    num_frames = clip.shape[2]
    num_slow = math.ceil(num_frames / ALPHA)
    index = torch.linspace(0, num_frames - 1, num_slow, device=clip.device).long()
    return [clip.index_select(2, index), clip]


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
    trunk = SlowFastFeatures(config.motion_width)
    setattr(model, TRUNK_NAME, trunk)
    setattr(model, PROJECTOR_NAME, motion_projector(trunk.out_features, _text_hidden_size(config)))


def _text_hidden_size(config) -> int:
    for name in ("text_config", "llm_config"):
        sub = getattr(config, name, None)
        if sub is not None:
            return sub.hidden_size
    return config.hidden_size


# ---------------------------------------------------------------------------------------- weights


_PYTORCHVIDEO_KEY = re.compile(r"^blocks\.(\d+)\.(.*)$")


def load_slowfast_weights(trunk: SlowFastFeatures, path: str | Path) -> None:
    """Load Kinetics SlowFast weights from a local file into ``trunk`` (strict).

    Accepted: a pytorchvideo checkpoint (``SLOWFAST_8x8_R50.pyth``: ``{"model_state": {"blocks.0…"}}``) or
    its bare state dict, ``.safetensors`` or ``torch.save`` files, keys optionally prefixed ``module.``; the
    classifier (``blocks.5``/``blocks.6``) is dropped. Keys already in this module's layout
    (``feature_extraction.…``, or ``slowfast_model.feature_extraction.…`` of a VQAThinker checkpoint) load too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SlowFast weights {str(path)!r}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model_state", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    mapped = {}
    for key, value in state.items():
        key = key.removeprefix("module.").removeprefix(f"{TRUNK_NAME}.")
        match = _PYTORCHVIDEO_KEY.match(key)
        if match:
            if int(match.group(1)) >= len(trunk.feature_extraction):
                continue  # pooling and classifier head
            key = f"feature_extraction.{match.group(1)}.{match.group(2)}"
        mapped[key] = value
    expected = trunk.state_dict()
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"SlowFast weights {str(path)!r} do not have the layout of pytorchvideo's slowfast_r50 "
            f"(keys blocks.0 … blocks.4): {len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} "
            f"unexpected (e.g. {unexpected[:3]})"
        )
    wrong = [k for k, v in mapped.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise ValueError(
            f"SlowFast weights {str(path)!r} have other shapes than a width-{trunk.width} trunk (e.g. {wrong[0]}: "
            f"{tuple(mapped[wrong[0]].shape)} vs {tuple(expected[wrong[0]].shape)}); motion_width 64 is R50"
        )
    trunk.load_state_dict(mapped)
    logger.info("SlowFast weights loaded from %s", path)


# ------------------------------------------------------------------------------- set-up


def motion_weight_names(checkpoint: str | Path) -> list[str]:
    """Names of the motion-branch tensors stored in a local checkpoint's safetensors (empty when none)."""
    checkpoint = Path(checkpoint)
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        import json

        names = list(json.loads(index.read_text())["weight_map"])
    elif (checkpoint / "model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as handle:
            names = list(handle.keys())
    else:
        return []
    return [name for name in names if f"{PROJECTOR_NAME}." in name or f"{TRUNK_NAME}." in name]


def configure_motion(
    config, tokenizer, checkpoint: str | Path, use_motion: bool | None, width: int | None
) -> bool:
    """Decide whether the model gets the motion branch and prepare ``config`` and ``tokenizer`` for it.

    ``use_motion`` None follows the checkpoint: on when its config says so (a vqathinker run saved it) or its
    weights hold a motion branch (the VQAThinker release). When on, ``config`` gets ``use_motion``,
    ``motion_width`` (``width``, else the checkpoint's, else R50's) and ``motion_token_id``, and the tokenizer gets
    :data:`MOTION_TOKEN` as a special token if it lacks it (outside the model's vocabulary: its embedding is
    always replaced). Returns whether the branch is on.
    """
    if use_motion is None:
        use_motion = bool(getattr(config, "use_motion", False)) or bool(motion_weight_names(checkpoint))
    config.use_motion = use_motion
    if not use_motion:
        return False
    config.motion_width = width or getattr(config, "motion_width", None) or R50_WIDTH
    if MOTION_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([MOTION_TOKEN], special_tokens=True)
    config.motion_token_id = tokenizer.convert_tokens_to_ids(MOTION_TOKEN)
    return True


def finish_motion(model: nn.Module, weights: str | Path | None, missing_keys: list[str]) -> None:
    """After loading: freeze the trunk, load its SlowFast weights from ``weights`` if given.

    Without ``weights``, a trunk the checkpoint did not hold stays randomly initialised (fine for tests, not
    for quality): that is logged as a warning.
    """
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


def add_motion_slot(text: str, image_token: str) -> str:
    """``text`` with the motion slot after its last frame placeholder (unchanged without frames or when present).

    Applied by the processor of a model with the motion branch to the rendered prompt, so that every prompt
    (trainer, evaluation, prediction) reads ``…FrameN: <image>\nMotion Feature: <img><MOTION_CONTEXT></img>``,
    the layout of the VQAThinker release's motion prompt.
    """
    if MOTION_TOKEN in text or image_token not in text:
        return text
    cut = text.rindex(image_token) + len(image_token)
    return text[:cut] + "\n" + MOTION_MARKER + MOTION_PLACEHOLDER + text[cut:]


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


# ----------------------------------------------------------------- HF-format (native) backend


class InternVLMotionModel(InternVLModel):
    """``InternVLModel`` plus the motion branch (``config.use_motion``, ``motion_width``, ``motion_token_id``).

    Without a motion token in ``input_ids`` it is ``InternVLModel``; with one, the token embeddings are built
    here (frames and motion) and the language model runs on them.
    """

    def __init__(self, config):
        InternVLPreTrainedModel.__init__(self, config)
        from transformers import AutoModel

        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = InternVLMultiModalProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        if getattr(config, "use_motion", False):
            add_motion_modules(self, config)
        self.post_init()

    def forward(self, input_ids=None, pixel_values=None, inputs_embeds=None, **kwargs):
        motion_token_id = getattr(self.config, "motion_token_id", None)
        if input_ids is None or motion_token_id is None or not bool((input_ids == motion_token_id).any()):
            return super().forward(
                input_ids=input_ids, pixel_values=pixel_values, inputs_embeds=inputs_embeds, **kwargs
            )
        if not getattr(self.config, "use_motion", False):
            raise ValueError(f"the prompt has a {MOTION_TOKEN} token but the model has no motion branch")
        embeds = self.multimodal_embeddings(input_ids, pixel_values)
        return super().forward(inputs_embeds=embeds, **kwargs)

    def multimodal_embeddings(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None):
        """Embeddings of ``input_ids`` with the frame features and motion embeddings in place."""
        image_mask = input_ids == self.config.image_token_id
        embeds = embed_with_motion(
            self,
            input_ids,
            self.get_input_embeddings(),
            self.config.motion_token_id,
            pixel_values,
            image_mask,
            self.config.image_seq_length,
        )
        if pixel_values is not None:
            features = self.get_image_features(pixel_values=pixel_values, return_dict=True).pooler_output
            features = features.to(embeds.device, embeds.dtype)
            if int(image_mask.sum()) != features.shape[0] * features.shape[1]:
                raise ValueError(
                    f"Image features and image tokens do not match, tokens: {int(image_mask.sum())}, "
                    f"features: {features.shape[0] * features.shape[1]}"
                )
            embeds = embeds.masked_scatter(image_mask.unsqueeze(-1), features)
        return embeds


# Checkpoints of InternVLModel are stored with renamed keys; the subclass loads and saves them the same way.
register_checkpoint_conversion_mapping(
    InternVLMotionModel.__name__, get_checkpoint_conversion_mapping(InternVLModel.__name__), overwrite=True
)


class InternVLMotionForConditionalGeneration(InternVLForConditionalGeneration):
    """``InternVLForConditionalGeneration`` whose ``model`` is :class:`InternVLMotionModel`.

    ``generate`` with motion tokens embeds the prompt once and decodes from the embeddings, so the motion
    token id (outside the vocabulary) never reaches the logits processors; the returned sequences still
    start with the caller's ``input_ids``.
    """

    def __init__(self, config):
        InternVLPreTrainedModel.__init__(self, config)
        self.model = InternVLMotionModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def forward(self, *args, labels=None, **kwargs):
        motion_token_id = getattr(self.config, "motion_token_id", None)
        if labels is not None and motion_token_id is not None:  # a placeholder, never a target
            labels = labels.masked_fill(labels == motion_token_id, -100)
        return super().forward(*args, labels=labels, **kwargs)

    def generate(self, input_ids=None, pixel_values=None, attention_mask=None, **kwargs):
        motion_token_id = getattr(self.config, "motion_token_id", None)
        if input_ids is None or motion_token_id is None or not bool((input_ids == motion_token_id).any()):
            return super().generate(
                input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask, **kwargs
            )
        with torch.no_grad():
            embeds = self.model.multimodal_embeddings(input_ids, pixel_values)
        sequences = super().generate(
            input_ids=input_ids.masked_fill(input_ids == motion_token_id, 0),
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            **kwargs,
        )
        if isinstance(sequences, torch.Tensor):
            return restore_prompt(sequences, input_ids)
        sequences.sequences = restore_prompt(sequences.sequences, input_ids)
        return sequences
