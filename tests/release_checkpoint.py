"""Writes a tiny remote-code checkpoint laid out like the VQAThinker release's (for the tests).

The release's ``InternVLChatModel`` has, beside ``vision_model.*``, ``mlp1.{0,1,3}`` and ``language_model.*``:

- ``motion_mlp.{0,1,3}``: LayerNorm(2304), Linear(2304, d), Linear(d, d) (d: the LLM width);
- ``slowfast_model.feature_extraction.{0..4}.*``: pytorchvideo's ``slowfast_r50`` blocks 0-4 with their
  BatchNorm buffers; its pooling modules hold no tensors.

The SlowFast keys and shapes are generated here from pytorchvideo's R50 layout, independently of
``vqathinker.model.slowfast``, and the config has no vqathinker motion settings (the release's has none).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tests.remote_checkpoint import write_remote_checkpoint

STAGE_DEPTHS = (3, 4, 6, 3)


def _conv_bn(state: dict, prefix: str, conv: str, norm: str, shape: tuple[int, ...]) -> None:
    state[f"{prefix}{conv}.weight"] = torch.randn(shape) * 0.05
    channels = shape[0]
    state[f"{prefix}{norm}.weight"] = torch.rand(channels) + 0.5
    state[f"{prefix}{norm}.bias"] = torch.randn(channels) * 0.1
    state[f"{prefix}{norm}.running_mean"] = torch.randn(channels) * 0.1
    state[f"{prefix}{norm}.running_var"] = torch.rand(channels) + 0.5
    state[f"{prefix}{norm}.num_batches_tracked"] = torch.tensor(1000)


def release_slowfast_state(prefix: str = "slowfast_model.feature_extraction.") -> dict[str, torch.Tensor]:
    """Random tensors under the names and shapes of pytorchvideo's slowfast_r50 blocks 0-4."""
    state: dict[str, torch.Tensor] = {}
    _conv_bn(state, f"{prefix}0.multipathway_blocks.0.", "conv", "norm", (64, 3, 1, 7, 7))
    _conv_bn(state, f"{prefix}0.multipathway_blocks.1.", "conv", "norm", (8, 3, 5, 7, 7))
    _conv_bn(state, f"{prefix}0.multipathway_fusion.", "conv_fast_to_slow", "norm", (16, 8, 7, 1, 1))
    slow_in, fast_in = 64 + 16, 8
    for stage, depth in enumerate(STAGE_DEPTHS, start=1):
        slow_out = 256 * 2 ** (stage - 1)
        fast_out = slow_out // 8
        for path, c_in, c_out, kt in (
            (0, slow_in, slow_out, 1 if stage < 3 else 3),
            (1, fast_in, fast_out, 3),
        ):
            for i in range(depth):
                block = f"{prefix}{stage}.multipathway_blocks.{path}.res_blocks.{i}."
                inner, dim_in = c_out // 4, c_in if i == 0 else c_out
                if i == 0:
                    _conv_bn(state, block, "branch1_conv", "branch1_norm", (c_out, dim_in, 1, 1, 1))
                _conv_bn(state, f"{block}branch2.", "conv_a", "norm_a", (inner, dim_in, kt, 1, 1))
                _conv_bn(state, f"{block}branch2.", "conv_b", "norm_b", (inner, inner, 1, 3, 3))
                _conv_bn(state, f"{block}branch2.", "conv_c", "norm_c", (c_out, inner, 1, 1, 1))
        if stage < len(STAGE_DEPTHS):
            fusion = f"{prefix}{stage}.multipathway_fusion."
            _conv_bn(state, fusion, "conv_fast_to_slow", "norm", (2 * fast_out, fast_out, 7, 1, 1))
        slow_in, fast_in = slow_out + 2 * fast_out, fast_out
    return state


def write_release_checkpoint(out_dir: str | Path, seed: int = 0) -> Path:
    """The tiny remote-code checkpoint (original modeling file, unpatched) plus the release's motion branch."""
    out_dir = write_remote_checkpoint(out_dir, seed=seed, patched=False)
    state = load_file(str(out_dir / "model.safetensors"))
    hidden = json.loads((out_dir / "config.json").read_text())["llm_config"]["hidden_size"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        state.update(release_slowfast_state())
        state["motion_mlp.0.weight"], state["motion_mlp.0.bias"] = torch.ones(2304), torch.zeros(2304)
        state["motion_mlp.1.weight"] = torch.rand(hidden, 2304) * 0.01
        state["motion_mlp.1.bias"] = torch.zeros(hidden)
        state["motion_mlp.3.weight"] = torch.rand(hidden, hidden) * 0.01
        state["motion_mlp.3.bias"] = torch.zeros(hidden)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir
