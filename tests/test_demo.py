"""The CPU demo: its quality ladder of real mp4s and (smoke-sized) the whole pipeline."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from vqathinker.demo.ladder import DEFECTS, LEARNABLE_DEFECTS, PRISTINE, build_ladder, level_mos


def _decode(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(float)


@pytest.fixture(scope="module")
def small_ladder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ladder")
    return build_ladder(
        out, "How good is it?", num_contents=3, num_heldout=1, num_levels=2, num_frames=6, size=32
    )


def test_ladder_files_levels_and_split(small_ladder):
    ladder = small_ladder
    assert len(ladder.videos) == 3 * (1 + len(DEFECTS) * 2)
    train, heldout = ladder.split("train"), ladder.split("heldout")
    assert {v.content for v in train} == {0, 1} and {v.content for v in heldout} == {2}
    for video in ladder.videos:
        frames = _decode(ladder.video_root / video.video)
        assert frames.shape == (6, 32, 32, 3)
        assert video.mos == level_mos(video.level, 2)
        assert (video.defect == PRISTINE) == (video.level == 0)
    assert [level_mos(level, 2) for level in range(3)] == [5.0, 3.0, 1.0]
    lines = [json.loads(line) for line in ladder.heldout_jsonl.read_text().splitlines()]
    assert len(lines) == len(heldout)
    assert lines[0]["image"] == [heldout[0].video]
    assert lines[0]["conversations"][1]["value"] == heldout[0].mos
    manifest = json.loads((ladder.root / "ladder.json").read_text())
    assert [m["id"] for m in manifest] == [v.id for v in ladder.videos]
    assert set(LEARNABLE_DEFECTS) == {"dark", "bright", "contrast", "fade"}


def test_ladder_content_moves_and_defects_degrade(small_ladder):
    ladder = small_ladder

    def frames(defect, level, content=0):
        return _decode(ladder.video_root / f"c{content:02d}_{defect}_{level}.mp4")

    clean = frames(PRISTINE, 0)
    assert np.abs(np.diff(clean, axis=0)).mean() > 2  # moving content
    assert np.abs(clean - frames(PRISTINE, 0, content=1)).mean() > 10  # distinct contents
    assert frames("dark", 2).mean() < frames("dark", 1).mean() < clean.mean()
    assert frames("bright", 2).mean() > frames("bright", 1).mean() > clean.mean()
    assert frames("contrast", 2).std() < frames("contrast", 1).std() < clean.std()
    saturation = [(f.max(-1) - f.min(-1)).mean() for f in (clean, frames("fade", 1), frames("fade", 2))]
    assert saturation[0] > saturation[1] > saturation[2]
    detail = [np.abs(np.diff(f, axis=2)).mean() for f in (clean, frames("blur", 1), frames("blur", 2))]
    assert detail[0] > detail[1] > detail[2]
    assert np.abs(np.diff(frames("noise", 2), axis=2)).mean() > detail[0]
