"""``vqathinker evaluate``: score benchmarks with a trained model and report SRCC / PLCC / KRCC / RMSE (the
accuracy of a multiple-choice benchmark).

    vqathinker evaluate --model_name_or_path OUT --benchmarks configs/benchmarks.yaml [--only konvid,livevqc]
        [--data_root DIR] [--output_dir DIR] [--num_frames N] [--batch_size B] [--max_new_tokens T]
        [--question TEXT]   # asked of labels without a question (default: the one the model was trained with)
    vqathinker evaluate --model_name_or_path OUT --dataset_config configs/datasets/mine.yaml
    vqathinker evaluate --model_name_or_path OUT --jsonl test.jsonl --video_root DIR [--mos_range 0 100]
    vqathinker evaluate --model_name_or_path OUT --json KoNViD.json --video_root DIR
    vqathinker evaluate --model_name_or_path OUT --qbench Q_Bench_Video_dev.json --video_root DIR  # choice
    vqathinker evaluate --model_name_or_path OUT --jsonl questions.jsonl --task choice --video_root DIR
    accelerate launch --multi_gpu --num_processes 8 -m vqathinker.cli evaluate ...   # data parallel
    vqathinker evaluate ... --backend vllm [--tensor_parallel_size 2]    # vLLM (the gpu extra)
    vqathinker evaluate ... --protocol release   # the release's test code: 12 frames at 560 px,
                                                                  # its prompt and parsing

What is written and how the metrics are computed: :mod:`vqathinker.evaluation.benchmarks`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from transformers import HfArgumentParser

from vqathinker.data.video import load_frames
from vqathinker.evaluation.backends import load_scorer, scoring_settings
from vqathinker.evaluation.benchmarks import default_output, evaluate_benchmark, read_items, select_benchmarks
from vqathinker.evaluation.choice_report import metrics_markdown
from vqathinker.evaluation.choice_runner import check_choice_generation
from vqathinker.evaluation.items import with_question
from vqathinker.evaluation.predictions import ResumeError
from vqathinker.evaluation.prefetch import decode_pool
from vqathinker.evaluation.protocol import PROTOCOLS, EvalProtocol
from vqathinker.evaluation.report import write_summary
from vqathinker.evaluation.runner import Process, ScoringJob
from vqathinker.model.card import record_evaluation
from vqathinker.model.processor import tile_size
from vqathinker.training.configs import EvalArguments, InferenceArguments

logger = logging.getLogger(__name__)

BENCHMARK_SELECTION = (
    "benchmarks", "only", "data_root", "jsonl", "json", "qbench", "video_root", "mos_range", "task",
    "dataset_config",
)  # fmt: skip


def this_process(device: str | None) -> tuple[Process, str]:
    """This process among those ``accelerate launch`` started (one when run directly) and its device:
    ``device`` if given, else the process's GPU, else cpu."""
    cpu = device == "cpu" or (device is None and not torch.cuda.is_available())
    state = PartialState(cpu=cpu)
    process = Process(state.process_index, state.num_processes, state.wait_for_everyone, gather_object)
    return process, device or str(state.device)


def scoring_job(
    infer_args: InferenceArguments, protocol: EvalProtocol, process: Process, device: str, pool
) -> ScoringJob:
    """Load the model (or start vLLM) and describe how every benchmark's videos are scored: the options of
    ``infer_args``, with the ``protocol``'s frames and question (unless given), prompt style, reading and
    sampling; the question asked of videos whose labels carry none is ``settings["question"]``."""
    generation = dataclasses.replace(
        infer_args.generation_options(), prompt_style=protocol.prompt_style, parse=protocol.parse
    )
    answer, processor, num_frames = load_scorer(
        infer_args.model_options(),
        generation,
        infer_args.num_frames or protocol.num_frames,
        infer_args.frame_size or protocol.frame_size,
        infer_args.backend_options(device, process.count),
    )
    question = infer_args.question or protocol.question  # None: the checkpoint's
    settings = scoring_settings(
        infer_args.model_name_or_path, infer_args.backend, processor, num_frames, generation, question
    )
    load = functools.partial(
        load_frames,
        num_frames=num_frames,
        size=tile_size(processor),
        backend=infer_args.decode_backend,
        sampling=protocol.frame_sampling,
    )
    return ScoringJob(
        answer=answer,
        load_frames=load,
        settings={**settings, "protocol": protocol.name, "decode_backend": infer_args.decode_backend},
        batch_size=infer_args.batch_size,
        decode_pool=pool,
        process=process,
        protocol=protocol,
    )


def table(job: ScoringJob, summaries: dict[str, dict], settings: bool = True) -> str:
    """The metrics as markdown: the release protocol's table (raw PLCC first), else ours; then the
    multiple-choice benchmarks."""
    return metrics_markdown(summaries, job.settings if settings else None, job.protocol.name == "release")


def run(job: ScoringJob, work: list, output: Path, overwrite: bool) -> dict[str, dict]:
    """Score every benchmark of ``work``; the main process writes the reports and returns the summaries."""
    summaries = {}
    for benchmark, items, warnings in work:
        summary = evaluate_benchmark(job, benchmark, items, warnings, output, overwrite)
        if summary is not None:
            summaries[benchmark.key] = summary
            write_summary(
                output, summaries, markdown=table(job, summaries)
            )  # up to date after every benchmark
    return summaries


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
        work = [(benchmark, *read_items(benchmark)) for benchmark in benchmarks]  # before loading the model
        if any(benchmark.task == "choice" for benchmark in benchmarks):
            check_choice_generation(infer_args.num_samples, infer_args.score_mode)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    output = Path(eval_args.output_dir or default_output(infer_args.model_name_or_path))
    process, device = this_process(infer_args.device)
    with decode_pool(infer_args.decode_workers) as pool:  # forked before the model is loaded
        try:
            job = scoring_job(infer_args, PROTOCOLS[eval_args.protocol], process, device, pool)
        except (ValueError, ImportError) as error:  # a frame size the tower cannot take, vLLM missing, ...
            parser.error(str(error))
        work = [
            (benchmark, with_question(items, job.settings["question"]), w) for benchmark, items, w in work
        ]
        if process.is_main:
            logger.info(
                "scoring %d benchmark(s) with %d frames per video in %d process(es) into %s",
                len(work), job.settings["num_frames"], process.count, output,
            )  # fmt: skip
        try:
            summaries = run(job, work, output, eval_args.overwrite)
        except ResumeError as error:
            parser.exit(2, f"vqathinker evaluate: error: {error}\n")
    if process.is_main:
        print(table(job, summaries))
        print(f"wrote {output / 'metrics.json'}, metrics.md and per-benchmark JSON / PNG / CSV in {output}")
        if record_evaluation(
            infer_args.model_name_or_path, table(job, summaries, False), job.settings, output
        ):
            print(f"and the metrics into the model card {Path(infer_args.model_name_or_path) / 'README.md'}")
    # the processes leave their group together (as `train` does): none exits while the main one still writes
    process.barrier()
    PartialState().destroy_process_group()
    return 0
