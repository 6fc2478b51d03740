"""``vqathinker check-data``: validate every record and decode every video of a dataset before a long run.

    vqathinker check-data configs/datasets/my_data.yaml
    vqathinker check-data train.jsonl --video_root videos/ [--mos_range 0 100] [--num_frames 6] [--workers K]
    vqathinker check-data Q_Bench_Video_dev.json --video_root video/ --layout qbench
    vqathinker check-data questions.jsonl --video_root videos/ --task choice

Exits 1 when anything is wrong; the report (:mod:`vqathinker.data.check`) lists each kind of problem with its
count and the first ``file:line`` examples.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from vqathinker.data.check import YAML_SUFFIXES, run_check
from vqathinker.data.datasets import LAYOUTS, DatasetSource, load_dataset_config, make_source
from vqathinker.data.records import TASKS
from vqathinker.data.video import BACKENDS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vqathinker check-data",
        description="Validate every record and decode every video of a dataset; exit 1 if anything is wrong.",
    )
    parser.add_argument("data", help="a dataset config (.yaml) or a jsonl file (then give --video_root)")
    parser.add_argument("--video_root", "--video-root", help="folder the jsonl's video paths are relative to")
    parser.add_argument(
        "--mos_range", "--mos-range", nargs=2, type=float, default=[1.0, 5.0], metavar=("LOW", "HIGH"),
        help="MOS scale of the jsonl (default: 1 5)",
    )  # fmt: skip
    parser.add_argument(
        "--task", choices=TASKS, default=None,
        help="what the file's records ask: score (a MOS; the default) or choice (multiple-choice)",
    )  # fmt: skip
    parser.add_argument(
        "--layout", choices=LAYOUTS, default="vqathinker",
        help="the file's layout: vqathinker (the jsonl of the README) or qbench (the Q-Bench release)",
    )  # fmt: skip
    parser.add_argument(
        "--num_frames", "--num-frames", type=int, default=6, help="frames decoded per video (default: 6)"
    )
    parser.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1),
        help="decoding processes (default: min(8, CPUs)); 1 decodes in this process",
    )  # fmt: skip
    parser.add_argument(
        "--decode_backend",
        "--decode-backend",
        choices=BACKENDS,
        default="pyav",
        help="video decoder (default: pyav)",
    )
    parser.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.num_frames < 1:
        parser.error("--num_frames must be >= 1")
    if not args.data.endswith(YAML_SUFFIXES) and not args.video_root:
        parser.error("a jsonl file needs --video_root DIR")
    return args


def _labels(source: DatasetSource) -> str:
    if source.task == "choice":
        return f"multiple-choice, {source.layout} layout"
    return f"MOS {list(source.mos_range)}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.data.endswith(YAML_SUFFIXES):
            sources = load_dataset_config(args.data)
        else:
            jsonl, root = os.path.abspath(args.data), os.path.abspath(args.video_root)
            sources = [
                make_source(
                    "check-data", jsonl, root, args.mos_range, None, 1.0, None, args.task, args.layout
                )
            ]
    except (OSError, ValueError) as exc:
        print(f"check-data: {exc}", file=sys.stderr)
        return 1
    for source in sources:
        print(f"{source.name}: {source.jsonl} (videos under {source.video_root}, {_labels(source)})")
    records_logger = logging.getLogger("vqathinker.data.records")
    level = records_logger.level
    records_logger.setLevel(logging.ERROR)  # bad records are in the summary, not logged one kind at a time
    try:
        report = run_check(
            sources, args.num_frames, args.workers, args.decode_backend, progress=not args.no_progress
        )
    finally:
        records_logger.setLevel(level)
    print(report.format())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
