"""Reading completions: their text, the score or option in their answer, and the columns a batch carries."""

from __future__ import annotations

import functools
import math
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from vqathinker.rewards.release import float_decimals, release_score

Completion = str | Sequence[Mapping[str, Any]]

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
# ASCII digits only; a sign is "+", "-" or the Unicode minus sign U+2212.
_NUMBER_RE = re.compile(
    r"[-+\u2212]?(?P<body>[0-9]+(?:\.(?P<frac>[0-9]*))?|\.(?P<lead_frac>[0-9]+))(?:[eE][-+]?[0-9]+)?"
)
# A number directly followed by "," or "." and a digit ("3,5", "1,000", "1.2.3") is ambiguous.
_AMBIGUOUS_TAIL_RE = re.compile(r"[.,][0-9]")
_FORMAT_RE = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", re.DOTALL)
_FORMAT_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
# A lettered answer (the rules of vqathinker.data.choices.label_index, which reads the dataset's labels).
_CHOICE_RE = re.compile(
    r"\s*(?:\((?P<paren>[A-Z])\)|(?P<letter>[A-Z])(?:[.):]|(?=\s)|$))\s*(?P<text>.*?)\s*", re.DOTALL
)
_TASKS = ("score", "choice")
_LETTERS = string.ascii_uppercase
# Predictions are clipped to +-_PRED_CLIP inside the rank reward so that their mean and variance stay finite.
_PRED_CLIP = 1e6


def completion_text(completion: Completion) -> str:
    """The text of one completion: the string itself, or the ``content`` of the last message of a
    conversational completion (trl's ``[{"role": "assistant", "content": str}]``)."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    if not isinstance(content, str):
        raise TypeError(f"expected the completion's content to be a str, got {type(content).__name__}")
    return content


def _completion_texts(completions: Sequence[Completion], func: str) -> list[str]:
    """The texts of a batch of completions; a single string (which would be read one character per
    completion) is a TypeError."""
    if isinstance(completions, str | bytes):
        raise TypeError(
            f"{func} takes a list of completions, got a single {type(completions).__name__} "
            f"({completions[:40]!r}...): pass [text]"
        )
    return [completion_text(c) for c in completions]


def _task_rows(task: Sequence[str] | None, n_completions: int, kind: str) -> list[bool]:
    """Which completions belong to rows of ``kind`` (``task``: the dataset's column; without it, all)."""
    if task is None:
        return [True] * n_completions
    if isinstance(task, str | bytes) or len(task) != n_completions:
        raise ValueError(f"task must be a list of one task per completion ({n_completions}), got {task!r}")
    unknown = sorted(set(task) - set(_TASKS))
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {list(_TASKS)}")
    return [value == kind for value in task]


def _mos_values(
    mos: Sequence[float], n_completions: int, rows: Sequence[bool] | None = None
) -> list[float | None]:
    """``mos`` as floats, one per completion (None where ``rows`` is False: not a score row); None, a
    non-number or a non-finite value is an error naming its row (the completion's index in the batch)."""
    if isinstance(mos, str | bytes):
        raise TypeError(f"mos must be a list of numbers, one per completion, got the string {mos!r}")
    if len(mos) != n_completions:
        raise ValueError(f"got {n_completions} completions but {len(mos)} mos values")
    values: list[float | None] = []
    for row, value in enumerate(mos):
        if rows is not None and not rows[row]:
            values.append(None)
            continue
        if value is None:
            raise TypeError(f"mos[{row}] is None: completion {row} has no MOS (its dataset row lacks 'mos')")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"mos[{row}] = {value!r} is not a number (completion {row})") from None
        if not math.isfinite(number):
            raise ValueError(f"mos[{row}] = {value!r} is not finite (completion {row})")
        values.append(number)
    return values


def _is_token_char(char: str) -> bool:
    """A letter, mark or digit of any script, or a connector such as ``_``: part of a word or number."""
    category = unicodedata.category(char)
    return category[0] in "LMN" or category == "Pc"


