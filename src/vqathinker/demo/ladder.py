"""The demo's quality ladder: real encoded mp4s of moving synthetic content, each degraded at several levels.

Every *content* is a procedurally generated moving scene (a drifting colour gradient, a moving texture and a
few shapes sliding across the frame), so the videos have motion, colour and edges like a real clip while the
whole dataset is made in seconds from a seed. Each content is encoded once pristine (level 0) and once per
defect and level; the MOS follows the level linearly, from 4.5 (pristine) down to 1.5 (worst level). With
three levels the MOS are 4.5, 3.5, 2.5 and 1.5, the centres of the unit bands of the 1-5 scale, so the first
digit of a score decides most of its regression reward (a band's centre is never closer to a wrong digit).

Defects: under-exposure (``dark``), blown-out highlights (``bright``), contrast loss (``contrast``) and colour
fade (``fade``) change the statistics of every patch, and even a tiny random vision tower learns them in
minutes; ``blur``, ``noise``, ``compression`` (real x264 at a rising CRF) and ``low_resolution`` (downscaled, then
upscaled back) change fine detail, which the pretrained EfficientNet-Lite0 trunk (the demo's default tower) sees
and a random tower does not. The split into training and held-out videos is by content: no held-out scene is
ever trained on.

The jsonl files are in the LSVQ format that :func:`vqathinker.data.read_records` reads; the defect, level and
content of every video are in ``ladder.json`` beside them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from tqdm.auto import tqdm

from vqathinker.data.video import load_frames

PRISTINE = "pristine"


def _dark(frames: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return frames * (1.0 - 0.8 * strength)


def _bright(frames: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    # Over-exposure: the frame is washed toward white, highlights first (detail and contrast are lost).
    return 1.0 - (1.0 - frames) * (1.0 - 0.85 * strength)


def _contrast(frames: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    mean = frames.mean()
    return mean + (frames - mean) * (1.0 - 0.85 * strength)


def _fade(frames: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    luma = frames @ np.array([0.299, 0.587, 0.114])
    return luma[..., None] + (frames - luma[..., None]) * (1.0 - 0.95 * strength)


def _blur(frames: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    sigma = 2.5 * strength * frames.shape[1] / 64
    return gaussian_filter(frames, sigma=(0, sigma, sigma, 0))


def _noise(frames: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return frames + rng.normal(0.0, 0.2 * strength, size=frames.shape)


COMPRESSION_CRF = (30, 51)
"""x264 CRF of the ``compression`` defect: from the first value (strength → 0) to the second (strength 1)."""
LOW_RESOLUTION_FACTOR = 4
"""Downscaling factor of the ``low_resolution`` defect at strength 1 (1 + 3 × strength in general)."""


def _compression(frames: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    # Real H.264 at a rising CRF: blocking, smeared texture, ringing and colour bleeding, as in heavily
    # re-encoded uploads. The ladder encodes the result once more at its own (high) quality.
    low, high = COMPRESSION_CRF
    return x264_round_trip(frames, crf=round(low + (high - low) * strength))


def _low_resolution(frames: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    # Captured or uploaded small, shown large: bicubic downscaling, then bicubic upscaling back.
    height, width = frames.shape[1:3]
    factor = 1 + (LOW_RESOLUTION_FACTOR - 1) * strength
    small = (max(1, round(width / factor)), max(1, round(height / factor)))
    pixels = np.clip(np.rint(frames * 255), 0, 255).astype(np.uint8)
    return np.stack(
        [
            np.asarray(
                Image.fromarray(frame)
                .resize(small, Image.Resampling.BICUBIC)
                .resize((width, height), Image.Resampling.BICUBIC),
                dtype=np.float64,
            )
            / 255
            for frame in pixels
        ]
    )


@dataclass(frozen=True)
class Defect:
    """One kind of degradation: ``apply(frames [T, H, W, 3] in 0..1, strength in (0, 1], rng)``."""

    name: str
    apply: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
    learnable: bool
    """Whether it changes a global statistic of every patch (exposure, contrast, colour), which even a random
    vision tower learns (the report's ``learnable`` entry); the others change fine detail, which takes the
    pretrained trunk."""


DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect("dark", _dark, learnable=True),
        Defect("bright", _bright, learnable=True),
        Defect("contrast", _contrast, learnable=True),
        Defect("fade", _fade, learnable=True),
        Defect("blur", _blur, learnable=False),
        Defect("noise", _noise, learnable=False),
        Defect("compression", _compression, learnable=False),
        Defect("low_resolution", _low_resolution, learnable=False),
    )
}
LEARNABLE_DEFECTS: tuple[str, ...] = tuple(name for name, d in DEFECTS.items() if d.learnable)


@dataclass(frozen=True)
class LadderVideo:
    """One video of the ladder. ``defect`` is ``"pristine"`` at level 0."""

    id: str
    video: str  # path relative to the ladder's video root
    content: int
    defect: str
    level: int
    mos: float
    split: str  # "train" or "heldout"


@dataclass(frozen=True)
class Ladder:
    """Where a built ladder lives and what is in it."""

    root: Path
    video_root: Path
    train_jsonl: Path
    heldout_jsonl: Path
    videos: list[LadderVideo]

    def split(self, name: str) -> list[LadderVideo]:
        return [v for v in self.videos if v.split == name]


def level_mos(level: int, num_levels: int) -> float:
    """MOS of a ladder level: 4.5 at level 0 (pristine) down to 1.5 at ``num_levels``, linearly."""
    return round(4.5 - 3.0 * level / num_levels, 4)


def make_content(seed: int, num_frames: int = 16, size: int = 64) -> np.ndarray:
    """A moving synthetic scene, float RGB ``[num_frames, size, size, 3]`` in 0..1, from ``seed`` alone."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    colours = rng.uniform(0.15, 0.85, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    wave_freq, wave_speed = rng.uniform(0.5, 1.5), rng.uniform(0.02, 0.06)
    tex_freq = rng.uniform(3, 8, size=2) * rng.choice([-1, 1], size=2)
    tex_amp, tex_speed = rng.uniform(0.04, 0.12), rng.uniform(0.1, 0.4)
    shapes = [
        {
            "round": rng.random() < 0.5,
            "colour": rng.uniform(0.05, 0.95, size=3),
            "radius": rng.uniform(0.08, 0.2),
            "pos": rng.uniform(0, 1, size=2),
            "vel": rng.uniform(-0.06, 0.06, size=2),
        }
        for _ in range(rng.integers(2, 6))
    ]
    frames = np.empty((num_frames, size, size, 3))
    projection = np.cos(angle) * xx + np.sin(angle) * yy
    for t in range(num_frames):
        g = 0.5 + 0.5 * np.sin(2 * np.pi * (wave_freq * projection - wave_speed * t))
        frame = colours[0] * (1 - g[..., None]) + colours[1] * g[..., None]
        frame += (
            tex_amp * np.sin(2 * np.pi * (tex_freq[0] * xx + tex_freq[1] * yy) + tex_speed * t)[..., None]
        )
        for shape in shapes:
            cx, cy = (shape["pos"] + shape["vel"] * t) % 1.0
            dx = np.minimum(np.abs(xx - cx), 1 - np.abs(xx - cx))  # wraps around the frame edges
            dy = np.minimum(np.abs(yy - cy), 1 - np.abs(yy - cy))
            r = shape["radius"]
            mask = (dx**2 + dy**2 < r**2) if shape["round"] else (np.maximum(dx, dy) < r)
            frame[mask] = shape["colour"]
        frames[t] = frame
    return np.clip(frames, 0.0, 1.0)


def encode_mp4(
    path: Path | BinaryIO, frames: np.ndarray, fps: int = 8, crf: int = 18, preset: str = "ultrafast"
) -> Path | BinaryIO:
    """Write float RGB frames in 0..1 as an H.264 mp4 (yuv420p) with PyAV, to a file or a binary stream."""
    pixels = np.clip(np.rint(frames * 255), 0, 255).astype(np.uint8)
    target = str(path) if isinstance(path, Path) else path
    with av.open(target, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": preset})
        stream.width, stream.height, stream.pix_fmt = pixels.shape[2], pixels.shape[1], "yuv420p"
        for array in pixels:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def x264_round_trip(frames: np.ndarray, crf: int) -> np.ndarray:
    """``frames`` (float RGB in 0..1) encoded with x264 at ``crf`` (preset medium) in memory and decoded again."""
    buffer = encode_mp4(io.BytesIO(), frames, crf=crf, preset="medium")
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack(decoded).astype(np.float64) / 255


def _lsvq_line(video: LadderVideo, index: int, question: str) -> str:
    record = {
        "id": index,
        "dataset_name": "quality-ladder",
        "image": [video.video],
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": video.mos}],
    }
    return json.dumps(record)


def build_ladder(
    out_dir: str | Path,
    question: str,
    *,
    num_contents: int = 16,
    num_heldout: int = 6,
    num_levels: int = 4,
    defects: Sequence[str] = tuple(DEFECTS),
    train_defects: Sequence[str] | None = None,
    num_frames: int = 16,
    size: int = 64,
    fps: int = 8,
    seed: int = 0,
    show_progress: bool = False,
) -> Ladder:
    """Encode the ladder under ``out_dir`` and write ``train.jsonl``, ``heldout.jsonl`` and ``ladder.json``.

    Contents ``num_contents - num_heldout ..`` are held out. Each held-out content gives one pristine video
    plus ``num_levels`` videos per defect of ``defects``; each training content the same for the defects of
    ``train_defects`` only (default: all of ``defects``), so the others are defects the model never sees in
    training. ``show_progress`` shows a progress bar over the videos.
    """
    if not 0 < num_heldout < num_contents:
        raise ValueError(f"num_heldout must be in 1..{num_contents - 1}, got {num_heldout}")
    unknown = sorted(set(defects) - set(DEFECTS))
    if unknown:
        raise ValueError(f"unknown defects {unknown}; known: {sorted(DEFECTS)}")
    train_defects = list(defects) if train_defects is None else list(train_defects)
    if not set(train_defects) <= set(defects):
        raise ValueError(f"train_defects {train_defects} must be a subset of defects {list(defects)}")
    root = Path(out_dir)
    video_root = root / "videos"
    video_root.mkdir(parents=True, exist_ok=True)
    plan = []  # per content: its split and its (defect, level) videos
    for content in range(num_contents):
        split = "heldout" if content >= num_contents - num_heldout else "train"
        kept = defects if split == "heldout" else [d for d in defects if d in train_defects]
        plan.append(
            (split, [(PRISTINE, 0)] + [(d, level) for d in kept for level in range(1, num_levels + 1)])
        )
    total = sum(len(ladder) for _, ladder in plan)
    videos: list[LadderVideo] = []
    with tqdm(total=total, desc="quality ladder", unit="video", disable=not show_progress) as bar:
        for content, (split, ladder) in enumerate(plan):
            clean = make_content(seed * 100_003 + content, num_frames=num_frames, size=size)
            for defect, level in ladder:
                vid = f"c{content:02d}_{defect}_{level}"
                if level == 0:
                    frames = clean
                else:
                    rng = np.random.default_rng([seed, content, level, list(DEFECTS).index(defect)])
                    frames = DEFECTS[defect].apply(clean, level / num_levels, rng)
                encode_mp4(video_root / f"{vid}.mp4", np.clip(frames, 0.0, 1.0), fps=fps)
                videos.append(
                    LadderVideo(
                        vid, f"{vid}.mp4", content, defect, level, level_mos(level, num_levels), split
                    )
                )
                bar.update()
    result = Ladder(root, video_root, root / "train.jsonl", root / "heldout.jsonl", videos)
    for split, path in (("train", result.train_jsonl), ("heldout", result.heldout_jsonl)):
        lines = [_lsvq_line(v, i, question) for i, v in enumerate(result.split(split))]
        path.write_text("\n".join(lines) + "\n")
    (root / "ladder.json").write_text(json.dumps([asdict(v) for v in videos], indent=1))
    return result


def decode_split(ladder: Ladder, split: str, num_frames: int, size: int, backend: str):
    """Frames of every video of a split (decoded once, kept in memory: the ladder is small)."""
    videos = ladder.split(split)
    frames = [
        load_frames(ladder.video_root / v.video, num_frames, size=size, backend=backend)
        for v in tqdm(videos, desc=f"decode {split}", unit="video", leave=False)
    ]
    return videos, frames
