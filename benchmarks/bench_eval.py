"""Evaluation throughput on this machine: videos/s of ``vqathinker evaluate`` with decoding sequential or
overlapped with generation (``--decode_workers``), in 1 or 2 processes (data parallel, ``accelerate launch``).

Writes ``--videos`` real h264 clips (a panning texture, ``--width`` × ``--height``, ``--seconds`` at 30 fps,
B-frames) labelled as a VQAThinker test json, and a tiny random InternVL (:mod:`vqathinker.model.tiny`), then
runs ``vqathinker evaluate`` once per configuration in a fresh subprocess (``OMP_NUM_THREADS=1`` in each
process) and reads the benchmark's ``videos_per_second`` from its report: the scoring only, after the model
is loaded. The decode share is the time ``load_frames`` takes for every clip in this process, over the
sequential one-process scoring time (best of 3). Best of ``--repeats`` runs per configuration; the machine's
load average is printed, since other jobs on it slow every row. The defaults balance decoding and
generation (about half each), where overlapping them can gain the most.

    python benchmarks/bench_eval.py                    # 96 clips of 320x180, 2 s; 8 frames per video
    python benchmarks/bench_eval.py --width 640 --height 360 --seconds 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vqathinker.data.video import load_frames
from vqathinker.model.tiny import make_tiny_model

CONFIGS = {  # name: (processes, decode workers per process)
    "1 process, sequential decoding": (1, 0),
    "1 process, overlapped decoding": (1, 1),
    "2 processes, sequential decoding": (2, 0),
    "2 processes, overlapped decoding": (2, 1),
}


def write_clip(path: Path, width: int, height: int, frames: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    texture = np.kron(small, np.ones((8, 8, 1), np.uint8))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = np.roll(texture, (2 * i, 3 * i), axis=(0, 1))[:height, :width].copy()
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_data(folder: Path, args) -> Path:
    (folder / "clips").mkdir(parents=True)
    annotations = []
    for i in range(args.videos):
        write_clip(folder / "clips" / f"c{i}.mp4", args.width, args.height, 30 * args.seconds, seed=i)
        annotations.append(
            {"image_id": f"c{i}.mp4", "ann_type": "score", "score": str(10 + 80 * i / args.videos)}
        )
    labels = folder / "labels.json"
    labels.write_text(json.dumps({"annotations": annotations}))
    return labels


def run(model: Path, labels: Path, out: Path, processes: int, workers: int, args) -> float:
    """videos/s of one ``vqathinker evaluate`` run."""
    evaluate = ["-m", "vqathinker.cli", "evaluate", "--model_name_or_path", str(model), "--json", str(labels)]
    evaluate += ["--video_root", str(labels.parent / "clips"), "--output_dir", str(out), "--device", "cpu"]
    evaluate += ["--num_frames", str(args.frames), "--max_new_tokens", str(args.new_tokens)]
    evaluate += ["--batch_size", str(args.batch_size), "--decode_workers", str(workers)]
    if processes == 1:
        command = [sys.executable, *evaluate]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", "29577", *evaluate]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "labels.json").read_text())["videos_per_second"]


def decode_time(clips: Path, args) -> float:
    """Seconds ``load_frames`` takes for every clip, in this process."""
    start = time.perf_counter()
    for i in range(args.videos):
        load_frames(clips / f"c{i}.mp4", args.frames, size=56)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8, help="frames per video")
    parser.add_argument(
        "--new_tokens", type=int, default=64, help="max_new_tokens (the random tiny model writes them all)"
    )
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        labels = write_data(folder / "data", args)
        model = make_tiny_model(folder / "tiny")
        decode_seconds = min(decode_time(folder / "data" / "clips", args) for _ in range(3))
        results = {}
        for c, (name, (processes, workers)) in enumerate(CONFIGS.items()):
            runs = [
                run(model, labels, folder / f"out{c}-{k}", processes, workers, args)
                for k in range(args.repeats)
            ]
            results[name] = max(runs)
            print(
                f"{name}: {results[name]:.2f} videos/s (runs: {', '.join(f'{r:.2f}' for r in runs)})",
                flush=True,
            )
    sequential = results["1 process, sequential decoding"]
    share = decode_seconds / (args.videos / sequential)
    print(
        f"\n{args.videos} clips of {args.width}x{args.height}, {args.seconds} s at 30 fps; {args.frames} frames per "
        f"video, tiny InternVL, up to {args.new_tokens} new tokens, batch {args.batch_size}; {os.cpu_count()} CPU "
        f"cores, load average {os.getloadavg()[0]:.1f}. Decoding alone: {args.videos / decode_seconds:.2f} "
        f"videos/s, {100 * share:.0f} % of the sequential one-process time.\n"
    )
    print("| configuration | videos/s | × 1 process, sequential |")
    print("|---|---:|---:|")
    for name, speed in results.items():
        print(f"| {name} | {speed:.2f} | {speed / sequential:.2f} |")
    overlap = results["1 process, overlapped decoding"] / sequential
    parallel = results["2 processes, overlapped decoding"] / results["1 process, overlapped decoding"]
    print(f"\noverlapped / sequential (1 process): {overlap:.2f}× (target ≥ 1.3×)")
    print(f"2 processes / 1 process (overlapped): {parallel:.2f}× (target ≥ 1.7×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
