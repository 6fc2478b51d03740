"""Video frames for the model: segment-centre sampling, decoding backends, resize to the tile size.

:func:`load_frames` returns ``num_frames`` RGB :class:`PIL.Image.Image` of ``size``×``size`` (bicubic), the
frames at the centres of ``num_frames`` equal segments of the clip (as the VQAThinker release samples): by frame index for a
constant frame rate (:mod:`vqathinker.data.sampling`), by presentation time for a variable frame rate, so that
a VFR clip is sampled evenly in time. Short clips repeat frames, still images (.jpg, .png...) are repeated
``num_frames`` times, and display-matrix rotation (phone videos) is applied.

Backends:

- ``"pyav"`` (default): one demux pass reads every packet's timestamp and keyframe flag (no decoding), then
  a decode plan per file: decode sequentially from the start and stop after the last needed frame, jumping
  ahead with a seek only where a keyframe lies far enough past the current position to skip more frames than
  a seek costs. Long-GOP files therefore decode sequentially (never slower than a plain decode) and
  short-GOP long files decode a few GOPs. Where decoded timestamps cannot place the frames (AVI with
  B-frames has none), it decodes sequentially and counts frames.
- ``"decord"``: the optional decord package (``pip install vqathinker[decord]``), which applies the display
  rotation itself; truncation is checked against PyAV's reading of the header. decord 0.6 fails on some
  tiny frame sizes (e.g. 48×32, or 64×48 rotated), raising :class:`VideoDecodeError`, and returns wrong
  frames for some B-frame streams (h264 in MPEG-TS, HEVC in Matroska): prefer PyAV.
- ``"auto"``: PyAV, then decord when PyAV cannot read a file.

Every unreadable input (missing, 0-byte, not a video, audio-only, truncated, corrupt) raises
:class:`VideoDecodeError`, whose message starts with the file's path and whose ``kind`` names the problem.
"""

from __future__ import annotations

import bisect
import importlib.util
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

from vqathinker.data.sampling import FRAME_SAMPLINGS, pick_frames

BACKENDS = ("pyav", "decord", "auto")
STILL_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

SEEK_COST_FRAMES = 4
"""A seek (demuxer reposition + decoder flush + refilling the reorder buffer) costs about this many decoded
frames; the PyAV plan only seeks past a keyframe that skips more frames than this."""

MIN_COVERAGE = 0.9
"""A stream whose packets cover less than this fraction of its declared duration is reported truncated."""


class VideoDecodeError(RuntimeError):
    """A video (or still image) that cannot be read. The message starts with the path.

    ``kind`` is one of ``missing``, ``unreadable``, ``empty``, ``no_video_stream``, ``truncated``,
    ``corrupt``, ``backend_unavailable``.
    """

    def __init__(self, path: str | os.PathLike, reason: str, kind: str = "corrupt"):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.kind = str(path), reason, kind

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.path, self.reason, self.kind)


def load_frames(
    path: str | os.PathLike,
    num_frames: int,
    size: int | None = 448,
    backend: str = "pyav",
    sampling: str = "centre",
) -> list[Image.Image]:
    """``num_frames`` RGB frames of ``path`` at segment centres, resized to ``size``×``size`` (bicubic).

    ``size=None`` keeps the decoded (rotated) size. ``sampling`` ``"release"`` takes the release's frame
    indices instead (:func:`vqathinker.data.sampling.release_frame_indices`). Repeated frames are the same
    image object. Raises :class:`VideoDecodeError` for any unreadable input.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if sampling not in FRAME_SAMPLINGS:
        raise ValueError(f"sampling must be one of {FRAME_SAMPLINGS}, got {sampling!r}")
    path = os.fspath(path)
    try:
        empty = os.stat(path).st_size == 0
    except FileNotFoundError:
        raise VideoDecodeError(path, "file not found", kind="missing") from None
    except OSError as exc:
        raise VideoDecodeError(path, f"cannot read ({_reason(exc)})", kind="unreadable") from None
    if empty:
        raise VideoDecodeError(path, "empty file (0 bytes)", kind="empty")
    if Path(path).suffix.lower() in STILL_IMAGE_SUFFIXES:
        arrays, picked = [_read_still_image(path)], [0] * num_frames
    elif backend == "decord":
        arrays, picked = _decode_decord(path, num_frames, sampling)
    elif backend == "pyav":
        arrays, picked = _decode_pyav(path, num_frames, sampling)
    else:
        try:
            arrays, picked = _decode_pyav(path, num_frames, sampling)
        except VideoDecodeError as pyav_error:
            try:
                arrays, picked = _decode_decord(path, num_frames, sampling)
            except VideoDecodeError:
                raise pyav_error from None
    images = [_to_image(array, size) for array in arrays]
    return [images[i] for i in picked]


def _to_image(array: np.ndarray, size: int | None) -> Image.Image:
    image = Image.fromarray(array, mode="RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return image


def _read_still_image(path: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except OSError as exc:  # PIL.UnidentifiedImageError is an OSError
        raise VideoDecodeError(path, f"cannot read image ({exc})", kind="corrupt") from None


def _rotate(array: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as ``VideoFrame.rotation``)."""
    quarter_turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(array, quarter_turns)) if quarter_turns else array


