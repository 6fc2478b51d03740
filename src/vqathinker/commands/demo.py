"""``vqathinker demo``: the whole method end to end on CPU in minutes, on videos made on the spot.

    bash run_scripts/run_grpo_demo.sh                  # = vqathinker demo --config configs/demo.yaml
    vqathinker demo --config configs/demo.yaml --max_steps 200 --output_dir /tmp/demo

1. a quality ladder of real mp4s (:mod:`vqathinker.demo.ladder`), split by scene: training scenes carry only
   ``train_defects``, held-out scenes every defect (the others probe defects never trained on);
2. a tiny random InternVL (:mod:`vqathinker.model.tiny`), unless ``model_name_or_path`` names a checkpoint;
3. :func:`vqathinker.training.run.build_trainer`, as ``vqathinker train`` runs it: the warm start that
   teaches the answer format with RANDOM scores (:mod:`vqathinker.training.warmstart`), then the trainer;
4. held-out SRCC/PLCC before GRPO (:func:`vqathinker.demo.scoring.heldout_metrics`);
5. GRPO (format, regression, rank rewards);
6. held-out SRCC/PLCC after GRPO: overall (the trained defects), every learnable defect, per defect;
7. ``OUTPUT_DIR/demo_report.json``, ``reward_curve.png`` and ``held-out SRCC before=X after=Y``; the trained
   model is ``OUTPUT_DIR/model`` (the report's ``model_dir``), a folder ``vqathinker evaluate`` and ``predict``
   load like any training run's, which asks the demo's question of label files that carry none.

With ``choice_questions`` (``configs/demo_multitask.yaml``) it trains multi-task: the ladder's degraded videos
also get the question "Which problem dominates this video?" (:mod:`vqathinker.demo.questions`), GRPO trains
on the scores and the questions mixed (``choice_weight``), the warm start's reasoning is drawn at random from
the defect sentences, and the held-out questions are answered before and after GRPO: the report's
``attribution`` gives accuracy, explanation faithfulness and consistency against chance
(:mod:`vqathinker.demo.attribution`). The ``consistency`` reward, when the recipe names it, gets the defect
words from the demo.

The recipe is a YAML file of :class:`~vqathinker.training.configs.DemoArguments`, ``VQADataArguments``,
``VQAGRPOConfig`` and ``VQAModelConfig`` fields; every field can be overridden on the command line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import set_seed
from transformers.trainer_callback import ProgressCallback

from vqathinker.commands.arguments import recipe_parser
from vqathinker.demo.attribution import (
    attribution_report,
    heldout_attribution,
    option_keywords,
    reasoning_phrases,
)
from vqathinker.demo.ladder import build_ladder, decode_split
from vqathinker.demo.questions import ChoiceQuestions, write_choice_questions
from vqathinker.demo.report import (
    TARGET_ACCURACY,
    TARGET_DEFECT_SRCC,
    TARGET_FAITHFULNESS,
    TARGET_MINUTES,
    TARGET_SRCC,
    best_constant_reward,
    build_report,
    regression_sigma,
    summary_lines,
)
from vqathinker.demo.scoring import heldout_metrics
from vqathinker.evaluation.report import plot_training
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import tile_size
from vqathinker.model.tiny import make_tiny_model
from vqathinker.training.callbacks import GRPOProgress
from vqathinker.training.checks import training_dtype
from vqathinker.training.configs import DemoArguments, VQADataArguments, VQAGRPOConfig, VQAModelConfig
from vqathinker.training.run import build_trainer, train
from vqathinker.training.warmstart import WARM_START_DIR, WARM_START_FILE

DEFAULT_CONFIG = "configs/demo.yaml"
ARGUMENT_TYPES = (DemoArguments, VQADataArguments, VQAGRPOConfig, VQAModelConfig)


def parse_args(
    argv: list[str] | None,
) -> tuple[DemoArguments, VQADataArguments, VQAGRPOConfig, VQAModelConfig]:
    """The four argument groups from ``--config`` (default ``configs/demo.yaml``) and the command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--config" or a.startswith("--config=") for a in argv):
        argv = ["--config", _default_config(), *argv]
    return recipe_parser("vqathinker demo", ARGUMENT_TYPES, argv).parse_args_and_config(argv)


def _default_config() -> str:
    """``configs/demo.yaml`` of the working directory, else of the source checkout this package is in."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (root / DEFAULT_CONFIG).is_file():
            return str(root / DEFAULT_CONFIG)
    raise FileNotFoundError(f"no {DEFAULT_CONFIG} here: pass --config PATH")


def demo_model(vision: str, data_args, training_args, model_args, out: Path):
    """The demo's model and processor: the recipe's checkpoint, else a new tiny InternVL with ``vision``."""
    if not model_args.model_name_or_path:
        tiny = make_tiny_model(
            out / "tiny_model", seed=training_args.seed, num_frames=data_args.num_frames, vision=vision
        )
        model_args = dataclasses.replace(model_args, model_name_or_path=str(tiny))
    return load_model_and_processor(training_dtype(model_args, training_args).model_options())


def grpo_trainer(
    model,
    processor,
    ladder,
    data_args,
    training_args: VQAGRPOConfig,
    model_args,
    questions: ChoiceQuestions | None = None,
):
    """The GRPO trainer of the ladder's training videos through :func:`build_trainer`, as ``vqathinker train``
    builds it: with ``warm_start_steps`` it warm-starts the model first (saved to ``output_dir/warm_start``).
    With ``questions`` it trains on their dataset config (the scores and the training questions mixed)."""
    if questions is None:
        ladder_data = dataclasses.replace(
            data_args,
            data_jsonl=str(ladder.train_jsonl),
            video_root=str(ladder.video_root),
            dataset_config=None,
        )
    else:
        ladder_data = dataclasses.replace(
            data_args, dataset_config=str(questions.dataset_config), data_jsonl=None, video_root=None
        )
    callbacks = [GRPOProgress(list(training_args.reward_funcs))]
    trainer = build_trainer(
        ladder_data, training_args, model_args, model=model, processor=processor, callbacks=callbacks
    )
    trainer.remove_callback(ProgressCallback)
    return trainer


def attribution_settings(demo_args: DemoArguments, training_args: VQAGRPOConfig) -> None:
    """Fill in what the recipe leaves to the demo: the defect words of the ``consistency`` reward (when named),
    and with ``choice_questions`` the warm start's reasoning, drawn from the defect sentences (unless given)."""
    if "consistency" in training_args.reward_funcs:
        consistency = training_args.reward_kwargs.setdefault("consistency", {})
        consistency.setdefault("keywords", option_keywords(demo_args.defects))
    if demo_args.choice_questions and training_args.warm_start_reasoning is None:
        training_args.warm_start_reasoning = reasoning_phrases(demo_args.defects)


