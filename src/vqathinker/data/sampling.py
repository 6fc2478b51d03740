"""Which frames of a video the model sees: segment centres (ours) or the VQAThinker release's indices.

- ``"centre"`` (default): the frames at the centres of ``num_frames`` equal segments of the clip, by frame
  index for a constant frame rate (:func:`sample_frame_indices`), by presentation time for a variable one
  (so that a VFR clip is sampled evenly in time).
- ``"release"``: the release's formula by frame index, whatever the frame rate
  (:func:`release_frame_indices`); it differs from the segment centres by 0 to 2 frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FRAME_SAMPLINGS = ("centre", "release")

CFR_TOLERANCE = 0.1
"""Frame intervals within this fraction of their median count as a constant frame rate."""


def _segment_centres(times: Sequence, end, num_frames: int) -> list[int]:
    """Indices of the frames on screen at the centres of ``num_frames`` equal segments of
    ``[times[0], end)``; ``times`` are sorted presentation times (ints stay exact)."""
    start, span = times[0], end - times[0]
    picked, k = [], 0
    for i in range(num_frames):
        # the target time is start + (2i + 1) * span / (2 * num_frames): the last frame shown at or before it
        while k + 1 < len(times) and 2 * num_frames * (times[k + 1] - start) <= (2 * i + 1) * span:
            k += 1
        picked.append(k)
    return picked


def _constant_rate(times: Sequence) -> bool:
    """Whether frame intervals are equal up to timestamp rounding (CFR)."""
    deltas = np.diff(np.asarray(times, dtype=np.float64))
    if len(deltas) < 2:
        return True
    median = float(np.median(deltas))
    return bool(np.all(np.abs(deltas - median) <= CFR_TOLERANCE * median))


def pick_frames(times: Sequence, end, num_frames: int, sampling: str = "centre") -> list[int]:
    """Indices (into ``times``, sorted presentation times) of ``num_frames`` frames.

    ``sampling`` ``"centre"``: constant-frame-rate streams are sampled by frame index
    (:func:`sample_frame_indices`, immune to timestamp rounding), variable-frame-rate ones by time over
    ``[times[0], end)``. ``"release"``: :func:`release_frame_indices` by frame index.
    """
    if sampling == "release":
        return release_frame_indices(len(times), num_frames)
    if _constant_rate(times):
        return sample_frame_indices(len(times), num_frames)
    return _segment_centres(times, end, num_frames)


def sample_frame_indices(num_total: int, num_frames: int) -> list[int]:
    """Segment-centre indices of ``num_frames`` frames out of ``num_total`` (sorted; repeats when short)."""
    if num_total < 1 or num_frames < 1:
        raise ValueError(f"need num_total >= 1 and num_frames >= 1, got {num_total} and {num_frames}")
    return [min(((2 * i + 1) * num_total) // (2 * num_frames), num_total - 1) for i in range(num_frames)]


def release_frame_indices(num_total: int, num_frames: int) -> list[int]:
    """The release's indices of ``num_frames`` frames out of ``num_total``: ``int(s/2 + round(s·i))`` with
    ``s = (num_total − 1) / num_frames`` (``round`` to even, as numpy's), for i = 0 … num_frames − 1.

    Example: ``release_frame_indices(300, 6)`` is ``[24, 74, 124, 174, 223, 273]`` where the segment centres
    are ``[25, 75, 125, 175, 225, 275]``.
    """
    if num_total < 1 or num_frames < 1:
        raise ValueError(f"need num_total >= 1 and num_frames >= 1, got {num_total} and {num_frames}")
    step = (num_total - 1) / num_frames
    return [int(step / 2 + round(step * i)) for i in range(num_frames)]