# --------------------------------------------------------------------------------------------------- PyAV


@dataclass
class _StreamIndex:
    """What one demux pass knows about a video stream, in presentation order."""

    times: list[int]
    """Presentation timestamp of each frame (stream time base), sorted."""
    end: int
    """End of the last frame."""
    keyframes: list[int]
    """Indices (into ``times``) of the keyframes."""


def _open(path: str) -> av.container.InputContainer:
    try:
        return av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(path, f"cannot open as a video ({_reason(exc)})", kind="corrupt") from None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise VideoDecodeError(path, f"no video stream (streams: {kinds})", kind="no_video_stream")
    return container.streams.video[0]


def _declared_seconds(stream: av.video.stream.VideoStream) -> float | None:
    """The stream's duration from the header (mp4: the track; Matroska: its DURATION tag), if any."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    match = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", tag or "")
    if match:
        return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
    return None


def _check_complete(
    path: str, stream: av.video.stream.VideoStream, num_packets: int, covered_seconds: float
) -> None:
    """Raise ``truncated`` when the header promises more frames or time than the file holds."""
    declared_frames = stream.frames
    if declared_frames and num_packets < declared_frames:
        raise VideoDecodeError(
            path, f"truncated: {num_packets} of {declared_frames} frames present", kind="truncated"
        )
    declared = _declared_seconds(stream)
    if declared and covered_seconds < MIN_COVERAGE * declared:
        raise VideoDecodeError(
            path, f"truncated: frames cover {covered_seconds:.2f} s of {declared:.2f} s", kind="truncated"
        )


def _index_stream(container: av.container.InputContainer, stream, path: str) -> _StreamIndex:
    """Demux (without decoding) every packet of the video stream: timestamps and keyframes."""
    entries: list[tuple[int, bool]] = []  # (pts, keyframe)
    durations: list[int] = []
    num_packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            num_packets += 1
            if packet.is_discard:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                raise VideoDecodeError(path, "video packets carry no timestamps", kind="corrupt")
            entries.append((pts, packet.is_keyframe))
            durations.append(packet.duration or 0)
    except av.FFmpegError as exc:
        raise VideoDecodeError(path, f"cannot demux ({_reason(exc)})", kind="corrupt") from None
    if not entries:
        declared = stream.frames or _declared_seconds(stream)  # the header promised some: truncated
        raise VideoDecodeError(
            path, "the video stream has no frames", kind="truncated" if declared else "corrupt"
        )
    order = sorted(range(len(entries)), key=lambda i: entries[i][0])
    times = [entries[i][0] for i in order]
    positive = [d for d in durations if d > 0]
    last = durations[order[-1]] or (int(np.median(positive)) if positive else 1)
    end = times[-1] + max(last, 1)
    _check_complete(path, stream, num_packets, float((end - times[0]) * stream.time_base))
    keyframes = [rank for rank, i in enumerate(order) if entries[i][1]]
    return _StreamIndex(times=times, end=end, keyframes=keyframes)


def _plan(index: _StreamIndex, targets: list[int]) -> list[tuple[int | None, list[int]]]:
    """Groups of target frame indices, each decoded after an optional seek to a keyframe index.

    Starting from frame 0, a target is reached by decoding on from the current position unless a keyframe
    after that position (and at or before the target) skips more than :data:`SEEK_COST_FRAMES` frames.
    """
    groups: list[tuple[int | None, list[int]]] = []
    position = 0
    for target in targets:
        i = bisect.bisect_right(index.keyframes, target) - 1
        keyframe = index.keyframes[i] if i >= 0 else None
        if keyframe is not None and keyframe - position > SEEK_COST_FRAMES:
            groups.append((keyframe, [target]))
        elif groups:
            groups[-1][1].append(target)
        else:
            groups.append((None, [target]))
        position = target + 1
    return groups


class _Unplaceable(Exception):
    """Decoded timestamps cannot place the frames: a seek failed or overshot its keyframe, or the pts are
    missing or out of order (AVI with B-frames stores none). Decoding from a fresh start and counting frames
    is then exact."""


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """The frame as displayed: RGB, display-matrix rotation applied."""
    return _rotate(frame.to_ndarray(format="rgb24"), frame.rotation)


def _collect(frames: Iterator[av.VideoFrame], wanted: list[tuple[int, int]], out: dict[int, np.ndarray]):
    """Take from ``frames`` (presentation order) the frame on screen at each wanted ``(timestamp, index)``.

    Frames are converted as soon as they are taken (while in cache, and so the decoder can reuse buffers)."""
    previous, i = None, 0
    for frame in frames:
        pts = frame.pts
        if pts is None or (previous is not None and pts <= previous.pts):
            raise _Unplaceable
        while i < len(wanted) and wanted[i][0] < pts:
            if previous is None:
                raise _Unplaceable
            out[wanted[i][1]] = _rgb(previous)
            i += 1
        if i < len(wanted) and wanted[i][0] == pts:
            out[wanted[i][1]] = _rgb(frame)
            i += 1
        if i == len(wanted):
            return
        previous = frame
    if previous is None:
        raise av.InvalidDataError(0, "no frame could be decoded")
    last = _rgb(previous)
    for _, k in wanted[i:]:  # the decoder ended early: the last frame stays on screen
        out[k] = last


def _decode_groups(container, stream, index: _StreamIndex, groups) -> dict[int, np.ndarray]:
    """The target frames (by index), decoded group by group after each group's seek. The container has been
    read to the end by the index pass: the first group rewinds to the start (or seeks to its keyframe)."""
    out: dict[int, np.ndarray] = {}
    for i, (keyframe, targets) in enumerate(groups):
        if keyframe is not None or i == 0:  # mp4 and Matroska seek by presentation time
            try:
                container.seek(index.times[keyframe or 0], stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:  # not seekable (e.g. some raw streams): decode from a fresh start
                raise _Unplaceable from None
        _collect(container.decode(stream), [(index.times[t], t) for t in targets], out)
    return out


def _decode_counting(path: str, targets: list[int]) -> dict[int, np.ndarray]:
    """The target frames (by index), decoding from the start and counting frames in output order."""
    out: dict[int, np.ndarray] = {}
    wanted, last = set(targets), None
    with _open(path) as container:
        for k, frame in enumerate(container.decode(_video_stream(container, path))):
            last = frame
            if k in wanted:
                out[k] = _rgb(frame)
            if k == targets[-1]:
                break
    if last is None:
        raise av.InvalidDataError(0, "no frame could be decoded")
    missing = [t for t in targets if t not in out]  # fewer frames than packets: the last one stays on screen
    return out | dict.fromkeys(missing, _rgb(last)) if missing else out


def _decode_pyav(path: str, num_frames: int, sampling: str) -> tuple[list[np.ndarray], list[int]]:
    # one container for the index pass and the decoding: opening probes (decodes) the first frames
    with _open(path) as container:
        stream = _video_stream(container, path)
        index = _index_stream(container, stream, path)
        picked = pick_frames(index.times, index.end, num_frames, sampling)
        targets = sorted(set(picked))
        try:
            try:
                frames = _decode_groups(container, stream, index, _plan(index, targets))
            except _Unplaceable:
                frames = _decode_counting(path, targets)
        except av.FFmpegError as exc:
            raise VideoDecodeError(path, f"cannot decode ({_reason(exc)})", kind="corrupt") from None
    return [frames[t] for t in targets], [targets.index(k) for k in picked]


# ------------------------------------------------------------------------------------------------- decord


def _decord_read(path: str, num_frames: int, sampling: str) -> tuple[list[np.ndarray], list[int]]:
    """Frames read by decord (which applies the display rotation itself); header checks come from PyAV."""
    import decord

    with _open(path) as container:
        stream = _video_stream(container, path)
        reader = decord.VideoReader(path, num_threads=1)
        num_total = len(reader)
        if num_total == 0:
            raise VideoDecodeError(path, "the video stream has no frames", kind="corrupt")
        stamps = reader.get_frame_timestamp(np.arange(num_total))
        _check_complete(path, stream, num_total, float(stamps[-1, 1] - stamps[0, 0]))
    picked = pick_frames(stamps[:, 0].tolist(), float(stamps[-1, 1]), num_frames, sampling)
    targets = sorted(set(picked))
    return list(reader.get_batch(targets).asnumpy()), [targets.index(k) for k in picked]


def _decode_decord(path: str, num_frames: int, sampling: str) -> tuple[list[np.ndarray], list[int]]:
    if importlib.util.find_spec("decord") is None:
        raise VideoDecodeError(
            path, "decord is not installed (pip install 'vqathinker[decord]')", kind="backend_unavailable"
        )
    try:
        return _decord_read(path, num_frames, sampling)
    except VideoDecodeError:
        raise
    except Exception as exc:  # decord raises DECORDError, RuntimeError, ValueError...
        raise VideoDecodeError(path, f"decord cannot decode ({exc})", kind="corrupt") from None
