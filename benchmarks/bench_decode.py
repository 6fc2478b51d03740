"""Frame decoding speed: our loader (PyAV plan / decord) against raw decoders, side by side.

Generates 10 s clips (1080p and 360p, 30 fps, h264 with B-frames, a short GOP of 15 frames and a long GOP of
300 = one keyframe), then for 6, 12 and 16 segment-centre frames times:

- raw decoders: ``pyav-seq`` (decode from the start, convert the wanted frames, stop after the last one),
  ``pyav-seek`` (one seek per wanted frame), ``decord`` (``VideoReader.get_batch``), each single-threaded;
- ours: ``load_frames`` with ``backend="pyav"`` / ``"decord"`` at decoded size (``size=None``), and pyav at
  the 448 tile size (adds the bicubic resize). Ours also index the packets (VFR, truncation check) and
  return PIL images (a copy into PIL's 4-byte layout, ~3-5 ms per 1080p frame) where the raw decoders stop
  at numpy arrays.

Each cell is frames/s (best of ``--repeats`` calls, timed as process CPU time: every decoder here is
single-threaded, so a busy machine does not distort the comparison) and, in brackets, the time relative
to the fastest raw decoder of that row (1.00 = as fast; lower is faster). Run: ``python benchmarks/bench_decode.py`` (a few
minutes on 2 cores; ``--quick`` for 360p only).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from vqathinker.data.sampling import sample_frame_indices
from vqathinker.data.video import load_frames

FPS, SECONDS = 30, 10


def synthetic_frames(width: int, height: int, n: int, seed: int = 0):
    """A textured scene panning diagonally with a moving bright square: real motion for the encoder."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    texture = np.kron(small, np.ones((8, 8, 1), np.uint8))  # blocky texture, compressible but not flat
    for i in range(n):
        frame = np.roll(texture, (2 * i, 3 * i), axis=(0, 1))[:height, :width].copy()
        y, x = (5 * i) % (height - height // 6), (7 * i) % (width - width // 6)
        frame[y : y + height // 6, x : x + width // 6] = 235
        yield frame


def encode(path: Path, width: int, height: int, gop: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        for array in synthetic_frames(width, height, FPS * SECONDS):
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def pyav_sequential(path: str, num_frames: int) -> list[np.ndarray]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        wanted = sample_frame_indices(stream.frames, num_frames)
        last, out = wanted[-1], {}
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if i == last:
                break
    return [out[i] for i in wanted]


def pyav_seek(path: str, num_frames: int) -> list[np.ndarray]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        step = int(round(1 / (stream.average_rate * stream.time_base)))  # ticks per frame (CFR)
        start = stream.start_time or 0
        out = []
        for index in sample_frame_indices(stream.frames, num_frames):
            target = start + index * step
            container.seek(target, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts >= target:
                    out.append(frame.to_ndarray(format="rgb24"))
                    break
    return out


def decord_raw(path: str, num_frames: int) -> list[np.ndarray]:
    import decord

    reader = decord.VideoReader(path, num_threads=1)
    return list(reader.get_batch(sample_frame_indices(len(reader), num_frames)).asnumpy())


METHODS: dict[str, tuple[bool, Callable[[str, int], object]]] = {
    # name: (is a raw decoder, function)
    "pyav-seq": (True, pyav_sequential),
    "pyav-seek": (True, pyav_seek),
    "decord": (True, decord_raw),
    "ours:pyav": (False, lambda p, n: load_frames(p, n, size=None, backend="pyav")),
    "ours:decord": (False, lambda p, n: load_frames(p, n, size=None, backend="decord")),
    "ours:pyav@448": (False, lambda p, n: load_frames(p, n, size=448, backend="pyav")),
}


def best_time(fn: Callable[[str, int], object], path: str, num_frames: int, repeats: int) -> float:
    fn(path, num_frames)  # warm-up (page cache, codec init)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn(path, num_frames)
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="360p clips only")
    parser.add_argument(
        "--clips", type=Path, help="folder to keep the generated clips in (default: temporary)"
    )
    args = parser.parse_args()

    sizes = [("360p", 640, 360)] + ([] if args.quick else [("1080p", 1920, 1080)])
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.clips or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clips = []
        for label, width, height in sizes:
            for gop_label, gop in (("short GOP 15", 15), ("long GOP 300", 300)):
                path = folder / f"{label}_gop{gop}.mp4"
                if not path.exists():
                    started = time.perf_counter()
                    encode(path, width, height, gop)
                    print(f"encoded {path.name} in {time.perf_counter() - started:.1f} s", flush=True)
                clips.append((f"{label} {gop_label}", str(path)))

        names = list(METHODS)
        header = f"| {'clip':<22} | {'N':>2} | " + " | ".join(f"{name:>15}" for name in names) + " |"
        rows = [header, "|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|"]
        for label, path in clips:
            for num_frames in (6, 12, 16):
                seconds = {
                    name: best_time(fn, path, num_frames, args.repeats) for name, (_, fn) in METHODS.items()
                }
                fastest_raw = min(t for name, t in seconds.items() if METHODS[name][0])
                cells = [f"{num_frames / seconds[n]:7.1f} ({seconds[n] / fastest_raw:4.2f})" for n in names]
                rows.append(
                    f"| {label:<22} | {num_frames:>2} | " + " | ".join(f"{c:>15}" for c in cells) + " |"
                )
                print(rows[-1], flush=True)
    print("\nframes/s of CPU time (in brackets: time relative to the fastest raw decoder of the row)")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
