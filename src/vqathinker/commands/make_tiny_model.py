"""``vqathinker make-tiny-model``: write a tiny random InternVL checkpoint (tests, the CPU demo)."""

from __future__ import annotations

import argparse

from vqathinker.model.tiny import make_tiny_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vqathinker make-tiny-model", description="Write a tiny random InternVL checkpoint."
    )
    parser.add_argument("out_dir", help="folder to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    parser.add_argument(
        "--num_frames", "--num-frames", type=int, default=6, help="default frames per video of the processor"
    )
    args = parser.parse_args(argv)
    path = make_tiny_model(args.out_dir, seed=args.seed, num_frames=args.num_frames)
    print(f"tiny InternVL written to {path}")
    return 0
