"""``vqathinker evaluate``: score benchmarks with a trained model and report SRCC / PLCC / KRCC / RMSE.

    vqathinker evaluate --model_name_or_path OUT --benchmarks configs/benchmarks.yaml [--only konvid,livevqc]
        [--data_root DIR] [--output_dir DIR] [--num_frames N] [--batch_size B] [--max_new_tokens T]
    vqathinker evaluate --model_name_or_path OUT --jsonl test.jsonl --video_root DIR [--mos_range 0 100]
    vqathinker evaluate --model_name_or_path OUT --json KoNViD.json --video_root DIR
    vqathinker evaluate ... --protocol release   # the release's test code: 12 frames, its prompt and parsing

What is written and how the metrics are computed: :mod:`vqathinker.evaluation.benchmarks`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import HfArgumentParser

from vqathinker.evaluation.benchmarks import default_output, evaluate_benchmark, read_items, select_benchmarks
from vqathinker.evaluation.inference import ResumeError, load_for_inference
from vqathinker.evaluation.protocol import PROTOCOLS, release_table
from vqathinker.evaluation.report import markdown_table, write_summary
from vqathinker.training.configs import EvalArguments, InferenceArguments

logger = logging.getLogger(__name__)

BENCHMARK_SELECTION = ("benchmarks", "only", "data_root", "jsonl", "json", "video_root", "mos_range")


def main(argv: list[str] | None = None) -> int:
    parser = HfArgumentParser((EvalArguments, InferenceArguments), prog="vqathinker evaluate")
    try:
        eval_args, infer_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # a field's own check (__post_init__)
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    selection = {name: getattr(eval_args, name) for name in BENCHMARK_SELECTION}
    try:
        benchmarks = select_benchmarks(**selection)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    output = Path(eval_args.output_dir or default_output(infer_args.model_name_or_path))
    try:  # every label file is read before the model is loaded: a bad one fails in seconds
        work = [(benchmark, *read_items(benchmark)) for benchmark in benchmarks]
    except ValueError as error:
        parser.error(str(error))
    protocol = PROTOCOLS[eval_args.protocol]
    model, processor, num_frames = load_for_inference(
        infer_args.model_options(), infer_args.resolved_device(), infer_args.num_frames or protocol.num_frames
    )
    logger.info("scoring %d benchmark(s) with %d frames per video into %s", len(work), num_frames, output)
    options = {
        "model_name": infer_args.model_name_or_path,
        "num_frames": num_frames,
        "batch_size": infer_args.batch_size,
        "max_new_tokens": infer_args.max_new_tokens,
        "decode_backend": infer_args.decode_backend,
        "overwrite": eval_args.overwrite,
        "protocol": protocol,
    }
    summaries = {}
    for benchmark, items, warnings in work:
        try:
            summaries[benchmark.key] = evaluate_benchmark(
                model, processor, benchmark, items, warnings, output, **options
            )
        except ResumeError as error:
            parser.exit(2, f"vqathinker evaluate: error: {error}\n")
        json_path, md_path = write_summary(output, summaries)  # up to date after every benchmark
    if protocol.name == "release":  # raw PLCC first, the answers scored 3.00 beside
        md_path.write_text(release_table(summaries))
    print(release_table(summaries) if protocol.name == "release" else markdown_table(summaries))
    print(f"wrote {json_path}, {md_path} and per-benchmark JSON / PNG / CSV in {output}")
    return 0
