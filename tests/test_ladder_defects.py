"""Every defect of the demo ladder, compression and low resolution included, gets worse level by level."""

from __future__ import annotations

import av
import numpy as np
import pytest

from vqathinker.demo.ladder import DEFECTS, PRISTINE, build_ladder, make_content, x264_round_trip

LEVELS = 3


def _decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]) / 255.0


def psnr(frames: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((frames - clean) ** 2)))


def detail(frames: np.ndarray) -> float:
    return float(np.abs(np.diff(frames, axis=2)).mean())


# A statistic per defect that falls as the defect grows (pristine included, as level 0).
SIGNATURES = {
    "dark": lambda f, clean: f.mean(),
    "bright": lambda f, clean: -f.mean(),
    "contrast": lambda f, clean: f.std(),
    "fade": lambda f, clean: (f.max(-1) - f.min(-1)).mean(),
    "blur": lambda f, clean: detail(f),
    "noise": lambda f, clean: -detail(f),
    "compression": lambda f, clean: detail(f),
    "low_resolution": lambda f, clean: detail(f),
}


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    return build_ladder(
        tmp_path_factory.mktemp("ladder"),
        "How good is it?",
        num_contents=2,
        num_heldout=1,
        num_levels=LEVELS,
        num_frames=8,
        size=64,
    )


def test_the_ladder_has_compression_and_low_resolution():
    assert {"compression", "low_resolution"} <= set(DEFECTS)
    assert not DEFECTS["compression"].learnable and not DEFECTS["low_resolution"].learnable


@pytest.mark.parametrize("defect", list(DEFECTS))
@pytest.mark.parametrize("content", [0, 1])
def test_each_level_is_measurably_worse_than_the_one_before(ladder, defect, content):
    def frames(name, level):
        return _decode(ladder.video_root / f"c{content:02d}_{name}_{level}.mp4")

    clean = frames(PRISTINE, 0)
    degraded = [frames(defect, level) for level in range(1, LEVELS + 1)]
    signature = [SIGNATURES[defect](f, clean) for f in [clean, *degraded]]
    assert all(a > b for a, b in zip(signature, signature[1:], strict=False)), signature
    fidelity = [psnr(f, clean) for f in degraded]  # the decoded mp4s against the decoded pristine one
    assert all(a > b + 0.5 for a, b in zip(fidelity, fidelity[1:], strict=False)), fidelity


def test_compression_is_real_x264_at_a_rising_crf():
    clean = make_content(3, num_frames=8, size=64)
    light, heavy = x264_round_trip(clean, crf=30), x264_round_trip(clean, crf=51)
    assert light.shape == heavy.shape == clean.shape
    assert psnr(light, clean) > psnr(heavy, clean) + 3
    # H.264 works on 4×4 / 8×8 / 16×16 blocks: at CRF 51 the jumps across 8-pixel block edges stand out
    jumps = np.abs(np.diff(heavy, axis=2)).mean(axis=(0, 1, 3))
    edges = jumps[7::8].mean() / np.delete(jumps, np.s_[7::8]).mean()
    clean_jumps = np.abs(np.diff(clean, axis=2)).mean(axis=(0, 1, 3))
    assert edges > 1.2 * clean_jumps[7::8].mean() / np.delete(clean_jumps, np.s_[7::8]).mean()


def test_low_resolution_keeps_the_size_and_loses_the_detail():
    clean = make_content(4, num_frames=4, size=64)
    rng = np.random.default_rng(0)
    halved, quartered = (DEFECTS["low_resolution"].apply(clean, s, rng) for s in (1 / 3, 1.0))
    assert halved.shape == quartered.shape == clean.shape
    assert detail(clean) > detail(halved) > detail(quartered)
    # content stays where it was: the mean colour of each quarter of the frame barely moves
    quarters = [np.s_[:, :32, :32], np.s_[:, :32, 32:], np.s_[:, 32:, :32], np.s_[:, 32:, 32:]]
    for quarter in quarters:
        np.testing.assert_allclose(
            quartered[quarter].mean((0, 1, 2)), clean[quarter].mean((0, 1, 2)), atol=0.03
        )
