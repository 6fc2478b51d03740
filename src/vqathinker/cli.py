"""The ``vqathinker`` console script.

Each sub-command is a module of :mod:`vqathinker.commands` exposing ``main(argv) -> int``; this module only
dispatches, importing the command's module lazily so that ``vqathinker --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

from vqathinker import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "vqathinker.commands.train",
        "GRPO training from a YAML recipe (every field overridable on the command line)",
    ),
    "demo": (
        "vqathinker.commands.demo",
        "end-to-end CPU demo: quality-ladder videos, tiny InternVL, GRPO, SRCC/PLCC",
    ),
    "evaluate": (
        "vqathinker.commands.evaluate",
        "SRCC/PLCC/KRCC/RMSE of a model on benchmarks, with plots",
    ),
    "predict": ("vqathinker.commands.predict", "score and explain one or more videos"),
    "plot-training": (
        "vqathinker.commands.plot_training",
        "reward and loss curves (PNG) from a training output dir",
    ),
    "check-data": (
        "vqathinker.commands.check_data",
        "validate a dataset and decode every video before a long run",
    ),
    "make-tiny-model": (
        "vqathinker.commands.make_tiny_model",
        "write a tiny random InternVL checkpoint (tests, demo)",
    ),
    "patch-checkpoint": (
        "vqathinker.commands.patch_checkpoint",
        "install our modeling_internvl_chat.py into a checkpoint",
    ),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: vqathinker [--version] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `vqathinker COMMAND --help` for the arguments of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"vqathinker {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vqathinker: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
