"""The model card (``README.md``) of a trained folder: what it was trained from and on, how to load it, and the
metrics of its latest evaluation.

:func:`write_model_card` writes it at the end of a training run; :func:`record_evaluation` replaces its
evaluation section whenever ``vqathinker evaluate`` scores the folder. The front matter follows the Hugging
Face Hub's model-card metadata (``base_model``, ``library_name``, ``pipeline_tag``, ``tags``).
"""

from __future__ import annotations

import json
from pathlib import Path

CARD = "README.md"
EVALUATION_START = "<!-- vqathinker:evaluation -->"
EVALUATION_END = "<!-- /vqathinker:evaluation -->"
NOT_EVALUATED = (
    "Not evaluated yet: `vqathinker evaluate --model_name_or_path THIS_FOLDER ...` fills this section."
)


def _value(value) -> str:
    return json.dumps(value) if isinstance(value, list | dict | bool) or value is None else str(value)


def write_model_card(folder: str | Path, base_model: str, facts: dict[str, dict], note: str = "") -> Path:
    """Write ``folder/README.md``: front matter, ``note`` (what the folder holds, when it is not a full
    checkpoint), one table per group of ``facts`` (e.g. "Data", "Recipe", "Rewards": name -> value), how to
    load it, and an evaluation section still to be filled."""
    folder = Path(folder)
    name = folder.name
    lines = [
        "---",
        f"base_model: {base_model}",
        "library_name: transformers",
        "pipeline_tag: image-text-to-text",
        "tags: [video-quality-assessment, internvl, grpo, vqathinker]",
        "---",
        "",
        f"# {name}",
        "",
        f"Video quality scoring and explanation, trained with vqathinker (GRPO) from `{base_model}`. The model "
        "answers `<think>reasoning</think><answer>score</answer>` with a score from 1 (very poor) to 5 "
        "(excellent), given a video as frames, one image tile per frame.",
    ]
    if note:
        lines += ["", note]
    for group, table in facts.items():
        lines += ["", f"## {group}", "", "| | |", "|---|---|"]
        lines += [f"| {key} | {_value(value)} |" for key, value in table.items()]
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f"vqathinker predict --model_name_or_path {name} video.mp4",
        f"vqathinker evaluate --model_name_or_path {name} --benchmarks configs/benchmarks.yaml --data_root DATA",
        "```",
        "",
        "The folder is a stock transformers InternVL checkpoint: `AutoModelForImageTextToText` and "
        "`AutoProcessor` load it (the processor needs torchvision, as transformers' InternVL processor does). "
        "Give it each frame at the processor's tile size and the frames as the prompt's images; "
        "`processor_config.json` holds the number of frames it was trained with (`num_frames`), its question "
        "(`question`, which `vqathinker evaluate` and `predict` ask of videos whose labels carry none) and "
        "its prompt layout (`prompt_style`).",
        "",
        "## Evaluation",
        "",
        EVALUATION_START,
        NOT_EVALUATED,
        EVALUATION_END,
        "",
    ]
    path = folder / CARD
    path.write_text("\n".join(lines))
    return path


def record_evaluation(folder: str | Path, table: str, settings: dict, output: str | Path) -> bool:
    """Replace the evaluation section of ``folder``'s card with ``table`` (markdown), the scoring ``settings``
    and where the full results are. Returns False (and writes nothing) when the folder has no vqathinker
    card (a Hub id, a base model, a card written by someone else)."""
    path = Path(folder) / CARD
    if not path.is_file():
        return False
    text = path.read_text()
    start, end = text.find(EVALUATION_START), text.find(EVALUATION_END)
    if start < 0 or end < start:
        return False
    shown = ", ".join(f"{key} {_value(value)}" for key, value in settings.items() if key != "model")
    section = "\n".join([EVALUATION_START, table.rstrip(), "", f"Settings: {shown}. Results: `{output}`."])
    path.write_text(text[:start] + section + "\n" + text[end:])
    return True
