"""``vqathinker demo``: the whole method end to end on CPU in minutes, on videos made on the spot.

    bash run_scripts/run_grpo_demo.sh                  # = vqathinker demo --config configs/demo.yaml
    vqathinker demo --config configs/demo.yaml --max_steps 200 --output_dir /tmp/demo

1. a quality ladder of real encoded mp4s (:mod:`vqathinker.demo.ladder`): moving synthetic scenes, each
   pristine and degraded at several levels by six defects, MOS from the level, split by scene; the
   training scenes carry only ``train_defects`` (by default exposure: dark and blown out), the held-out
   scenes every defect, so the others probe defects never trained on;
2. a tiny random InternVL (:func:`vqathinker.model.tiny.make_tiny_model`), unless ``model_name_or_path``
   names a checkpoint;
3. a supervised warm start that teaches the answer format with RANDOM scores
   (:mod:`vqathinker.training.warmstart`), so the model knows nothing about quality yet;
4. held-out SRCC/PLCC before GRPO (:func:`vqathinker.evaluation.inference.score_videos`);
5. GRPO with the format, regression and rank rewards (:func:`vqathinker.training.run.build_trainer`, as
   ``vqathinker train``);
6. held-out SRCC/PLCC after GRPO, overall (the trained defects), over every learnable defect, and per defect;
7. ``OUTPUT_DIR/demo_report.json``, ``reward_curve.png`` and the line ``held-out SRCC before=X after=Y``.

The recipe is a YAML file of :class:`~vqathinker.training.configs.DemoArguments`, ``VQADataArguments``,
``VQAGRPOConfig`` and ``VQAModelConfig`` fields; every field can be overridden on the command line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback, set_seed
from transformers.trainer_callback import ProgressCallback

from vqathinker.commands.arguments import recipe_parser
from vqathinker.data.prompts import build_conversation
from vqathinker.data.video import load_frames
from vqathinker.demo.ladder import Ladder, build_ladder
from vqathinker.demo.report import (
    TARGET_MINUTES,
    TARGET_SRCC,
    best_constant_reward,
    build_report,
    summary_lines,
)
from vqathinker.demo.scoring import ladder_metrics
from vqathinker.evaluation.inference import score_videos
from vqathinker.evaluation.report import plot_training
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import tile_size
from vqathinker.model.tiny import make_tiny_model
from vqathinker.training.configs import DemoArguments, VQADataArguments, VQAGRPOConfig, VQAModelConfig
from vqathinker.training.run import build_trainer
from vqathinker.training.warmstart import warm_start

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


class GRPOProgress(TrainerCallback):
    """One progress bar for GRPO, with the latest logged rewards as its postfix (instead of a dict per log)."""

    def __init__(self, reward_names: list[str]):
        self.keys = {"reward": "reward", **{f"rewards/{name}/mean": name for name in reward_names}}
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(total=state.max_steps, desc="GRPO", unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        shown = {label: f"{logs[key]:.3f}" for key, label in self.keys.items() if key in (logs or {})}
        if shown:
            self.bar.set_postfix(shown)

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()


def decode_all(ladder: Ladder, split: str, num_frames: int, size: int, backend: str):
    """Frames of every video of a split (decoded once, kept in memory: the ladder is small)."""
    videos = ladder.split(split)
    frames = [
        load_frames(ladder.video_root / v.video, num_frames, size=size, backend=backend)
        for v in tqdm(videos, desc=f"decode {split}", unit="video", leave=False)
    ]
    return videos, frames


def heldout_metrics(model, processor, videos, frames, demo_args, training_args, desc: str) -> dict:
    """Held-out scores (mean of sampled answers) → :func:`ladder_metrics` plus the parsed fraction."""
    with tqdm(total=len(videos), desc=desc, unit="video") as bar:
        scores, parsed = score_videos(
            model,
            processor,
            frames,
            [demo_args.question] * len(videos),
            samples=demo_args.eval_samples,
            temperature=training_args.temperature,
            max_new_tokens=training_args.max_completion_length,
            batch_size=demo_args.eval_batch_size,
            progress=bar.update,
        )
    return {**ladder_metrics(videos, scores, demo_args.trained_defects()), "parsed_fraction": parsed}


def demo_model(data_args, training_args, model_args, out: Path):
    """The demo's model and processor: the recipe's checkpoint, else a new tiny random InternVL."""
    if not model_args.model_name_or_path:
        tiny = make_tiny_model(out / "tiny_model", seed=training_args.seed, num_frames=data_args.num_frames)
        model_args = dataclasses.replace(model_args, model_name_or_path=str(tiny))
    return load_model_and_processor(model_args.model_options())


def format_warm_start(model, processor, demo_args, num_frames: int, train_frames, seed: int, out: Path):
    """The format-only warm start on the training videos; the model is saved to ``out/warm_start``."""
    conversation = build_conversation(demo_args.question, num_frames)
    with tqdm(total=demo_args.warm_start_steps, desc="warm start (format only)", unit="step") as bar:
        losses = warm_start(
            model,
            processor,
            [conversation] * len(train_frames),
            train_frames,
            steps=demo_args.warm_start_steps,
            batch_size=demo_args.warm_start_batch_size,
            learning_rate=demo_args.warm_start_learning_rate,
            phrase=demo_args.think_phrase,
            seed=seed,
            progress=lambda loss: (bar.update(), bar.set_postfix(loss=f"{loss:.3f}")),
        )
    model.save_pretrained(out / "warm_start")
    processor.save_pretrained(out / "warm_start")
    return losses


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
    lap("ladder")
    model, processor = demo_model(data_args, training_args, model_args, out)
    decode = (data_args.num_frames, tile_size(processor), data_args.decode_backend)
    _, train_frames = decode_all(ladder, "train", *decode)
    held_videos, held_frames = decode_all(ladder, "heldout", *decode)
    lap("model_and_frames")
    losses = format_warm_start(
        model, processor, demo_args, data_args.num_frames, train_frames, training_args.seed, out
    )
    lap("warm_start")
    held = (held_videos, held_frames, demo_args, training_args)
    before = heldout_metrics(model, processor, *held, "held-out before GRPO")
    lap("eval_before")

    ladder_data = dataclasses.replace(
        data_args, data_jsonl=str(ladder.train_jsonl), video_root=str(ladder.video_root), dataset_config=None
    )
    trainer = build_trainer(
        ladder_data,
        training_args,
        model_args,
        model=model,
        processor=processor,
        callbacks=[GRPOProgress(list(training_args.reward_funcs))],
    )
    trainer.remove_callback(ProgressCallback)
    with warnings.catch_warnings():  # trl 1.16 reads transformers' renamed gradient_checkpointing every step
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
        trainer.train()
    trainer.save_model(str(out / "model"))
    trainer.save_state()
    curve = plot_training(out, out / "reward_curve.png")
    lap("grpo")
    after = heldout_metrics(model, processor, *held, "held-out after GRPO")
    lap("eval_after")

    sigma = (
        training_args.reward_kwargs.get("reg") or training_args.reward_kwargs.get("regression") or {}
    ).get("sigma", 0.5)
    report = build_report(
        before,
        after,
        defects=list(demo_args.defects),
        trained_defects=demo_args.trained_defects(),
        log_history=trainer.state.log_history,
        reward_names=list(training_args.reward_funcs),
        constant_reward=best_constant_reward(np.array(trainer.train_dataset["mos"]), sigma),
        warm_start_losses=losses,
        seconds=seconds,
        minutes=round((time.perf_counter() - start) / 60, 2),
    )
    report.update(
        heldout_videos=len(held_videos),
        reward_curve=str(curve),
        model_dir=str(out / "model"),
        demo_args=dataclasses.asdict(demo_args),
    )
    (out / "demo_report.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    demo_args, data_args, training_args, model_args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    print(
        f"vqathinker demo -> {training_args.output_dir}\ntargets: <= {TARGET_MINUTES:.0f} min on 2 CPU cores; "
        f"held-out SRCC after GRPO >= {TARGET_SRCC} on the trained defects while the warm-started model is "
        "~0; mean regression reward rising and above the constant-answer level"
    )
    report = run(demo_args, data_args, training_args, model_args)
    print("\n".join(summary_lines(report)))
    return 0
