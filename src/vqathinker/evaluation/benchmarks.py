"""Benchmarks: the test sets of ``configs/benchmarks.yaml``, the sources of a dataset config, or one ad-hoc
label file, scored and reported. A benchmark asks for a score per video (``task: score``, the default) or
is made of multiple-choice questions (``task: choice``, :mod:`vqathinker.evaluation.choice_runner`: accuracy
overall and per question category, no logistic fit nor plot).

Per benchmark, in the output folder: ``predictions/<benchmark>.csv`` (one row per video, resumed when
present, :mod:`vqathinker.evaluation.predictions`), ``<benchmark>.json`` and ``<benchmark>.png`` (scatter
with the fitted logistic); for all of them ``metrics.json`` and ``metrics.md``. Metrics are computed on the
videos whose answer has a score, against the raw MOS of the labels: the model answers on 1..5 while a
benchmark's MOS may be on 0..100. Correlations do not depend on the scale (``pred`` and ``pred_mos``, its
linear map onto the benchmark's ``mos_range``, give the same ones); RMSE is that of the logistic fit of the
predictions to the raw MOS, so it is in the benchmark's MOS units. Unparsed answers and videos that fail to
decode are counted and listed, never given a default score.

Label formats (``format``): ``json`` (VQAThinker test json, scores), ``jsonl`` (the training records: scores,
or multiple-choice questions with ``task: choice``) and ``qbench`` (the Q-Bench / Q-Bench-Video release,
multiple-choice).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from vqathinker.data.datasets import load_dataset_config
from vqathinker.evaluation.choice_report import write_choice_report
from vqathinker.evaluation.choice_runner import (
    ChoiceItem,
    choice_details,
    read_choice_items,
    run_choice_benchmark,
)
from vqathinker.evaluation.items import BenchmarkItem, read_benchmark_items
from vqathinker.evaluation.metrics import compute_metrics
from vqathinker.evaluation.predictions import remove_outputs
from vqathinker.evaluation.report import write_benchmark_report
from vqathinker.evaluation.runner import InferenceResult, ScoringJob, run_benchmark

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "VQA_DATA_ROOT"
BENCHMARK_FIELDS = {"name", "annotations", "format", "video_root", "mos_range", "num_videos", "task"}
FORMAT_TASKS = {"json": ("score",), "jsonl": ("score", "choice"), "qbench": ("choice",)}
"""The tasks each label format can hold; the first is its default."""


@dataclass(frozen=True)
class Benchmark:
    """One test set: where its labels and videos are and what its MOS scale is."""

    key: str
    name: str
    annotations: Path
    format: str
    video_root: Path
    mos_range: tuple[float, float] | None = None
    num_videos: int | None = None
    task: str = "score"
    """``score`` (a MOS per video) or ``choice`` (multiple-choice questions)."""


def checked_task(where: str, fmt: str, task: str | None, mos_range, num_videos) -> str:
    """The task of a benchmark in format ``fmt`` (its default when None); ``ValueError`` starting with ``where``
    for an unknown format, a task the format cannot hold, or a score's field on a multiple-choice benchmark."""
    if fmt not in FORMAT_TASKS:
        raise ValueError(f"{where}: format must be one of {list(FORMAT_TASKS)}, got {fmt!r}")
    task = task or FORMAT_TASKS[fmt][0]
    if task not in FORMAT_TASKS[fmt]:
        raise ValueError(
            f"{where}: task must be one of {list(FORMAT_TASKS[fmt])} with format {fmt}, got {task!r}"
        )
    if task == "choice" and (mos_range is not None or num_videos is not None):
        raise ValueError(f"{where}: a multiple-choice benchmark has no mos_range nor num_videos")
    return task


def _resolve(path: str, root: Path | None, key: str) -> Path:
    if os.path.isabs(path):
        return Path(path)
    if root is None:
        raise ValueError(f"benchmark {key!r}: relative path {path!r} needs --data_root or ${DATA_ROOT_ENV}")
    return root / path


