"""Real media files for the tests, encoded at test time with PyAV (no fixtures on disk, no mocks)."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def counter_frames(n: int, width: int = 64, height: int = 48, step: int = 9) -> list[np.ndarray]:
    """``n`` flat grey RGB frames whose brightness encodes the frame index (``16 + step * i``, capped at 235)."""
    frames = []
    for i in range(n):
        value = min(16 + step * i, 235)
        frames.append(np.full((height, width, 3), value, dtype=np.uint8))
    return frames


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int | Fraction = 10,
    codec: str = "libx264",
    gop: int | None = None,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    rotation: int | None = None,
    pts: list[int] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB uint8 frames into ``path`` (container from the suffix) and return the path.

    ``gop`` sets the keyframe interval, ``rotation`` writes display-matrix rotation metadata (degrees
    counter-clockwise, as ``VideoFrame.rotation`` reads it back), ``pts`` gives explicit presentation
    timestamps in units of ``1/fps`` (variable frame rate), ``container_options`` go to the muxer
    (e.g. ``{"movflags": "faststart"}``).
    """
    path = Path(path)
    frames = list(frames)
    height, width = frames[0].shape[:2]
    opts = {"crf": "10", "preset": "ultrafast"} if codec == "libx264" else {}
    opts.update(options or {})
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = Fraction(1) / Fraction(fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: str | Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An AAC file (container from the suffix, e.g. .m4a or .mp4) with a silent audio stream and no video."""
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        samples = 1024
        for i in range(int(seconds * rate) // samples):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, samples), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, i * samples
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
