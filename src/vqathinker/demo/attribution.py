"""Defect attribution in the demo: which problem dominates a video, and whether the reasoning names it.

Every degraded video of the ladder has one known defect, so the demo can ask a multiple-choice question about
it (:func:`attribution_question`: "Which problem dominates this video?", one option per defect of the ladder,
in the order of :data:`~vqathinker.demo.ladder.DEFECTS`) and check two things in each answer:

- the answer: does it pick the option of the true defect (:func:`vqathinker.rewards.parse_choice`)?
- the reasoning: which defects does the ``<think>`` text name? A defect is named when one of its words
  (:data:`KEYWORDS`) occurs in it as a whole word, case-insensitively (:func:`named_defects`; the rules are
  :func:`vqathinker.rewards.named_options`').

:func:`attribution_metrics` turns a set of answers into accuracy, explanation faithfulness, consistency and the
chance level. Pristine videos get no question: there is no defect to name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from vqathinker.data.choices import LETTERS, format_question
from vqathinker.data.prompts import choice_question
from vqathinker.data.records import VideoRecord
from vqathinker.demo.ladder import DEFECTS
from vqathinker.demo.scoring import sampled_answers
from vqathinker.rewards import named_options, parse_choice, think_text

QUESTION = "Which problem dominates this video?"
"""The stem of the attribution question; its options follow it, one per line."""

OPTIONS: dict[str, str] = {
    "dark": "too dark",
    "bright": "too bright",
    "contrast": "low contrast",
    "fade": "faded colours",
    "blur": "blurry",
    "noise": "noisy",
    "compression": "blocky (compression)",
    "low_resolution": "low resolution",
}
"""The answer option of each defect."""

KEYWORDS: dict[str, tuple[str, ...]] = {
    "dark": ("dark", "darker", "under exposed", "dim", "gloomy", "murky"),
    "bright": ("bright", "brighter", "over exposed", "blown out", "washed out", "glaring"),
    "contrast": ("contrast", "flat", "hazy", "foggy"),
    "fade": ("faded", "fade", "desaturated", "colourless", "colorless", "pale", "greyish", "grayish"),
    "blur": ("blur", "blurry", "blurred", "out of focus", "unsharp", "fuzzy", "soft"),
    "noise": ("noise", "noisy", "grain", "grainy", "speckled", "speckles"),
    "compression": (
        "compression",
        "compressed",
        "blocky",
        "blocking",
        "blockiness",
        "macroblocks",
        "artifacts",
        "artefacts",
    ),
    "low_resolution": ("resolution", "low res", "pixelated", "pixelation", "upscaled", "jagged"),
}
"""The words whose presence in a reasoning text names each defect (whole words, any case; a word of several
parts also matches them joined by hyphens or nothing: "under exposed" matches "underexposed" and
"under-exposed"). The lists do not overlap: each option text and each :data:`REASONING` phrase names its own
defect and no other."""

REASONING: dict[str, str] = {
    "dark": "The video is dark.",
    "bright": "The video is bright.",
    "contrast": "The contrast is low.",
    "fade": "The colors are faded.",
    "blur": "The video is blurry.",
    "noise": "The video is noisy.",
    "compression": "The video is blocky.",
    "low_resolution": "The resolution is low.",
}
"""One sentence naming each defect: the demo's warm start writes one of them, drawn at random, as the
reasoning of every target, so that the model starts using this vocabulary with no link to the video. Short
sentences of words the tiny model's tokenizer knows keep the rollouts short (at most 13 tokens with the tags and
a letter)."""


def ladder_defects(defects: Sequence[str]) -> list[str]:
    """``defects`` in the order of :data:`~vqathinker.demo.ladder.DEFECTS` (unknown names are a ValueError):
    the defects an attribution question offers, option A first."""
    unknown = sorted(set(defects) - set(DEFECTS))
    if unknown:
        raise ValueError(f"unknown defects {unknown}; known: {list(DEFECTS)}")
    return [d for d in DEFECTS if d in defects]


def attribution_question(defects: Sequence[str]) -> str:
    """The question with one lettered option per defect of ``defects`` (in ladder order)."""
    return format_question(QUESTION, [OPTIONS[d] for d in ladder_defects(defects)])


def letter_of(defect: str, defects: Sequence[str]) -> str:
    """The option letter of ``defect`` in the question over ``defects``."""
    return LETTERS[ladder_defects(defects).index(defect)]


def option_keywords(defects: Sequence[str]) -> dict[str, list[str]]:
    """Option text → its words, for the defects of ``defects``: the consistency reward's ``keywords``."""
    return {OPTIONS[d]: list(KEYWORDS[d]) for d in ladder_defects(defects)}


def reasoning_phrases(defects: Sequence[str]) -> list[str]:
    """The :data:`REASONING` sentences of ``defects``: the warm start's ``warm_start_reasoning``."""
    return [REASONING[d] for d in ladder_defects(defects)]


