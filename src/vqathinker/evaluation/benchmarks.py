"""Benchmarks: the test sets of ``configs/benchmarks.yaml``, the sources of a dataset config, or one ad-hoc
label file, scored and reported.

Per benchmark, in the output folder: ``predictions/<benchmark>.csv`` (one row per video, resumed when
present, :mod:`vqathinker.evaluation.predictions`), ``<benchmark>.json`` and ``<benchmark>.png`` (scatter
with the fitted logistic); for all of them ``metrics.json`` and ``metrics.md``. Metrics are computed on the
videos whose answer has a score, against the raw MOS of the labels: the model answers on 1..5 while a
benchmark's MOS may be on 0..100. Correlations do not depend on the scale (``pred`` and ``pred_mos``, its
linear map onto the benchmark's ``mos_range``, give the same ones); RMSE is that of the logistic fit of the
predictions to the raw MOS, so it is in the benchmark's MOS units. Unparsed answers and videos that fail to
decode are counted and listed, never given a default score.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from vqathinker.data.datasets import load_dataset_config
from vqathinker.evaluation.items import BenchmarkItem, read_benchmark_items
from vqathinker.evaluation.metrics import compute_metrics
from vqathinker.evaluation.predictions import remove_outputs
from vqathinker.evaluation.report import write_benchmark_report
from vqathinker.evaluation.runner import ScoringJob, run_benchmark

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "VQA_DATA_ROOT"
BENCHMARK_FIELDS = {"name", "annotations", "format", "video_root", "mos_range", "num_videos"}


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
    benchmarks = []
    for key in only or list(entries):
        entry = entries[key]
        if not isinstance(entry, dict) or not {"annotations", "video_root"} <= set(entry):
            raise ValueError(f"{yaml_path}: benchmark {key!r} needs 'annotations' and 'video_root'")
        extra = set(entry) - BENCHMARK_FIELDS
        if extra:
            raise ValueError(f"{yaml_path}: benchmark {key!r} has unknown field(s) {sorted(extra)}")
        mos_range = entry.get("mos_range")
        if mos_range is not None and (len(mos_range) != 2 or not mos_range[0] < mos_range[1]):
            raise ValueError(
                f"{yaml_path}: benchmark {key!r}: mos_range must be [low, high], got {mos_range}"
            )
        benchmarks.append(
            Benchmark(
                key=key,
                name=str(entry.get("name", key)),
                annotations=_resolve(str(entry["annotations"]), root, key),
                format=str(entry.get("format", "json")),
                video_root=_resolve(str(entry["video_root"]), root, key),
                mos_range=None if mos_range is None else (float(mos_range[0]), float(mos_range[1])),
                num_videos=entry.get("num_videos"),
            )
        )
    return benchmarks


def select_benchmarks(
    *,
    benchmarks: str | None = None,
    only: str | None = None,
    data_root: str | None = None,
    jsonl: str | None = None,
    json: str | None = None,
    video_root: str | None = None,
    mos_range: list[float] | None = None,
    dataset_config: str | None = None,
) -> list[Benchmark]:
    """The benchmarks asked for (the fields of ``evaluate``'s arguments), after checking their files are there:
    the ``benchmarks`` YAML (the comma-separated keys of ``only``), the sources of a ``dataset_config``, or one
    ad-hoc ``jsonl`` or ``json``."""
    adhoc = [(fmt, path) for fmt, path in (("jsonl", jsonl), ("json", json)) if path]
    if len(adhoc) + bool(benchmarks) + bool(dataset_config) != 1:
        raise ValueError("give exactly one of --benchmarks, --dataset_config, --jsonl or --json")
    if dataset_config:
        selected = dataset_benchmarks(dataset_config)
    elif adhoc:
        (fmt, path) = adhoc[0]
        if not video_root:
            raise ValueError(f"--{fmt} needs --video_root")
        if mos_range is not None and (len(mos_range) != 2 or not mos_range[0] < mos_range[1]):
            raise ValueError(f"--mos_range must be LOW HIGH, got {mos_range}")
        key = Path(path).stem if Path(path).stem != "metrics" else "benchmark"  # metrics.json is the summary
        selected = [
            Benchmark(
                key,
                key,
                Path(path),
                fmt,
                Path(video_root),
                None if mos_range is None else tuple(mos_range),
            )
        ]
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


def dataset_benchmarks(yaml_path: str) -> list[Benchmark]:
    """One benchmark per source of a training dataset config (its jsonl, video root and ``mos_range``; the
    training-only ``weight`` and ``max_samples`` do not apply), keyed by the source's name."""
    benchmarks = [
        Benchmark(s.name, s.name, Path(s.jsonl), "jsonl", Path(s.video_root), s.mos_range)
        for s in load_dataset_config(yaml_path)
    ]
    names = [b.key for b in benchmarks]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{yaml_path}: several sources are named {repeated}: give each a distinct 'name'")
    return benchmarks


def default_output(model: str) -> Path:
    return Path(model) / "eval" if Path(model).is_dir() else Path("eval") / model.replace("/", "__")


def read_items(benchmark: Benchmark) -> tuple[list[BenchmarkItem], list[str]]:
    """The benchmark's items and warnings about them (video count, MOS outside ``mos_range``)."""
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
    items: list[BenchmarkItem],
    warnings: list[str],
    output: Path,
    overwrite: bool = False,
) -> dict | None:
    """Score one benchmark and, on the main process, write its reports; returns its ``metrics.json`` entry
    there (None on the other processes)."""
    csv_path = output / "predictions" / f"{benchmark.key}.csv"
    if overwrite and job.process.is_main:
        remove_outputs(csv_path)
    job.process.barrier()  # nobody reads what --overwrite removes
    start = time.perf_counter()
    result = run_benchmark(job, items, csv_path, benchmark.mos_range, desc=benchmark.key)
    seconds = time.perf_counter() - start
    if result is None:
        return None
    # the protocol's: unparsed answers left out (default) or scored 3.00 (release)
    preds, mos = job.protocol.scored([row.pred for row in result.rows], [row.mos for row in result.rows])
    details = {
        "benchmark": benchmark.key,
        "name": benchmark.name,
        "annotations": str(benchmark.annotations),
        "video_root": str(benchmark.video_root),
        "mos_range": benchmark.mos_range,
        "predictions_csv": str(csv_path),
        "num_videos": len(items),
        **compute_metrics(preds, mos),
        "unparsed": len(result.unparsed),
        "failed_videos": len(result.failed),
        "unparsed_videos": result.unparsed,
        "failed": result.failed,
        "resumed": result.resumed,
        "generated": result.generated,
        "seconds": seconds,
        "videos_per_second": (result.generated + len(result.failed)) / seconds if seconds > 0 else None,
        "warnings": warnings,
        "settings": {
            **job.settings,
            "batch_size": job.batch_size,
            "processes": job.process.count,
        },
    }
    return write_benchmark_report(output, benchmark.key, details, preds, mos)