def warm_start_losses(out: Path) -> list[float]:
    """The loss of every warm-start step, as the warm start saved them (none without a warm start)."""
    saved = out / WARM_START_DIR / WARM_START_FILE
    return json.loads(saved.read_text())["losses"] if saved.is_file() else []


def run(demo_args: DemoArguments, data_args, training_args: VQAGRPOConfig, model_args) -> dict:
    """Run the demo; returns the report (also written to ``output_dir/demo_report.json``)."""
    start, seconds = time.perf_counter(), {}
    out = Path(training_args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if demo_args.num_threads:
        torch.set_num_threads(demo_args.num_threads)
    set_seed(training_args.seed)

    def lap(name: str) -> None:
        seconds[name] = round(time.perf_counter() - start - sum(seconds.values()), 2)

    ladder = build_ladder(
        out / "ladder", demo_args.question, **demo_args.ladder_options(), seed=training_args.seed
    )
    questions = (
        write_choice_questions(ladder.root, demo_args.choice_weight) if demo_args.choice_questions else None
    )
    attribution_settings(demo_args, training_args)
    lap("ladder")
    model, processor = demo_model(demo_args.vision, data_args, training_args, model_args, out)
    decode = (data_args.num_frames, tile_size(processor), data_args.decode_backend)
    held_videos, held_frames = decode_split(ladder, "heldout", *decode)
    lap("model_and_frames")
    trainer = grpo_trainer(model, processor, ladder, data_args, training_args, model_args, questions)
    losses = warm_start_losses(out)
    lap("warm_start")
    scoring = demo_args.scoring_options(training_args.temperature, training_args.max_completion_length)
    sampling = demo_args.sampling_options(
        training_args.temperature, training_args.max_completion_length, demo_args.attribution_samples
    )
    records = questions.heldout_records() if questions else []
    frames_of = {v.video: f for v, f in zip(held_videos, held_frames, strict=True)}

    def attribution(when: str) -> dict:
        desc = f"attribution {when} GRPO"
        return heldout_attribution(model, processor, records, frames_of, desc=desc, **sampling)

    before = heldout_metrics(
        model, processor, held_videos, held_frames, desc="held-out before GRPO", **scoring
    )
    attribution_before = attribution("before") if questions else None
    lap("eval_before")

    train(trainer, out / "model", model_args=model_args)  # as `vqathinker train` saves its output_dir
    curve = plot_training(out, out / "reward_curve.png")
    lap("grpo")
    after = heldout_metrics(model, processor, held_videos, held_frames, desc="held-out after GRPO", **scoring)
    attribution_after = attribution("after") if questions else None
    lap("eval_after")

    report = build_report(
        before,
        after,
        defects=list(demo_args.defects),
        trained_defects=demo_args.trained_defects(),
        log_history=trainer.state.log_history,
        reward_names=list(training_args.reward_funcs),
        constant_reward=best_constant_reward(
            np.array([mos for mos in trainer.train_dataset["mos"] if mos is not None]),
            regression_sigma(training_args.reward_kwargs),
        ),
        warm_start_losses=losses,
        seconds=seconds,
        minutes=round((time.perf_counter() - start) / 60, 2),
    )
    report.update(heldout_videos=len(held_videos), reward_curve=str(curve), model_dir=str(out / "model"))
    if questions:
        report["attribution"] = {
            **attribution_report(attribution_before, attribution_after),
            "defects": questions.defects,
            "samples": demo_args.attribution_samples,
            "dataset_config": str(questions.dataset_config),
        }
    report["demo_args"] = dataclasses.asdict(demo_args)
    (out / "demo_report.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    try:  # a bad recipe or override: one line, before anything runs
        demo_args, data_args, training_args, model_args = parse_args(argv)
    except ValueError as error:
        print(f"vqathinker demo: error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    print(
        f"vqathinker demo -> {training_args.output_dir}\ntargets: <= {TARGET_MINUTES:.0f} min on 2 CPU cores; "
        f"held-out SRCC after GRPO >= {TARGET_SRCC} on the trained defects and >= {TARGET_DEFECT_SRCC} on each, while "
        "the warm-started model is ~0; mean regression reward rising and above the constant-answer level"
        + (
            f"; attribution accuracy >= {TARGET_ACCURACY} and faithfulness >= {TARGET_FAITHFULNESS} on the "
            "held-out scenes, from chance after the warm start"
            if demo_args.choice_questions
            else ""
        )
    )
    report = run(demo_args, data_args, training_args, model_args)
    print("\n".join(summary_lines(report)))
    return 0
