"""``vqathinker plot-training``: reward and loss curves (PNG) from a training run's output folder."""

from __future__ import annotations

import argparse

from vqathinker.evaluation.report import plot_training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vqathinker plot-training",
        description="Reward and loss curves (PNG) from the trainer_state.json of a training output dir "
        "(the newest of OUTPUT_DIR and its checkpoint-*/ folders).",
    )
    parser.add_argument("output_dir", help="the training run's output_dir")
    parser.add_argument(
        "--output_file",
        "--output-file",
        "--out",
        default=None,
        help="PNG to write (default: OUTPUT_DIR/training_curves.png)",
    )
    args = parser.parse_args(argv)
    try:
        path = plot_training(args.output_dir, args.output_file)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    print(path)
    return 0
