"""YAML dataset configs → one ``datasets.Dataset`` of prompts, labels and video paths (no frames).

A dataset config lists jsonl files, each with the folder its video paths are relative to::

    datasets:
      - jsonl: lsvq/train.jsonl      # relative to this YAML file (or absolute; $VARS are expanded)
        video_root: lsvq/videos
        mos_range: [1, 5]            # the file's MOS scale, mapped linearly to 1-5 ([0, 100] for 0-100)
        max_samples: null            # optional cap: a seeded random subset, file order kept
        weight: 1.0                  # optional mixing weight: round(weight × records) samples, by resampling
        name: lsvq                   # optional label for logs (default: the jsonl's stem)
      - jsonl: qbench/Q_Bench_Video_dev.json
        video_root: qbench/video
        task: choice                 # score (default: the gpt value is a MOS) or choice (multiple-choice)
        layout: qbench               # vqathinker (default: the jsonl above) or qbench (the Q-Bench release)
        weight: 0.5

Each row says what it asks in its ``task`` column: ``score`` rows carry their ``mos`` (1-5), ``choice`` rows
their ``options`` and the letter of the correct one in ``answer`` (see :mod:`vqathinker.data.choices`); the
other kind's columns are None / empty. Sources of both tasks mix in one dataset, and in one batch.

Indexing only parses json lines: frames are decoded lazily by the trainer and the evaluation, so a 28k-video
dataset builds in about a second.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

import datasets
import yaml

from vqathinker.data.prompts import build_choice_conversation, build_conversation
from vqathinker.data.qbench import read_qbench
from vqathinker.data.records import TASKS, ReadResult, VideoRecord, map_mos, read_records

LAYOUTS = ("vqathinker", "qbench")
"""Annotation layouts: the jsonl of :mod:`vqathinker.data.records`, or the Q-Bench release
(:mod:`vqathinker.data.qbench`, multiple-choice only)."""


class DataOptions(Protocol):
    """Where a run's records come from: the fields of the training layer's ``VQADataArguments``."""

    dataset_config: str | None
    data_jsonl: str | None
    video_root: str | None
    mos_range: list[float]
    max_samples: int | None
    bad_records: str
    num_frames: int
    prompt_style: str


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSource:
    """One jsonl file of a dataset config, with its paths resolved."""

    jsonl: str
    """Absolute path of the jsonl file."""
    video_root: str
    """Absolute path of the folder its video paths are relative to."""
    mos_range: tuple[float, float] = (1.0, 5.0)
    """MOS scale of the file, mapped linearly to 1-5."""
    max_samples: int | None = None
    """Keep at most this many records (a seeded random subset, in file order)."""
    weight: float = 1.0
    """Mixing weight: the source contributes round(weight × records) samples."""
    name: str = ""
    """Label for logs (default: the jsonl's stem)."""
    task: str = "score"
    """What its records ask: one of :data:`~vqathinker.data.records.TASKS`."""
    layout: str = "vqathinker"
    """How its file is laid out: one of :data:`LAYOUTS`."""


def _resolve(path: str, base: Path) -> str:
    path = os.path.expanduser(os.path.expandvars(str(path)))
    return os.path.normpath(os.path.join(base, path))  # an absolute path stays as it is


def load_dataset_config(yaml_path: str | os.PathLike) -> list[DatasetSource]:
    """Read a dataset config; relative paths are resolved against the YAML file's folder."""
    yaml_path = Path(yaml_path)
    with open(yaml_path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    entries = config.get("datasets") if isinstance(config, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{yaml_path}: expected a non-empty 'datasets:' list")
    base = yaml_path.resolve().parent
    allowed = {f.name for f in fields(DatasetSource)}
    sources = []
    for i, entry in enumerate(entries):
        where = f"{yaml_path}: datasets[{i}]"
        if not isinstance(entry, dict) or "jsonl" not in entry or "video_root" not in entry:
            raise ValueError(f"{where}: each entry needs 'jsonl' and 'video_root'")
        unknown = set(entry) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        sources.append(
            make_source(
                where,
                jsonl=_resolve(entry["jsonl"], base),
                video_root=_resolve(entry["video_root"], base),
                mos_range=entry.get("mos_range") or (1.0, 5.0),
                max_samples=entry.get("max_samples"),
                weight=entry.get("weight", 1.0),
                name=entry.get("name"),
                task=entry.get("task"),
                layout=entry.get("layout", "vqathinker"),
            )
        )
    return sources


def make_source(
    where: str, jsonl, video_root, mos_range, max_samples, weight, name, task=None, layout="vqathinker"
) -> DatasetSource:
    """A validated :class:`DatasetSource` (``where`` prefixes the error messages); ``task`` defaults to
    ``choice`` for the qbench layout, else ``score``."""
    if layout not in LAYOUTS:
        raise ValueError(f"{where}: layout must be one of {list(LAYOUTS)}, got {layout!r}")
    task = task or ("choice" if layout == "qbench" else "score")
    if task not in TASKS or (layout == "qbench" and task != "choice"):
        allowed = ["choice"] if layout == "qbench" else list(TASKS)
        raise ValueError(f"{where}: task must be one of {allowed} with layout {layout}, got {task!r}")
    if not (isinstance(mos_range, Sequence) and len(mos_range) == 2):
        raise ValueError(f"{where}: mos_range must be [low, high], got {mos_range!r}")
    mos_range = (float(mos_range[0]), float(mos_range[1]))
    map_mos(mos_range[0], mos_range)  # raises unless low < high
    if max_samples is not None and (
        isinstance(max_samples, bool) or int(max_samples) != max_samples or max_samples < 1
    ):
        raise ValueError(f"{where}: max_samples must be a positive integer or null, got {max_samples!r}")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
        raise ValueError(f"{where}: weight must be a positive number, got {weight!r}")
    return DatasetSource(
        jsonl=str(jsonl),
        video_root=str(video_root),
        mos_range=mos_range,
        max_samples=None if max_samples is None else int(max_samples),
        weight=float(weight),
        name=str(name or Path(jsonl).stem),
        task=task,
        layout=layout,
    )


def data_sources(data_args: DataOptions) -> list[DatasetSource]:
    """The sources of a run: ``dataset_config`` if given, else the single ``data_jsonl``."""
    if data_args.dataset_config:
        return load_dataset_config(data_args.dataset_config)
    if not data_args.data_jsonl:
        raise ValueError("give either dataset_config (a YAML file) or data_jsonl (+ video_root)")
    jsonl = os.path.abspath(data_args.data_jsonl)
    video_root = os.path.abspath(data_args.video_root or os.path.dirname(jsonl))
    return [
        make_source("data_jsonl", jsonl, video_root, data_args.mos_range, data_args.max_samples, 1.0, None)
    ]


def read_source(source: DatasetSource, on_error: str = "error") -> ReadResult:
    """Validated records of one source (before the ``max_samples`` cap and the weight)."""
    if not os.path.isfile(source.jsonl):
        raise FileNotFoundError(f"{source.name}: jsonl file not found: {source.jsonl}")
    if source.layout == "qbench":
        return read_qbench(source.jsonl, source.video_root, on_error=on_error)
    return read_records(
        source.jsonl, source.video_root, source.mos_range, on_error=on_error, task=source.task
    )


def mix_records(records: list[VideoRecord], source: DatasetSource, seed: int = 0) -> list[VideoRecord]:
    """Apply a source's ``max_samples`` cap and ``weight`` (both seeded, deterministic).

    The cap keeps a random subset in file order. The weight then repeats the records ``floor(weight)``
    times and adds a random ``frac(weight)`` share of them: ``round(weight × n)`` samples in all.
    """
    rng = random.Random(f"{seed}:{source.jsonl}")
    if source.max_samples is not None and len(records) > source.max_samples:
        keep = sorted(rng.sample(range(len(records)), source.max_samples))
        records = [records[i] for i in keep]
    total = round(source.weight * len(records))
    whole, rest = divmod(total, len(records)) if records else (0, 0)
    extra = sorted(rng.sample(range(len(records)), rest))
    return records * whole + [records[i] for i in extra]


COLUMNS = ("prompt", "mos", "video", "id", "dataset_name", "question", "task", "answer", "options")
"""The columns of :func:`build_dataset`."""


def _prompt(record: VideoRecord, num_frames: int, style: str) -> list[dict]:
    if record.task == "choice":
        return build_choice_conversation(record.question, len(record.options), num_frames, style)
    return build_conversation(record.question, num_frames, style)


def build_dataset(data_args: DataOptions, seed: int = 0) -> datasets.Dataset:
    """The training / evaluation dataset: columns ``prompt`` (conversation with ``data_args.num_frames``
    image slots), ``mos`` (1-5; None on a choice row), ``video`` (absolute path), ``id``, ``dataset_name``,
    ``question``, ``task`` (score or choice), ``answer`` (the correct option's letter; None on a score row)
    and ``options`` (the option texts; empty on a score row). No video is opened."""
    columns: dict[str, list] = {k: [] for k in COLUMNS}
    prompts: dict[tuple[str, str], list[dict]] = {}
    results: list[tuple[DatasetSource, ReadResult]] = []
    for source in data_sources(data_args):
        result = read_source(source, on_error=data_args.bad_records)
        results.append((source, result))
        mixed = mix_records(result.records, source, seed)
        logger.info(
            "%s: %d records (%d skipped), weight %g -> %d samples",
            source.name,
            len(result.records),
            len(result.rejected),
            source.weight,
            len(mixed),
        )
        for record in mixed:
            key = (record.task, record.question)
            if key not in prompts:
                prompts[key] = _prompt(record, data_args.num_frames, data_args.prompt_style)
            columns["prompt"].append(prompts[key])
            columns["mos"].append(None if record.mos is None else map_mos(record.mos, source.mos_range))
            columns["video"].append(record.video_path)
            columns["id"].append(record.id)
            columns["dataset_name"].append(record.dataset_name)
            columns["question"].append(record.question)
            columns["task"].append(record.task)
            columns["answer"].append(record.answer)
            columns["options"].append(list(record.options))
    if not columns["video"]:
        raise ValueError(_empty_dataset_message(results))
    return datasets.Dataset.from_dict(columns)


def _empty_dataset_message(results: list[tuple[DatasetSource, ReadResult]]) -> str:
    """Why no sample was kept: per jsonl file, its skipped lines by kind of problem with the first example of
    each kind, or that it holds no line at all."""
    lines = ["the dataset is empty: no valid record in any source"]
    for source, result in results:
        if result.records:
            lines.append(
                f"{source.jsonl}: {len(result.records)} valid record(s), none kept by weight {source.weight}"
            )
        elif not result.rejected:
            lines.append(f"{source.jsonl}: no record (the file has no non-blank line)")
        else:
            kinds = ", ".join(f"{kind}: {count}" for kind, count in result.skipped.most_common())
            lines.append(f"{source.jsonl}: all {len(result.rejected)} record(s) skipped ({kinds})")
            lines += [f"  {examples[0]}" for examples in result.examples.values()]
    return "\n".join(lines)