def load_benchmarks(
    yaml_path: str | os.PathLike, data_root: str | os.PathLike | None = None, only: list[str] | None = None
) -> list[Benchmark]:
    """The benchmarks of ``yaml_path`` (all, or the keys in ``only``, in that order), paths resolved
    against ``data_root`` (default: the ``VQA_DATA_ROOT`` environment variable)."""
    with open(yaml_path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    entries = config.get("benchmarks") if isinstance(config, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{yaml_path}: expected a 'benchmarks' mapping of key -> benchmark")
    unknown = [key for key in only or [] if key not in entries]
    if unknown:
        raise ValueError(f"{yaml_path}: unknown benchmark(s) {unknown}; available: {', '.join(entries)}")
    root = data_root or os.environ.get(DATA_ROOT_ENV)
    root = Path(root).expanduser() if root else None
    return [_entry(yaml_path, key, entries[key], root) for key in only or list(entries)]


def _entry(yaml_path, key: str, entry, root: Path | None) -> Benchmark:
    """The benchmark ``key`` of a benchmarks YAML, checked."""
    if not isinstance(entry, dict) or not {"annotations", "video_root"} <= set(entry):
        raise ValueError(f"{yaml_path}: benchmark {key!r} needs 'annotations' and 'video_root'")
    extra = set(entry) - BENCHMARK_FIELDS
    if extra:
        raise ValueError(f"{yaml_path}: benchmark {key!r} has unknown field(s) {sorted(extra)}")
    mos_range = entry.get("mos_range")
    if mos_range is not None and (len(mos_range) != 2 or not mos_range[0] < mos_range[1]):
        raise ValueError(f"{yaml_path}: benchmark {key!r}: mos_range must be [low, high], got {mos_range}")
    fmt = str(entry.get("format", "json"))
    task = checked_task(
        f"{yaml_path}: benchmark {key!r}", fmt, entry.get("task"), mos_range, entry.get("num_videos")
    )
    return Benchmark(
        key=key,
        name=str(entry.get("name", key)),
        annotations=_resolve(str(entry["annotations"]), root, key),
        format=fmt,
        video_root=_resolve(str(entry["video_root"]), root, key),
        mos_range=None if mos_range is None else (float(mos_range[0]), float(mos_range[1])),
        num_videos=entry.get("num_videos"),
        task=task,
    )


def select_benchmarks(
    *,
    benchmarks: str | None = None,
    only: str | None = None,
    data_root: str | None = None,
    jsonl: str | None = None,
    json: str | None = None,
    qbench: str | None = None,
    video_root: str | None = None,
    mos_range: list[float] | None = None,
    task: str | None = None,
    dataset_config: str | None = None,
) -> list[Benchmark]:
    """The benchmarks asked for (the fields of ``evaluate``'s arguments), after checking their files are there:
    the ``benchmarks`` YAML (the comma-separated keys of ``only``), the sources of a ``dataset_config``, or one
    ad-hoc ``jsonl``, ``json`` or ``qbench`` file (of ``task``, its format's default when None)."""
    adhoc = [(fmt, path) for fmt, path in (("jsonl", jsonl), ("json", json), ("qbench", qbench)) if path]
    if len(adhoc) + bool(benchmarks) + bool(dataset_config) != 1:
        raise ValueError("give exactly one of --benchmarks, --dataset_config, --jsonl, --json or --qbench")
    if task is not None and not adhoc:
        raise ValueError("--task is for --jsonl, --json or --qbench: a benchmarks YAML or a dataset config gives "
                         "each benchmark's task")  # fmt: skip
    if dataset_config:
        selected = dataset_benchmarks(dataset_config)
    elif adhoc:
        selected = [_adhoc_benchmark(*adhoc[0], video_root, mos_range, task)]
    else:
        keys = [key.strip() for key in only.split(",") if key.strip()] if only else None
        selected = load_benchmarks(benchmarks, data_root, keys)
    problems = [
        f"{b.key}: annotations {b.annotations} not found" for b in selected if not b.annotations.is_file()
    ]
    problems += [
        f"{b.key}: video root {b.video_root} not found" for b in selected if not b.video_root.is_dir()
    ]
    if problems:
        raise FileNotFoundError("missing benchmark files:\n  " + "\n  ".join(problems))
    return selected


def _adhoc_benchmark(fmt: str, path: str, video_root, mos_range, task: str | None) -> Benchmark:
    """The benchmark of one label file given on the command line (``--jsonl`` / ``--json`` / ``--qbench``)."""
    if not video_root:
        raise ValueError(f"--{fmt} needs --video_root")
    if mos_range is not None and (len(mos_range) != 2 or not mos_range[0] < mos_range[1]):
        raise ValueError(f"--mos_range must be LOW HIGH, got {mos_range}")
    task = checked_task(f"--{fmt}", fmt, task, mos_range, None)
    key = Path(path).stem if Path(path).stem != "metrics" else "benchmark"  # metrics.json is the summary
    mos_range = None if mos_range is None else tuple(mos_range)
    return Benchmark(key, key, Path(path), fmt, Path(video_root), mos_range, task=task)


def dataset_benchmarks(yaml_path: str) -> list[Benchmark]:
    """One benchmark per source of a training dataset config (its jsonl, video root, task and ``mos_range``;
    the training-only ``weight`` and ``max_samples`` do not apply), keyed by the source's name."""
    benchmarks = [
        Benchmark(s.name, s.name, Path(s.jsonl), "qbench" if s.layout == "qbench" else "jsonl",
                  Path(s.video_root), s.mos_range if s.task == "score" else None, task=s.task)
        for s in load_dataset_config(yaml_path)
    ]  # fmt: skip
    names = [b.key for b in benchmarks]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{yaml_path}: several sources are named {repeated}: give each a distinct 'name'")
    return benchmarks


def default_output(model: str) -> Path:
    return Path(model) / "eval" if Path(model).is_dir() else Path("eval") / model.replace("/", "__")


def read_items(benchmark: Benchmark) -> tuple[list[BenchmarkItem] | list[ChoiceItem], list[str]]:
    """The benchmark's items and warnings about them (video count, MOS outside ``mos_range``; items of a
    multiple-choice file left out): :class:`~vqathinker.evaluation.items.BenchmarkItem` (a video),
    :class:`~vqathinker.evaluation.choice_runner.ChoiceItem` (a question) for a multiple-choice benchmark."""
    if benchmark.task == "choice":
        items, warnings = read_choice_items(benchmark.annotations, benchmark.video_root, benchmark.format)
        for message in warnings:
            logger.warning("%s: %s", benchmark.key, message)
        return items, warnings
    items = read_benchmark_items(
        benchmark.annotations, benchmark.video_root, benchmark.format, benchmark.mos_range
    )
    warnings = []
    if benchmark.num_videos is not None and len(items) != benchmark.num_videos:
        warnings.append(
            f"{len(items)} videos in {benchmark.annotations}, the benchmark has {benchmark.num_videos}"
        )
    if benchmark.mos_range is not None:
        low, high = benchmark.mos_range
        outside = sum(not low <= item.mos <= high for item in items)
        if outside:
            warnings.append(
                f"{outside} MOS value(s) outside mos_range [{low}, {high}]: is the file rescaled?"
            )
    for message in warnings:
        logger.warning("%s: %s", benchmark.key, message)
    return items, warnings


def evaluate_benchmark(
    job: ScoringJob,
    benchmark: Benchmark,
    items: list[BenchmarkItem] | list[ChoiceItem],
    warnings: list[str],
    output: Path,
    overwrite: bool = False,
) -> dict | None:
    """Score one benchmark (answer a multiple-choice one) and, on the main process, write its reports; returns
    its ``metrics.json`` entry there (None on the other processes)."""
    csv_path = output / "predictions" / f"{benchmark.key}.csv"
    if overwrite and job.process.is_main:
        remove_outputs(csv_path)
    job.process.barrier()  # nobody reads what --overwrite removes
    start = time.perf_counter()
    if benchmark.task == "choice":
        result = run_choice_benchmark(job, items, csv_path, desc=benchmark.key)
    else:
        result = run_benchmark(job, items, csv_path, benchmark.mos_range, desc=benchmark.key)
    seconds = time.perf_counter() - start
    if result is None:
        return None
    about = {
        "benchmark": benchmark.key,
        "name": benchmark.name,
        "task": benchmark.task,
        "annotations": str(benchmark.annotations),
        "video_root": str(benchmark.video_root),
        "predictions_csv": str(csv_path),
    }
    if benchmark.task == "choice":
        done = _run_record(job, result, seconds, warnings, "questions")
        details = {**about, "num_questions": len(items), **choice_details(result, items), **done}
        return write_choice_report(output, benchmark.key, details)
    # the protocol's: unparsed answers left out (default) or scored 3.00 (release)
    preds, mos = job.protocol.scored([row.pred for row in result.rows], [row.mos for row in result.rows])
    details = {
        **about,
        "mos_range": benchmark.mos_range,
        "num_videos": len(items),
        **compute_metrics(preds, mos),
        "unparsed": len(result.unparsed),
        "failed_videos": len(result.failed),
        "unparsed_videos": result.unparsed,
        **_run_record(job, result, seconds, warnings, "videos"),
    }
    return write_benchmark_report(output, benchmark.key, details, preds, mos)


def _run_record(
    job: ScoringJob, result: InferenceResult, seconds: float, warnings: list[str], unit: str
) -> dict:
    """What a run of a benchmark did and with which settings (its report's last fields)."""
    return {
        "failed": result.failed,
        "resumed": result.resumed,
        "generated": result.generated,
        "seconds": seconds,
        f"{unit}_per_second": (result.generated + len(result.failed)) / seconds if seconds > 0 else None,
        "warnings": warnings,
        "settings": {
            **job.settings,
            "batch_size": job.batch_size,
            "processes": job.process.count,
        },
    }
