"""The ``vqathinker`` console script.

Each sub-command lives in the module that owns its concept and exposes ``main(argv) -> int``; this module
only dispatches, importing the command's module lazily so that ``vqathinker --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "vqathinker.train",
        "GRPO training from a YAML recipe (every field overridable on the command line)",
    ),
    "demo": ("vqathinker.demo", "end-to-end CPU demo: quality-ladder videos, tiny InternVL, GRPO, SRCC/PLCC"),
    "evaluate": (
        "vqathinker.evaluation.evaluate",
        "SRCC/PLCC/KRCC/RMSE of a model on benchmarks, with plots",
    ),
    "predict": ("vqathinker.evaluation.predict", "score and explain one or more videos"),
    "plot-training": (
        "vqathinker.evaluation.report",
        "reward and loss curves (PNG) from a training output dir",
    ),
    "check-data": ("vqathinker.data.check", "validate a dataset and decode every video before a long run"),
    "make-tiny-model": ("vqathinker.model.tiny", "write a tiny random InternVL checkpoint (tests, demo)"),
    "patch-checkpoint": (
        "vqathinker.model.patching",
        "install our modeling_internvl_chat.py into a checkpoint",
    ),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: vqathinker COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `vqathinker COMMAND --help` for the arguments of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"vqathinker: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
