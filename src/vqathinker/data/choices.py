"""Multiple-choice questions: the lettered options of a question and the letter of its correct option.

A multiple-choice record's question lists its options one per line, lettered from ``A`` in order::

    Which problem dominates this video?
    A. blur
    B. noise
    C. compression artifacts

An option line is an uppercase letter, then ``.`` or ``)`` (the letter may also stand in parentheses,
``(B) noise``), then the option's text. The options are the LAST run of such lines that starts at ``A`` and
goes on letter by letter; lines after them (an instruction) are allowed. A question needs at least two options.

The correct option is given as its letter (``"B"``, ``"B."``, ``"(B)"``, ``"B) noise"``) or as its exact text
(compared case-insensitively, spaces and one final ``.`` ignored): :func:`label_index`. These are the rules by
which :func:`vqathinker.rewards.parse_choice` reads a model's answer.
"""

from __future__ import annotations

import re
import string

LETTERS = string.ascii_uppercase
"""Option letters, in order: A question has at most 26 options."""

_OPTION_LINE = re.compile(r"^\s*(?:\((?P<paren>[A-Z])\)|(?P<letter>[A-Z])[.)])\s*(?P<text>\S.*?)\s*$")
_LETTER_LABEL = re.compile(
    r"\s*(?:\((?P<paren>[A-Z])\)|(?P<letter>[A-Z])(?:[.):]|(?=\s)|$))\s*(?P<text>.*?)\s*", re.DOTALL
)


def _fold(text: str) -> str:
    return text.strip().removesuffix(".").strip().casefold()


def parse_options(question: str) -> list[str]:
    """The option texts of a question, in letter order (see the module docstring); [] when it has fewer than
    two lettered options."""
    runs: list[list[str]] = []
    run: list[str] = []
    for text in question.splitlines():
        match = _OPTION_LINE.match(text)
        letter = (match.group("paren") or match.group("letter")) if match else None
        if letter is not None and len(run) < len(LETTERS) and letter == LETTERS[len(run)]:
            run.append(match.group("text"))
            continue
        runs.append(run)
        run = [match.group("text")] if letter == "A" else []
    complete = [r for r in [*runs, run] if len(r) >= 2]
    return complete[-1] if complete else []


def format_question(stem: str, options: list[str]) -> str:
    """``stem`` followed by the options, one per line: ``A. first``, ``B. second``, ..."""
    return "\n".join([stem.strip(), *(f"{LETTERS[i]}. {text.strip()}" for i, text in enumerate(options))])


def letters_phrase(num_options: int) -> str:
    """The letters of ``num_options`` options as a phrase: ``"A, B, C or D"``."""
    letters = list(LETTERS[:num_options])
    return ", ".join(letters[:-1]) + f" or {letters[-1]}"


def label_index(label: object, options: list[str]) -> int | None:
    """The index of the option that ``label`` names, or None.

    ``label`` is the (uppercase) letter of one of the options, alone or as ``"B."``, ``"B:"``, ``"(B)"``,
    ``"B)"``, optionally followed by text that must then be that option's own text (``"B) noise"``), or the
    exact text of one option. Texts compare case-insensitively, ignoring spaces at both ends and one final
    ``.``; a text that two options share names neither. Anything else (``"b"``, ``"B or C"``, ``"B, C"``,
    ``"B. blur"`` when B is not blur) names no option.
    """
    if not isinstance(label, str) or not options:
        return None
    folded = [_fold(text) for text in options]
    match = _LETTER_LABEL.fullmatch(label)
    if match:
        index = LETTERS.index(match.group("paren") or match.group("letter"))
        text = match.group("text")
        if index < len(options) and (not text or _fold(text) == folded[index]):
            return index
    named = [i for i, text in enumerate(folded) if text == _fold(label)]
    return named[0] if len(named) == 1 else None