def named_defects(think: str, defects: Sequence[str] = tuple(DEFECTS)) -> set[str]:
    """The defects of ``defects`` that a reasoning text names (:data:`KEYWORDS`).

    Example:
        >>> sorted(named_defects("Underexposed and a little grainy."))
        ['dark', 'noise']
    """
    return named_options(think, {d: KEYWORDS[d] for d in ladder_defects(defects)})


def _figures(answers: list[tuple[bool, bool, bool, bool]], chance: float) -> dict:
    n = len(answers)
    share = [sum(column) / n if n else math.nan for column in zip(*answers, strict=True)] or [math.nan] * 4
    return {
        "n": n,
        "accuracy": share[0],
        "faithfulness": share[1],
        "consistency": share[2],
        "unparsed": sum(a[3] for a in answers),
        "chance": chance,
    }


def attribution_metrics(
    true_defects: Sequence[str], completions: Sequence[Sequence[str]], defects: Sequence[str]
) -> dict:
    """Attribution figures of the answers to attribution questions.

    ``true_defects[i]`` is the defect of question i's video, ``completions[i]`` the answers to it (several
    when sampled: each counts); ``defects`` are the question's options (in ladder order). Over all answers:

    - ``accuracy``: the share whose answer picks the true defect's option;
    - ``faithfulness``: the share whose reasoning names the true defect and no other defect of ``defects``;
    - ``consistency``: the share whose reasoning names exactly the defect the answer picks (the consistency
      reward's mean; an answer that picks nothing is inconsistent);
    - ``unparsed``: the number of answers that pick no option (counted wrong and inconsistent);
    - ``chance``: the accuracy of a uniform guess, 1 / number of options;
    - ``n``: the number of answers; ``questions``: of questions.

    ``per_defect`` has the same figures over the questions of each true defect. No answer: NaN shares.
    """
    if len(true_defects) != len(completions):
        raise ValueError(f"got {len(completions)} answer lists for {len(true_defects)} questions")
    options = ladder_defects(defects)
    texts = [OPTIONS[d] for d in options]
    chance = 1.0 / len(options)
    graded: dict[str, list[tuple[bool, bool, bool, bool]]] = {}
    for defect, answers in zip(true_defects, completions, strict=True):
        if defect not in options:
            raise ValueError(f"true defect {defect!r} is none of the options {options}")
        for text in answers:
            pick = parse_choice(text, texts)
            named = named_defects(think_text(text), options)
            picked = None if pick is None else options[pick]
            graded.setdefault(defect, []).append(
                (picked == defect, named == {defect}, picked is not None and named == {picked}, pick is None)
            )
    everything = [answer for answers in graded.values() for answer in answers]
    return {
        **_figures(everything, chance),
        "questions": len(true_defects),
        "per_defect": {d: _figures(graded[d], chance) for d in options if d in graded},
    }


FIGURES = ("accuracy", "faithfulness", "consistency", "unparsed")
"""The figures of :func:`attribution_metrics` that the report gives before and after GRPO."""


def attribution_report(before: dict, after: dict) -> dict:
    """The report's ``attribution`` entry from :func:`attribution_metrics` before and after GRPO:
    ``accuracy_before``, ``accuracy_after``, ... (:data:`FIGURES`), ``chance``, the numbers of questions and
    answers, and ``per_defect`` with the same before / after figures and its number of answers."""

    def pair(b: dict, a: dict) -> dict:
        return {f"{name}_{when}": m[name] for name in FIGURES for when, m in (("before", b), ("after", a))}

    return {
        **pair(before, after),
        "chance": after["chance"],
        "questions": after["questions"],
        "answers": after["n"],
        "per_defect": {
            d: {**pair(before["per_defect"][d], m), "n": m["n"]} for d, m in after["per_defect"].items()
        },
    }


def heldout_attribution(
    model, processor, records: Sequence[VideoRecord], frames: Mapping[str, list], *, desc: str, **sampling
) -> dict:
    """:func:`attribution_metrics` of the model's answers to multiple-choice attribution ``records`` (as
    :meth:`vqathinker.demo.questions.ChoiceQuestions.heldout_records` reads them), each asked with the prompt
    of training (:func:`vqathinker.data.prompts.choice_question`) about the frames ``frames[record.video]``;
    ``sampling`` is :func:`vqathinker.demo.scoring.sampled_answers`' (samples, temperature, max_new_tokens,
    batch_size)."""
    if not records:
        raise ValueError("no attribution question to ask")
    defect_of = {text: defect for defect, text in OPTIONS.items()}
    defects = [defect_of[text] for text in records[0].options]
    answers = sampled_answers(
        model,
        processor,
        [frames[r.video] for r in records],
        [choice_question(r.question, len(r.options)) for r in records],
        desc=desc,
        **sampling,
    )
    truth = [defect_of[r.options[LETTERS.index(r.answer)]] for r in records]
    return attribution_metrics(truth, answers, defects)
