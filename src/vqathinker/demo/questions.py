"""The ladder's attribution questions as multiple-choice records, and the dataset config that mixes them with
the ladder's scores.

From a built ladder's ``ladder.json`` it writes, beside it:

- ``train_choice.jsonl``: one question per degraded video of the training scenes (their defects are the
  ladder's ``train_defects``), in the multiple-choice jsonl layout of :mod:`vqathinker.data.records` (the
  ``human`` turn is :func:`~vqathinker.demo.attribution.attribution_question`, the ``gpt`` value the letter of
  the video's defect);
- ``heldout_choice.jsonl``: the same for the held-out scenes (every defect of the ladder);
- ``multitask.yaml``: a dataset config (:mod:`vqathinker.data.datasets`) of the training scores
  (``train.jsonl``) and the training questions (``task: choice``, with the given weight).

Every question offers every defect of the ladder, in ladder order. Pristine videos get no question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from vqathinker.data.records import VideoRecord, read_records
from vqathinker.demo.attribution import attribution_question, ladder_defects, letter_of
from vqathinker.demo.ladder import PRISTINE

MANIFEST = "ladder.json"
SCORE_FILE = "train.jsonl"
TRAIN_FILE = "train_choice.jsonl"
HELDOUT_FILE = "heldout_choice.jsonl"
CONFIG_FILE = "multitask.yaml"
VIDEO_FOLDER = "videos"


@dataclass(frozen=True)
class ChoiceQuestions:
    """Where the questions of a ladder were written, and the defects they offer (option A first)."""

    train_jsonl: Path
    heldout_jsonl: Path
    dataset_config: Path
    video_root: Path
    defects: list[str]

    def heldout_records(self) -> list[VideoRecord]:
        """The held-out questions, read back as the training data reads multiple-choice records."""
        return read_records(self.heldout_jsonl, self.video_root, task="choice").records


def _line(video: dict, question: str, defects: list[str]) -> str:
    record = {
        "id": f"{video['id']}-attribution",
        "dataset_name": "quality-ladder-attribution",
        "image": [video["video"]],
        "conversations": [
            {"from": "human", "value": question},
            {"from": "gpt", "value": letter_of(video["defect"], defects)},
        ],
    }
    return json.dumps(record)


def write_choice_questions(ladder_root: str | Path, choice_weight: float = 1.0) -> ChoiceQuestions:
    """Write the questions of the ladder in ``ladder_root`` and the dataset config mixing them, with the
    questions' source weighted ``choice_weight`` (the score source 1), beside its ``ladder.json``."""
    if not choice_weight > 0:
        raise ValueError(f"choice_weight must be > 0, got {choice_weight}")
    root = Path(ladder_root)
    videos = json.loads((root / MANIFEST).read_text())
    defects = ladder_defects({v["defect"] for v in videos} - {PRISTINE})
    if len(defects) < 2:
        raise ValueError(f"an attribution question needs two defects or more; the ladder has {defects}")
    question = attribution_question(defects)
    result = ChoiceQuestions(
        root / TRAIN_FILE, root / HELDOUT_FILE, root / CONFIG_FILE, root / VIDEO_FOLDER, defects
    )
    for split, path in (("train", result.train_jsonl), ("heldout", result.heldout_jsonl)):
        lines = [
            _line(v, question, defects) for v in videos if v["split"] == split and v["defect"] != PRISTINE
        ]
        path.write_text("".join(line + "\n" for line in lines))
    config = {
        "datasets": [
            {"jsonl": SCORE_FILE, "video_root": VIDEO_FOLDER, "name": "ladder-scores"},
            {
                "jsonl": TRAIN_FILE,
                "video_root": VIDEO_FOLDER,
                "task": "choice",
                "weight": float(choice_weight),
                "name": "ladder-attribution",
            },
        ]
    }
    header = "# The demo's multi-task training set: the ladder's scores and its attribution questions.\n"
    result.dataset_config.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return result
