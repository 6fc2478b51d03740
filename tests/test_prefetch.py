"""Decoding ahead in worker processes gives the batches sequential decoding gives, in order."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from media import counter_frames, write_video

from vqathinker.data.video import load_frames
from vqathinker.evaluation.prefetch import decode_pool, decoded_batches


@dataclass(frozen=True)
class Item:
    video: str
    video_path: str


def test_pool_and_sequential_decoding_agree(tmp_path):
    items = []
    for i in range(5):
        path = write_video(tmp_path / f"v{i}.mp4", counter_frames(6, 32, 32, step=10 + 5 * i))
        items.append(Item(f"v{i}.mp4", str(path)))
    (tmp_path / "bad.mp4").write_bytes(b"no video")
    items.insert(2, Item("bad.mp4", str(tmp_path / "bad.mp4")))
    load = functools.partial(load_frames, num_frames=3, size=28)

    def flat(batches):
        return [([i.video for i in kept], [[f.tobytes() for f in v] for v in frames], [f["video"] for f in failed])
                for kept, frames, failed in batches]  # fmt: skip

    sequential = flat(decoded_batches(items, 2, load))
    with decode_pool(2) as pool:
        ahead = flat(decoded_batches(items, 2, load, pool, ahead=1))
    assert ahead == sequential
    assert [kept for kept, _, _ in sequential] == [["v0.mp4", "v1.mp4"], ["v2.mp4"], ["v3.mp4", "v4.mp4"]]
    assert [failed for _, _, failed in sequential] == [[], ["bad.mp4"], []]
    assert len({bytes(b"".join(v)) for _, videos, _ in sequential for v in videos}) == 5  # distinct clips