def _first_number(answer: str) -> re.Match[str] | None:
    """The first :data:`_NUMBER_RE` match of ``answer`` that does not continue another token.

    A leading-dot match right after a token character (``".5"`` in ``"v.5"`` or ``"\u0663.5"``) is the tail
    of that token: it is skipped whole, digits included, and the search goes on after it. (Every other
    match starts at a sign, at a digit run's first digit, or at a ``.`` after a non-token character.)
    """
    position = 0
    while (match := _NUMBER_RE.search(answer, position)) is not None:
        start = match.start("body")
        if not (match.group("lead_frac") and start > 0 and _is_token_char(answer[start - 1])):
            return match
        position = match.end()
    return None


def _parse_answer(text: str) -> tuple[float, int] | None:
    """(score, number of decimals written) of the last answer block, or None; see :func:`parse_score`."""
    answers = _ANSWER_RE.findall(text)
    if not answers:
        return None
    answer = answers[-1]
    match = _first_number(answer)
    if match is None or _AMBIGUOUS_TAIL_RE.match(answer, match.end()):
        return None
    value = float(match.group().replace("\u2212", "-"))
    if not math.isfinite(value):
        return None
    decimals = match.group("frac") if match.group("frac") is not None else match.group("lead_frac") or ""
    return value, len(decimals)


def parse_score(text: str) -> float | None:
    """The quality score a completion answers: the first number inside its LAST ``<answer>…</answer>`` block.

    Returns None (never a random or default value) when there is no closed answer block, when the block
    holds no number, when that number is ambiguous, or when it is not finite. Rules, in order:

    - Tags are case-sensitive. With several answer blocks the last one counts.
    - The first number of the block counts, wherever it stands (``"x264 at 3.5"`` → 264.0), but a
      leading-dot number never continues another token: a ``.`` right after a letter, mark or digit of any
      script (or ``_``) joins its digits to that token, so ``"v.5"`` and ``"\u0663.5"`` (an Arabic-Indic
      three) hold no number (neither 0.5 nor 5) and ``"v.5 then 3.25"`` → 3.25.
    - A number is an optional sign (``+``, ``-`` or the Unicode minus ``−``), ASCII digits with an optional
      ``.`` fraction, and an optional exponent: ``"4."`` → 4.0, ``".5"`` → 0.5, ``"-2"`` → -2.0,
      ``"1e1"`` → 10.0 (scientific notation is read as written; out-of-range values earn little reward).
    - Decimal commas are NOT read: ``"3,5"`` → None. It could mean 3.5, 3 and 5, or a thousands separator
      (``"1,000"``); guessing would reward or punish a value the model may not have meant, while None
      earns no score reward and is counted as unparsed in evaluation. The same holds for any first number
      directly followed by ``,`` or ``.`` and a digit (``"1.2.3"``). ``"3, 5"`` → 3.0 (first number).
    - Values are not clipped: ``"7.5"`` → 7.5, ``"-1"`` → -1.0. Overflow (``"1e999"``) → None.

    Example:
        >>> parse_score("<think>sharp, some noise</think><answer>Score: 3.75 / 5</answer>")
        3.75
        >>> parse_score("<answer>2</answer> <answer>.5</answer>"), parse_score("<answer>3,5</answer>")
        (0.5, None)
    """
    parsed = _parse_answer(text)
    return None if parsed is None else parsed[0]


def score_span(text: str) -> tuple[int, int] | None:
    """``(start, end)``: where in ``text`` the number :func:`parse_score` reads stands; None when it reads none."""
    if parse_score(text) is None:
        return None
    block = list(_ANSWER_RE.finditer(text))[-1]
    number = _first_number(block.group(1))
    return block.start(1) + number.start(), block.start(1) + number.end()


SCORE_PARSES = ("answer", "release")
SCORE_PARSE_PARAMS = ("parse", "seed")
"""The reward parameters that choose how a score is read (:func:`parse_scores`)."""


