"""``vqathinker patch-checkpoint``: install vqathinker's modeling file into a remote-code InternVL checkpoint."""

from __future__ import annotations

import argparse
import sys

from vqathinker.model.patching import (
    BACKUP_FILE,
    MODELING_FILE,
    default_modeling_file,
    patch_checkpoint,
    revert_checkpoint,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vqathinker patch-checkpoint",
        description="Install vqathinker's modeling_internvl_chat.py into a remote-code InternVL checkpoint "
        "(original backed up with its sha256), or restore the original with --revert.",
    )
    parser.add_argument("checkpoint", help="checkpoint folder (config.json with model_type internvl_chat)")
    parser.add_argument("--revert", action="store_true", help="restore the original modeling file")
    parser.add_argument(
        "--modeling_file",
        "--modeling-file",
        default=None,
        help=f"modeling file to install (default: {default_modeling_file()})",
    )
    args = parser.parse_args(argv)
    try:
        if args.revert:
            result = revert_checkpoint(args.checkpoint)
        else:
            result = patch_checkpoint(args.checkpoint, args.modeling_file)
    except (ValueError, OSError) as error:
        print(f"vqathinker patch-checkpoint: error: {error}", file=sys.stderr)
        return 1
    messages = {
        "patched": f"installed vqathinker's {MODELING_FILE} (sha256 {result.modeling_sha256}); the original "
        f"(sha256 {result.original_sha256}) is kept as {BACKUP_FILE}",
        "updated": f"updated vqathinker's {MODELING_FILE} to sha256 {result.modeling_sha256}",
        "unchanged": f"already carries vqathinker's current {MODELING_FILE} (sha256 {result.modeling_sha256})",
        "reverted": f"restored the original {MODELING_FILE} (sha256 {result.modeling_sha256})",
    }
    print(f"{args.checkpoint}: {messages[result.action]}")
    return 0
