"""SlowFast-R50 (Feichtenhofer et al. 2019) without its classifier: the frozen trunk of the motion branch.

A clip ``[B, 3, T, H, W]`` runs through both pathways (the fast one sees every frame, the slow one
``ceil(T / 4)`` of them, evenly spaced, first and last included: the count the fast-to-slow lateral
connections, temporal stride 4, produce) and each pathway's last feature map is pooled to one vector:
2048 + 256 = 2304 features for R50. Two poolings (``pooling``):

- ``"mean"`` (default): the plain mean over time and space.
- ``"release"``: the VQAThinker release's: each pathway's time axis is repeated (``repeat_interleave``) until
  the slow pathway spans :data:`RELEASE_SLOW_STEPS` steps (×6 for 6 frames, the release's training, ×4 for 12
  frames, its evaluation), average-pooled with the Kinetics head's kernels (8, 7, 7) (slow) and (32, 7, 7)
  (fast) at stride 1, then averaged: a centre-weighted mean. A kernel larger than the feature map (a clip
  shorter than 6 frames, tiles under 224 px, where the release fails) is cut to the map's size.

The module names follow pytorchvideo's ``slowfast_r50`` (``blocks.0`` … ``blocks.4``, here under
``feature_extraction.``), which is also the release's layout under ``slowfast_model.``;
:func:`load_slowfast_weights` reads the public Kinetics checkpoint from a local file (nothing is ever
downloaded). ``width`` scales every channel count (64 is R50; 8 runs on a CPU in milliseconds for tests).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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

TRUNK_NAME = "slowfast_model"
"""The trunk's attribute name on a model (the release's)."""
POOLINGS = ("mean", "release")
BATCH_NORM_MODES = ("frozen", "train")
RELEASE_POOL_KERNELS = ((8, 7, 7), (32, 7, 7))
"""Average-pool kernels (time, height, width) of the slow and fast pathways in the release's pooling."""
RELEASE_SLOW_STEPS = 12
"""The release's pooling repeats time until the slow pathway spans this many steps."""


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

    Frozen: parameters do not require gradients and the forward runs under ``no_grad``. ``batch_norm``
    ``"frozen"`` (default) keeps the module in eval mode whatever ``train()`` asks (BatchNorm uses its stored
    Kinetics statistics); ``"train"`` lets it follow the model's mode like the release, whose trunk trains
    with batch statistics and updates (and saves) its running statistics. ``pooling``: see the module.
    """

    def __init__(self, width: int = R50_WIDTH, pooling: str = "mean", batch_norm: str = "frozen"):
        super().__init__()
        if width < BETA or width % BETA:
            raise ValueError(f"SlowFast width must be a positive multiple of {BETA}, got {width}")
        if pooling not in POOLINGS:
            raise ValueError(f"motion pooling must be one of {POOLINGS}, got {pooling!r}")
        if batch_norm not in BATCH_NORM_MODES:
            raise ValueError(f"motion batch_norm must be one of {BATCH_NORM_MODES}, got {batch_norm!r}")
        self.width, self.pooling, self.batch_norm = width, pooling, batch_norm
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
        return super().train(mode and self.batch_norm == "train")

    @torch.no_grad()
    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        clip = clip.to(next(self.parameters()).dtype)
        slow, fast = self.feature_extraction(pathways(clip))
        if self.pooling == "release":
            repeat = max(1, RELEASE_SLOW_STEPS // slow.shape[2])
            slow_kernel, fast_kernel = RELEASE_POOL_KERNELS
            return torch.cat(
                [release_pool(slow, slow_kernel, repeat), release_pool(fast, fast_kernel, repeat)], 1
            )
        return torch.cat([slow.mean(dim=(2, 3, 4)), fast.mean(dim=(2, 3, 4))], dim=1)


def release_pool(features: torch.Tensor, kernel: tuple[int, int, int], repeat: int) -> torch.Tensor:
    """The release's pooling of one pathway ``[B, C, T, H, W]`` → ``[B, C]``: time repeated ``repeat`` times,
    an average pool of ``kernel`` (cut to the map's size) at stride 1, then the mean of the pooled map."""
    features = features.repeat_interleave(repeat, dim=2)
    kernel = tuple(min(k, size) for k, size in zip(kernel, features.shape[2:], strict=True))
    return F.avg_pool3d(features, kernel, stride=1).mean(dim=(2, 3, 4))


def pathways(clip: torch.Tensor) -> list[torch.Tensor]:
    """``[slow, fast]`` inputs of a clip ``[B, 3, T, H, W]``: fast = all T frames, slow = ceil(T/ALPHA)."""
    num_frames = clip.shape[2]
    num_slow = math.ceil(num_frames / ALPHA)
    index = torch.linspace(0, num_frames - 1, num_slow, device=clip.device).long()
    return [clip.index_select(2, index), clip]


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
