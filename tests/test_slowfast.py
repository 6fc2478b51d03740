"""The release's motion-branch behaviours as options: pooling, BatchNorm mode, projector init, slot layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vqathinker.model.motion import MOTION_PLACEHOLDER, PROJECTOR_NAME, add_motion_slot, finish_motion
from vqathinker.model.slowfast import SlowFastFeatures, release_pool

WIDTH = 8


def windowed_mean(features: np.ndarray, kernel: tuple[int, int, int], repeat: int) -> np.ndarray:
    """Independent reference: every stride-1 window's mean over the time-repeated map, then their mean."""
    x = np.repeat(features, repeat, axis=2)
    kt, kh, kw = (min(k, n) for k, n in zip(kernel, x.shape[2:], strict=True))
    t, h, w = x.shape[2:]
    windows = [
        x[:, :, i : i + kt, j : j + kh, k : k + kw].mean(axis=(2, 3, 4))
        for i in range(t - kt + 1)
        for j in range(h - kh + 1)
        for k in range(w - kw + 1)
    ]
    return np.mean(windows, axis=0)


def test_release_pool_is_a_centre_weighted_mean():
    features = np.zeros((1, 2, 2, 9, 9))
    features[0, 0, 0, 0, 0] = 1.0  # a corner: in 1 of the 3x3 spatial windows
    features[0, 1, 1, 4, 4] = 1.0  # the centre: in all 9
    pooled = release_pool(torch.tensor(features), (8, 7, 7), repeat=6).numpy()
    np.testing.assert_allclose(pooled, windowed_mean(features, (8, 7, 7), 6))
    assert pooled[0, 1] > 5 * pooled[0, 0]  # the plain mean would weigh both alike
    short = np.random.default_rng(0).normal(size=(2, 3, 3, 2, 2))  # kernels cut to the map's size
    np.testing.assert_allclose(
        release_pool(torch.tensor(short), (32, 7, 7), repeat=4).numpy(), windowed_mean(short, (32, 7, 7), 4)
    )


def test_release_pooling_changes_the_features_and_keeps_their_size():
    torch.manual_seed(0)
    ours, release = SlowFastFeatures(WIDTH), SlowFastFeatures(WIDTH, pooling="release")
    release.load_state_dict(ours.state_dict())
    clips = torch.randn(2, 3, 6, 256, 256)
    a, b = ours(clips), release(clips)
    assert a.shape == b.shape == (2, ours.out_features)
    assert not torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match="pooling"):
        SlowFastFeatures(WIDTH, pooling="max")


def test_batch_norm_train_mode_follows_the_model_and_updates_statistics():
    frozen, release = SlowFastFeatures(WIDTH), SlowFastFeatures(WIDTH, batch_norm="train")
    frozen.train(), release.train()
    assert not frozen.training and release.training
    clips = torch.randn(2, 3, 6, 32, 32)
    before = {k: v.clone() for k, v in release.state_dict().items()}
    release(clips)
    changed = [k for k, v in release.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(
        k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed
    )
    release.eval()
    assert not release.training
    torch.testing.assert_close(release(clips), release(clips))


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.slowfast_model = SlowFastFeatures(WIDTH)
        self.motion_mlp = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 6), nn.GELU(), nn.Linear(6, 6))


@pytest.mark.parametrize("init", ["default", "release"])
def test_projector_init(init):
    model = _Model()
    torch.nn.init.normal_(model.motion_mlp[1].bias)
    before = [p.clone() for p in model.motion_mlp.parameters()]
    finish_motion(model, None, [f"{PROJECTOR_NAME}.1.weight"], projector_init=init)
    if init == "default":
        assert all(torch.equal(a, b) for a, b in zip(before, model.motion_mlp.parameters(), strict=True))
        return
    for linear in (model.motion_mlp[1], model.motion_mlp[3]):
        assert linear.weight.min() >= 0.0 and linear.weight.max() <= 0.01 and linear.weight.std() > 1e-3
        assert not linear.bias.any()
    loaded = _Model()
    finish_motion(loaded, None, [], projector_init="release")  # a projector the checkpoint held: untouched
    assert loaded.motion_mlp[1].weight.min() < 0


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("video:\nFrame1: X\nFrame2: X\nQ", "video:\nFrame1: X\nFrame2: X\nMotion Feature: @\nQ"),
        ("video:\nFrame1:X\nFrame2:X\nQ", "video:\nFrame1:X\nFrame2:X\nMotion Feature:@\nQ"),
        ("video:Frame1: XFrame2: XQ", "video:Frame1: XFrame2: XMotion Feature: @Q"),
        ("Look: X and say", "Look: X\nMotion Feature: @ and say"),
    ],
)
def test_motion_slot_follows_the_frame_labels(prompt, expected):
    assert add_motion_slot(prompt, "X") == expected.replace("@", MOTION_PLACEHOLDER)