def parse_scores(
    completions: Sequence[Completion], *, parse: str = "answer", seed: int = 0
) -> list[tuple[float, int] | None]:
    """``(score, decimals)`` of each completion, or None where it holds no score.

    ``parse`` ``"answer"`` (ours): :func:`parse_score`, decimals as written. ``"release"``: the release's
    reading (:func:`vqathinker.rewards.release.release_score`: never None, a random 1-5 from the generator of
    ``seed`` when there is no number), decimals of ``str(float)`` as the release counts them.
    """
    if parse == "release":
        return [
            (score, float_decimals(score))
            for score in (release_score(completion_text(c), seed) for c in completions)
        ]
    if parse != "answer":
        raise ValueError(f"parse must be one of {SCORE_PARSES}, got {parse!r}")
    return [_parse_answer(completion_text(c)) for c in completions]


def parse_choice(text: str, options: Sequence[str]) -> int | None:
    """The index of the option a completion's LAST ``<answer>…</answer>`` block picks, or None.

    Rules (those of the dataset's labels, :func:`vqathinker.data.choices.label_index`), on the block's text:

    - An uppercase option letter alone: ``"B"``, ``"B."``, ``"B:"``, ``"B)"``, ``"(B)"``; or followed by the
      text of that same option: ``"B) blurry"``, ``"(B) Blurry."``. A letter past the last option picks none.
    - Otherwise the exact text of one option: ``"blurry"``.
    - Texts compare case-insensitively, ignoring spaces at both ends and one final ``.``.
    - Anything else picks no option: a lowercase letter (``"b"``), two options (``"B or C"``, ``"B, C"``), a
      letter with another option's text (``"B. sharp"`` when B is blurry), a sentence (``"The answer is B"``).

    Example (options blurry, sharp):
        >>> [parse_choice(f"<answer>{a}</answer>", ["blurry", "sharp"]) for a in ["B", "(a)", "B) sharp", "Sharp."]]
        [1, None, 1, 1]
    """
    answers = _ANSWER_RE.findall(text)
    if not answers or not options:
        return None
    folded = [_fold(option) for option in options]
    match = _CHOICE_RE.fullmatch(answers[-1])
    if match:
        index = _LETTERS.index(match.group("paren") or match.group("letter"))
        rest = match.group("text")
        if index < len(options) and (not rest or _fold(rest) == folded[index]):
            return index
    named = [i for i, option in enumerate(folded) if option == _fold(answers[-1])]
    return named[0] if len(named) == 1 else None


def _fold(text: str) -> str:
    return text.strip().removesuffix(".").strip().casefold()


def _choice_options(options: Sequence[Sequence[str]] | None, rows: Sequence[bool]) -> list[Sequence[str]]:
    """The options of each completion ([] where ``rows`` is False: not a choice row); a choice row without
    two or more options is an error naming its row."""
    if options is None or isinstance(options, str | bytes) or len(options) != len(rows):
        if any(rows):
            raise ValueError(
                f"multiple-choice rows need an 'options' column, one list per completion, got {options!r}"
            )
        return [[] for _ in rows]
    for row, (is_choice, values) in enumerate(zip(rows, options, strict=True)):
        if is_choice and (isinstance(values, str) or not values or len(values) < 2):
            raise ValueError(
                f"options[{row}] = {values!r}: completion {row} is a multiple-choice row without options"
            )
    return [values if is_choice else [] for is_choice, values in zip(rows, options, strict=True)]


def _log_parsed_fraction(parsed: Sequence[object], kwargs: Mapping[str, Any], task: str = "score") -> None:
    log_metric = kwargs.get("log_metric")
    if log_metric is not None and parsed:
        log_metric(f"{task}/parsed_fraction", sum(p is not None for p in parsed) / len(parsed))


