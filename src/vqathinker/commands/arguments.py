"""Command-line parsing shared by the commands: recipe parsers whose ``--help`` shows vqathinker's own fields."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from trl import TrlParser

HELP_ALL = "--help_all"


def own_fields(dataclass_type: type) -> list[dataclasses.Field]:
    """The fields a vqathinker dataclass declares itself (new ones and the trl defaults it changes)."""
    declared = dataclass_type.__dict__.get("__annotations__", {})
    return [f for f in dataclasses.fields(dataclass_type) if f.name in declared]


def short_help(prog: str, dataclass_types: Sequence[type]) -> str:
    """Usage and vqathinker's own fields, one group per dataclass, with their defaults and help."""
    lines = [f"usage: {prog} [--config RECIPE.yaml] [--FIELD VALUE ...]", ""]
    lines.append(
        "Every field can be set in the YAML recipe or on the command line (the command line wins). "
        f"Listed: vqathinker's own fields; `{prog} {HELP_ALL}` lists every trl / transformers field too."
    )
    for dataclass_type in dataclass_types:
        lines += ["", f"{dataclass_type.__name__}:"]
        for f in own_fields(dataclass_type):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            shown = "required" if default is dataclasses.MISSING else f"default: {default!r}"
            lines.append(f"  --{f.name}  ({shown})")
            lines.append(f"      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def recipe_parser(prog: str, dataclass_types: Sequence[type], argv: list[str] | None) -> TrlParser:
    """A ``trl.TrlParser`` named ``prog``. ``-h`` / ``--help`` in ``argv`` print :func:`short_help` and exit;
    ``--help_all`` prints argparse's full help of every field."""
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print(short_help(prog, dataclass_types))
        sys.exit(0)
    parser = TrlParser(tuple(dataclass_types), prog=prog)
    if HELP_ALL in args:
        parser.print_help()
        sys.exit(0)
    return parser
