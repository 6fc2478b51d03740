"""``vqathinker evaluate``: score benchmarks with a trained model and report SRCC / PLCC / KRCC / RMSE.

    vqathinker evaluate --model OUT --benchmarks configs/benchmarks.yaml [--only konvid,livevqc]
        [--data-root DIR] [--output DIR] [--frames N] [--batch-size B] [--max-new-tokens T]
    vqathinker evaluate --model OUT --jsonl test.jsonl --video-root DIR [--mos-range 0 100]
    vqathinker evaluate --model OUT --json KoNViD.json --video-root DIR

Per benchmark, in ``--output``: ``predictions/<benchmark>.csv`` (one row per video, resumed when present),
``<benchmark>.json`` and ``<benchmark>.png`` (scatter with the fitted logistic); for all of them
``metrics.json`` and ``metrics.md``. Metrics are computed on the videos whose answer has a score, against
the raw MOS of the labels: the model answers on 1..5 while a benchmark's MOS may be on 0..100, which does not
change the correlations, and RMSE (after the logistic fit) is in the benchmark's MOS units. Unparsed answers
and videos that fail to decode are counted and listed, never given a default score.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from vqathinker.evaluation.inference import (
    BenchmarkItem,
    InferenceArguments,
    ResumeError,
    load_for_inference,
    read_benchmark_items,
    run_benchmark,
)
from vqathinker.evaluation.metrics import compute_metrics
from vqathinker.evaluation.report import markdown_table, write_benchmark_report, write_summary

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "VQA_DATA_ROOT"
BENCHMARK_FIELDS = {"name", "annotations", "format", "video_root", "mos_range", "num_videos"}


@dataclass
class EvalArguments:
    """Which benchmarks ``vqathinker evaluate`` scores and where it writes the results."""

    benchmarks: str | None = field(
        default=None,
        metadata={"help": "YAML list of benchmarks (configs/benchmarks.yaml); or give --jsonl / --json."},
    )
    only: str | None = field(
        default=None,
        metadata={"help": "Comma-separated benchmark keys of --benchmarks to run (default: all)."},
    )
    data_root: str | None = field(
        default=None,
        metadata={
            "help": f"Folder the relative paths of --benchmarks are under (default: ${DATA_ROOT_ENV})."
        },
    )
    output: str | None = field(
        default=None,
        metadata={"help": "Output folder (default: MODEL/eval for a local model, else eval/<model id>)."},
    )
    jsonl: str | None = field(
        default=None, metadata={"help": "One ad-hoc benchmark: an LSVQ-style jsonl (needs --video-root)."}
    )
    json: str | None = field(
        default=None,
        metadata={
            "help": 'One ad-hoc benchmark: a VQAThinker test json {"annotations": [{"image_id", "score"}]} '
            "(needs --video-root)."
        },
    )
    video_root: str | None = field(default=None, metadata={"help": "Video folder of --jsonl / --json."})
    mos_range: list[float] | None = field(
        default=None,
        metadata={
            "help": "MOS scale of --jsonl / --json as LOW HIGH (jsonl default: 1 5; checked, not rescaled)."
        },
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Start every benchmark's CSV afresh instead of resuming it."}
    )


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
        raise ValueError(f"benchmark {key!r}: relative path {path!r} needs --data-root or ${DATA_ROOT_ENV}")
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


def select_benchmarks(args: EvalArguments) -> list[Benchmark]:
    """The benchmarks the arguments ask for, after checking that their files are there."""
    adhoc = [(fmt, path) for fmt, path in (("jsonl", args.jsonl), ("json", args.json)) if path]
    if len(adhoc) + bool(args.benchmarks) != 1:
        raise ValueError("give exactly one of --benchmarks, --jsonl or --json")
    if adhoc:
        (fmt, path), mos_range = adhoc[0], args.mos_range
        if not args.video_root:
            raise ValueError(f"--{fmt} needs --video-root")
        if mos_range is not None and (len(mos_range) != 2 or not mos_range[0] < mos_range[1]):
            raise ValueError(f"--mos-range must be LOW HIGH, got {mos_range}")
        key = Path(path).stem if Path(path).stem != "metrics" else "benchmark"  # metrics.json is the summary
        benchmarks = [
            Benchmark(
                key,
                key,
                Path(path),
                fmt,
                Path(args.video_root),
                None if mos_range is None else tuple(mos_range),
            )
        ]
    else:
        only = [key.strip() for key in args.only.split(",") if key.strip()] if args.only else None
        benchmarks = load_benchmarks(args.benchmarks, args.data_root, only)
    problems = [
        f"{b.key}: annotations {b.annotations} not found" for b in benchmarks if not b.annotations.is_file()
    ]
    problems += [
        f"{b.key}: video root {b.video_root} not found" for b in benchmarks if not b.video_root.is_dir()
    ]
    if problems:
        raise FileNotFoundError("missing benchmark files:\n  " + "\n  ".join(problems))
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
    model,
    processor,
    benchmark: Benchmark,
    items: list[BenchmarkItem],
    warnings: list[str],
    output: Path,
    num_frames: int,
    args: InferenceArguments,
    overwrite: bool = False,
) -> dict:
    """Score one benchmark and write its reports; returns its ``metrics.json`` entry."""
    csv_path = output / "predictions" / f"{benchmark.key}.csv"
    if overwrite:
        csv_path.unlink(missing_ok=True)
    settings = {
        "model": args.model,
        "max_new_tokens": args.max_new_tokens,
        "decode_backend": args.decode_backend,
    }
    result = run_benchmark(
        model,
        processor,
        items,
        csv_path,
        num_frames=num_frames,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        decode_backend=args.decode_backend,
        settings=settings,
        desc=benchmark.key,
    )
    parsed = [row for row in result.rows if row.parse_ok]
    preds, mos = [row.pred for row in parsed], [row.mos for row in parsed]
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
        "warnings": warnings,
        "settings": {**settings, "num_frames": num_frames, "batch_size": args.batch_size},
    }
    return write_benchmark_report(output, benchmark.key, details, preds, mos)


def main(argv: list[str] | None = None) -> int:
    parser = HfArgumentParser((EvalArguments, InferenceArguments), prog="vqathinker evaluate")
    try:
        eval_args, infer_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # a field's own check (__post_init__)
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        benchmarks = select_benchmarks(eval_args)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    output = Path(eval_args.output) if eval_args.output else default_output(infer_args.model)
    try:  # every label file is read before the model is loaded: a bad one fails in seconds
        work = [(benchmark, *read_items(benchmark)) for benchmark in benchmarks]
    except ValueError as error:
        parser.error(str(error))
    model, processor, num_frames = load_for_inference(infer_args)
    logger.info("scoring %d benchmark(s) with %d frames per video into %s", len(work), num_frames, output)
    summaries = {}
    for benchmark, items, warnings in work:
        try:
            summaries[benchmark.key] = evaluate_benchmark(
                model,
                processor,
                benchmark,
                items,
                warnings,
                output,
                num_frames,
                infer_args,
                eval_args.overwrite,
            )
        except ResumeError as error:
            parser.exit(2, f"vqathinker evaluate: error: {error}\n")
        json_path, md_path = write_summary(output, summaries)  # up to date after every benchmark
    print(markdown_table(summaries))
    print(f"wrote {json_path}, {md_path} and per-benchmark JSON / PNG / CSV in {output}")
    return 0