def think_text(text: str) -> str:
    """The reasoning of a completion: the text of its FIRST ``<think>…</think>`` block, "" when it has none
    (an unclosed block names nothing).

    Example:
        >>> think_text("<think>Too dark.</think><answer>A</answer>"), think_text("<think>dark")
        ('Too dark.', '')
    """
    match = _THINK_RE.search(text)
    return match.group(1) if match else ""


@functools.lru_cache(maxsize=256)
def _words_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for a list of words: each a whole-word match, case-insensitive, its parts joined by any run
    (possibly empty) of spaces and hyphens."""
    parts = [[re.escape(part) for part in re.split(r"[\s\-]+", word) if part] for word in words]
    alternatives = [r"[\s\-]*".join(word) for word in parts]
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def check_keywords(keywords: object) -> dict[str, tuple[str, ...]]:
    """``keywords`` (a mapping from a name, e.g. an option's text, to the words that name it) with each key
    folded as option texts compare (case-insensitive, spaces and one final ``.`` ignored); anything but a
    mapping from distinct names to non-empty lists of non-empty strings is a ValueError."""
    if not isinstance(keywords, Mapping) or not keywords:
        raise ValueError(f"keywords must be a non-empty mapping from a name to its words, got {keywords!r}")
    checked: dict[str, tuple[str, ...]] = {}
    for name, words in keywords.items():
        if not isinstance(name, str) or not _fold(name):
            raise ValueError(f"keywords: every name must be a non-empty string, got {name!r}")
        if (
            isinstance(words, str | bytes)
            or not isinstance(words, Sequence)
            or not words
            or not all(isinstance(w, str) and re.sub(r"[\s\-]+", "", w) for w in words)
        ):
            raise ValueError(f"keywords[{name!r}] must be a non-empty list of words, got {words!r}")
        if _fold(name) in checked:
            raise ValueError(f"keywords: {name!r} is given twice (names compare case-insensitively)")
        checked[_fold(name)] = tuple(words)
    return checked


def named_options(think: str, keywords: Mapping[str, Sequence[str]]) -> set[str]:
    """The names of ``keywords`` (as given) that a reasoning text names: those with one of their words in it.

    A word matches as a whole word (``"dark"`` is not named by ``"darkness"``), case-insensitively; a word of
    several parts (``"blown out"``, ``"under-exposed"``) matches its parts joined by spaces, hyphens or
    nothing (``"blown-out"``, ``"underexposed"``). The match is lexical: ``"not dark"`` names ``dark``.

    Example:
        >>> sorted(named_options("Dark and a bit blurry.", {"dark": ["dark"], "blur": ["blurry"], "noise": ["noisy"]}))
        ['blur', 'dark']
    """
    check_keywords(keywords)
    return _named(think, keywords)


def named_option(think: str, options: Sequence[str], keywords: Mapping[str, Sequence[str]]) -> int | None:
    """The index in ``options`` of the option a reasoning text commits to: the one name of ``keywords`` it
    names (:func:`named_options`) when that name is an option's text (compared as :func:`parse_choice` compares
    texts); None when it names no name, several, or one that is not an option. The ``consistency`` reward
    pays an answer that picks this option.

    Example:
        >>> words = {"too dark": ["dark"], "blurry": ["blur", "blurry"]}
        >>> [named_option(t, ["Blurry", "Too dark"], words) for t in ["A bit blurry.", "Dark, blurry.", "Fine."]]
        [0, None, None]
    """
    return _named_option(think, options, check_keywords(keywords))


def _named_option(think: str, options: Sequence[str], folded: Mapping[str, Sequence[str]]) -> int | None:
    """:func:`named_option` with ``keywords`` already checked and folded (:func:`check_keywords`)."""
    named = _named(think, folded)
    if len(named) != 1:
        return None
    folded = [_fold(option) for option in options]
    return folded.index(named.pop()) if named <= set(folded) else None


def _named(think: str, keywords: Mapping[str, Sequence[str]]) -> set[str]:
    return {name for name, words in keywords.items() if _words_pattern(tuple(words)).search(think)}
