"""Reports of multiple-choice benchmarks, and the metrics table of a run that mixes them with score benchmarks.

A multiple-choice benchmark's entry in ``metrics.json`` has ``"task": "choice"`` and the keys of
:data:`CHOICE_SUMMARY_KEYS` (accuracy overall, with its counts, and per category); ``<benchmark>.json`` holds
everything about it (the ids of the unparsed answers, the videos that failed to decode, the settings). It has
no scatter plot and no logistic fit: those are a score's. In ``metrics.md`` the multiple-choice benchmarks have
their own section after the score benchmarks' table (:func:`metrics_markdown`).
"""

from __future__ import annotations

import math
from pathlib import Path

from vqathinker.evaluation.protocol import release_table
from vqathinker.evaluation.report import markdown_table, write_json

CHOICE_SUMMARY_KEYS = (
    "task",
    "accuracy",
    "correct",
    "n",
    "unparsed",
    "chance",
    "failed_questions",
    "per_category",
)
"""The keys of a multiple-choice benchmark's ``metrics.json`` entry."""
COUNTS = ("correct", "n", "unparsed")


def write_choice_report(output_dir: str | Path, name: str, details: dict) -> dict:
    """Write ``<name>.json`` (``details``); returns the ``metrics.json`` entry of ``name``."""
    write_json(Path(output_dir) / f"{name}.json", details)
    return {key: details[key] for key in CHOICE_SUMMARY_KEYS}


def is_choice(summary: dict) -> bool:
    return summary.get("task") == "choice"


def _accuracy(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def choice_table(summaries: dict[str, dict], settings: dict | None = None) -> str:
    """The multiple-choice section: one row per benchmark (accuracy, correct, n, unparsed, chance, failed),
    then one per category of each benchmark; then the ``settings`` when given."""
    lines = [
        "**Multiple-choice benchmarks**",
        "",
        "| Benchmark | accuracy | correct | n | unparsed | chance | failed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries.items():
        counts = [str(s[key]) for key in COUNTS]
        lines.append(
            f"| {name} | {_accuracy(s['accuracy'])} | {' | '.join(counts)} | {_accuracy(s['chance'])} | "
            f"{s['failed_questions']} |"
        )
    categories = [(name, c, f) for name, s in summaries.items() for c, f in s["per_category"].items()]
    if categories:
        lines += [
            "",
            "| Benchmark | category | accuracy | correct | n | unparsed |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, category, f in categories:
            counts = " | ".join(str(f[key]) for key in COUNTS)
            lines.append(f"| {name} | {category} | {_accuracy(f['accuracy'])} | {counts} |")
    lines += [
        "",
        "accuracy = correct / n, over the questions whose video could be decoded (failed counts the others); an "
        "answer that picks no option is wrong and counted in unparsed. chance: the accuracy of a uniform guess.",
    ]
    if settings:
        shown = ", ".join(f"{key} {value}" for key, value in settings.items() if key != "model")
        lines += ["", f"Answered with: {shown}."]
    return "\n".join(lines) + "\n"


def metrics_markdown(summaries: dict[str, dict], settings: dict | None = None, release: bool = False) -> str:
    """``metrics.md``: the score benchmarks' table (the ``release`` protocol's, or ours with the ``settings``),
    then the multiple-choice section (with the settings when there is no score benchmark)."""
    scores = {key: s for key, s in summaries.items() if not is_choice(s)}
    choices = {key: s for key, s in summaries.items() if is_choice(s)}
    parts = []
    if scores or not choices:
        parts.append(release_table(scores) if release else markdown_table(scores, settings))
    if choices:
        parts.append(choice_table(choices, None if scores else settings))
    return "\n".join(parts)
