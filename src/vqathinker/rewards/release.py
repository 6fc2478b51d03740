"""The VQAThinker release's reading of an answer, for recipes that reproduce it (``parse: release``).

The release reads a score from the text of the LAST ``<answer>…</answer>`` block, or from the whole
completion when there is none: the first match of ``-?\\d+(\\.\\d+)?`` (so ``"3,5"`` reads 3, ``"x264"`` 264),
and, when the text holds no number, a random integer 1 to 5. Its regression reward then counts decimals on
``str(float(score))`` with trailing zeros stripped, so ``"3.50"`` (read 3.5) and ``"4.00"`` count as coarse.

Here the random draw comes from a generator seeded per ``seed`` (:func:`fallback_generator`), not from the
process-wide ``random`` module the release uses: a run draws the same fallback scores in the same order
every time, and nothing else that draws random numbers shifts them. Nothing here imports vqathinker.
"""

from __future__ import annotations

import random
import re

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_RELEASE_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?")
FALLBACK_RANGE = (1, 5)
"""The release's score for an answer without a number: a random integer in this range (both ends included)."""

_generators: dict[int, random.Random] = {}


def fallback_generator(seed: int) -> random.Random:
    """The one generator of fallback scores for ``seed`` in this process, created on first use."""
    if seed not in _generators:
        _generators[seed] = random.Random(seed)
    return _generators[seed]


def release_answer_text(text: str) -> str:
    """The text the release reads a score from: the last answer block's content, else the whole text (stripped)."""
    answers = _ANSWER_RE.findall(text)
    return (answers[-1] if answers else text).strip()


def release_score(text: str, seed: int = 0) -> float:
    """The score the release reads from a completion: never missing (a seeded random 1–5 without a number).

    Example:
        >>> release_score("<answer>3,5</answer>"), release_score("I think 4.25 overall")
        (3.0, 4.25)
    """
    match = _RELEASE_NUMBER_RE.search(release_answer_text(text))
    if match is None:
        return float(fallback_generator(seed).randint(*FALLBACK_RANGE))
    return float(match.group())


def float_decimals(score: float) -> int:
    """Decimals of ``str(score)`` with trailing zeros stripped: the release's count (3.5 → 1, 4.0 → 0, 3.25 → 2)."""
    text = str(float(score))
    return len(text.split(".")[-1].rstrip("0")) if "." in text else 0
