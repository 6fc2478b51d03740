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
   (:mod:`vqathinker.demo.warmstart`), so the model knows nothing about quality yet;
4. held-out SRCC/PLCC before GRPO (:mod:`vqathinker.demo.scoring`);
5. GRPO with the format, regression and rank rewards through :class:`vqathinker.trainer.VQAGRPOTrainer`;
6. held-out SRCC/PLCC after GRPO, overall (the trained defects), over every learnable defect, and per defect;
7. ``OUTPUT_DIR/demo_report.json``, ``reward_curve.png`` and the line ``held-out SRCC before=X after=Y``.

The recipe is a YAML file of :class:`DemoArguments`, :class:`~vqathinker.config.VQADataArguments`,
:class:`~vqathinker.config.VQAGRPOConfig` and :class:`~vqathinker.config.VQAModelConfig` fields, read by
``trl.TrlParser``; every field can be overridden on the command line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback, set_seed
from transformers.trainer_callback import ProgressCallback
from trl import TrlParser

from vqathinker.config import VQADataArguments, VQAGRPOConfig, VQAModelConfig
from vqathinker.data.datasets import build_dataset
from vqathinker.data.prompts import build_conversation
from vqathinker.data.video import load_frames
from vqathinker.demo.ladder import DEFECTS, LEARNABLE_DEFECTS, Ladder, build_ladder
from vqathinker.demo.scoring import ladder_metrics, score_videos
from vqathinker.demo.warmstart import THINK_PHRASE, warm_start
from vqathinker.evaluation.report import plot_training
from vqathinker.model.internvl import load_model_and_processor, tile_size
from vqathinker.model.tiny import make_tiny_model
from vqathinker.trainer import VQAGRPOTrainer

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = "configs/demo.yaml"
TARGET_MINUTES = 10.0
TARGET_SRCC = 0.6


@dataclass
class DemoArguments:
    """Options of the demo that are not training options: the ladder, the warm start, the scoring."""

    ladder_contents: int = field(default=16, metadata={"help": "Distinct moving scenes of the ladder."})
    ladder_heldout: int = field(
        default=6,
        metadata={"help": "Scenes held out for evaluation (never trained on, warm start included)."},
    )
    ladder_levels: int = field(
        default=3,
        metadata={"help": "Degradation levels per defect (MOS 4.5 pristine down to 1.5 at the last)."},
    )
    ladder_frames: int = field(default=16, metadata={"help": "Frames per ladder video (8 fps)."})
    ladder_size: int = field(
        default=64, metadata={"help": "Width and height of the ladder videos in pixels."}
    )
    defects: list[str] = field(
        default_factory=lambda: list(DEFECTS),
        metadata={
            "help": f"Defects of the ladder, from {list(DEFECTS)}; learnable: {list(LEARNABLE_DEFECTS)}."
        },
    )
    train_defects: list[str] = field(
        default_factory=lambda: ["dark", "bright"],
        metadata={
            "help": "Defects whose videos are trained on; the others are held-out only (a probe of defects never "
            "trained on). The default, exposure, is what the tiny model learns reliably in 10 minutes; the "
            "measurements with more defects are in configs/demo.yaml."
        },
    )
    question: str = field(
        default="Rate the quality of this video.",
        metadata={
            "help": "The question of the ladder's records. A short one keeps the image tokens a large share of "
            "the tiny model's prompt (and the steps fast); the LSVQ default is vqathinker.data.prompts.QUALITY_QUESTION."
        },
    )
    warm_start_steps: int = field(
        default=300, metadata={"help": "Supervised warm-start steps (format only, random scores)."}
    )
    warm_start_batch_size: int = field(default=16, metadata={"help": "Videos per warm-start step."})
    warm_start_learning_rate: float = field(
        default=1e-3, metadata={"help": "AdamW learning rate of the warm start."}
    )
    think_phrase: str = field(
        default=THINK_PHRASE, metadata={"help": "Fixed reasoning text of the warm start's target answers."}
    )
    eval_samples: int = field(
        default=8,
        metadata={
            "help": "Sampled answers averaged into each held-out video's score (0: one greedy answer)."
        },
    )
    eval_batch_size: int = field(default=16, metadata={"help": "Held-out videos per generate call."})
    num_threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (None: torch's default)."}
    )


def parse_args(
    argv: list[str] | None,
) -> tuple[DemoArguments, VQADataArguments, VQAGRPOConfig, VQAModelConfig]:
    """The four argument groups from ``--config`` (default ``configs/demo.yaml``) and the command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv) and "-h" not in argv:
        argv = ["--config", _default_config(), *argv]
    parser = TrlParser((DemoArguments, VQADataArguments, VQAGRPOConfig, VQAModelConfig))
    return parser.parse_args_and_config(argv)


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


def best_constant_reward(mos: np.ndarray, sigma: float) -> float:
    """The mean regression reward of the best constant answer on ``mos``: the bar a model must beat."""
    grid = np.linspace(1.0, 5.0, 401)
    rewards = np.exp(-((grid[:, None] - mos[None, :]) ** 2) / (2 * sigma**2)).mean(axis=1)
    return float(rewards.max())


def reward_trend(log_history: list[dict], key: str) -> dict:
    """Mean of ``key`` over the first and the last fifth of the logged steps."""
    values = [entry[key] for entry in log_history if key in entry and math.isfinite(entry[key])]
    if not values:
        return {"first": math.nan, "last": math.nan, "points": 0}
    window = max(1, len(values) // 5)
    return {
        "first": float(np.mean(values[:window])),
        "last": float(np.mean(values[-window:])),
        "points": len(values),
    }


def _scores(model, processor, videos, frames, demo_args, training_args, desc):
    conversation = build_conversation(demo_args.question, len(frames[0]))
    with tqdm(total=len(videos), desc=desc, unit="video") as bar:
        scores, parsed = score_videos(
            model,
            processor,
            [conversation] * len(videos),
            frames,
            samples=demo_args.eval_samples,
            temperature=training_args.temperature,
            max_new_tokens=training_args.max_completion_length,
            batch_size=demo_args.eval_batch_size,
            progress=bar.update,
        )
    result = ladder_metrics(videos, scores, trained_defects(demo_args))
    result["parsed_fraction"] = parsed
    return result


def trained_defects(demo_args: DemoArguments) -> list[str]:
    """The ladder's defects that GRPO trains on (``train_defects`` in the order of ``defects``)."""
    return [d for d in demo_args.defects if d in demo_args.train_defects]


def run(
    demo_args: DemoArguments,
    data_args: VQADataArguments,
    training_args: VQAGRPOConfig,
    model_args: VQAModelConfig,
) -> dict:
    """Run the demo; returns the report (also written to ``output_dir/demo_report.json``)."""
    start = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(training_args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if demo_args.num_threads:
        torch.set_num_threads(demo_args.num_threads)
    set_seed(training_args.seed)

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.perf_counter() - since, 2)
        return time.perf_counter()

    # 1. the quality ladder
    t = time.perf_counter()
    ladder = build_ladder(
        out / "ladder",
        demo_args.question,
        num_contents=demo_args.ladder_contents,
        num_heldout=demo_args.ladder_heldout,
        num_levels=demo_args.ladder_levels,
        defects=demo_args.defects,
        train_defects=demo_args.train_defects,  # checked there: a subset of defects
        num_frames=demo_args.ladder_frames,
        size=demo_args.ladder_size,
        seed=training_args.seed,
        show_progress=True,
    )
    train_defects = trained_defects(demo_args)
    t = lap("ladder", t)

    # 2. the tiny model (or the checkpoint the recipe names)
    if not model_args.model_name_or_path:
        model_args.model_name_or_path = str(
            make_tiny_model(out / "tiny_model", seed=training_args.seed, num_frames=data_args.num_frames)
        )
    model, processor = load_model_and_processor(model_args)
    size = tile_size(processor)
    train_videos, train_frames = decode_all(
        ladder, "train", data_args.num_frames, size, data_args.decode_backend
    )
    held_videos, held_frames = decode_all(
        ladder, "heldout", data_args.num_frames, size, data_args.decode_backend
    )
    t = lap("model_and_frames", t)

    # 3. warm start: the format only, random scores
    conversation = build_conversation(demo_args.question, data_args.num_frames)
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
            seed=training_args.seed,
            progress=lambda loss: (bar.update(), bar.set_postfix(loss=f"{loss:.3f}")),
        )
    model.save_pretrained(out / "warm_start")
    processor.save_pretrained(out / "warm_start")
    t = lap("warm_start", t)

    # 4. held-out before GRPO
    before = _scores(
        model, processor, held_videos, held_frames, demo_args, training_args, "held-out before GRPO"
    )
    t = lap("eval_before", t)

    # 5. GRPO
    data_args.data_jsonl, data_args.video_root = str(ladder.train_jsonl), str(ladder.video_root)
    data_args.dataset_config = None
    dataset = build_dataset(data_args, seed=training_args.seed)
    trainer = VQAGRPOTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=processor,
        data_args=data_args,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(GRPOProgress(list(training_args.reward_funcs)))
    trainer.train()
    trainer.save_model(str(out / "model"))
    trainer.save_state()
    curve = plot_training(out, out / "reward_curve.png")
    t = lap("grpo", t)

    # 6. held-out after GRPO
    after = _scores(
        model, processor, held_videos, held_frames, demo_args, training_args, "held-out after GRPO"
    )
    lap("eval_after", t)

    sigma = (
        training_args.reward_kwargs.get("reg") or training_args.reward_kwargs.get("regression") or {}
    ).get("sigma", 0.5)
    history = trainer.state.log_history
    report = {
        "srcc_before": before["overall"]["srcc"],
        "srcc_after": after["overall"]["srcc"],
        "plcc_before": before["overall"]["plcc"],
        "plcc_after": after["overall"]["plcc"],
        "minutes": round((time.perf_counter() - start) / 60, 2),
        "trained_defects": train_defects,
        "learnable": {
            "defects": list(LEARNABLE_DEFECTS),
            "srcc_before": before["learnable"]["srcc"],
            "srcc_after": after["learnable"]["srcc"],
            "plcc_before": before["learnable"]["plcc"],
            "plcc_after": after["learnable"]["plcc"],
        },
        "per_defect": {
            defect: {
                "learnable": DEFECTS[defect].learnable,
                "trained": defect in train_defects,
                "srcc_before": before["per_defect"][defect]["srcc"],
                "srcc_after": after["per_defect"][defect]["srcc"],
                "plcc_before": before["per_defect"][defect]["plcc"],
                "plcc_after": after["per_defect"][defect]["plcc"],
                "n": after["per_defect"][defect]["n"],
            }
            for defect in demo_args.defects
        },
        "heldout_videos": len(held_videos),
        "parsed_fraction_before": before["parsed_fraction"],
        "parsed_fraction_after": after["parsed_fraction"],
        "grpo_steps": trainer.state.global_step,
        "reward_trend": {
            "total": reward_trend(history, "reward"),
            **{name: reward_trend(history, f"rewards/{name}/mean") for name in training_args.reward_funcs},
        },
        "constant_answer_reg_reward": best_constant_reward(np.array(dataset["mos"]), sigma),
        "warm_start_loss": {"first": losses[0], "last": losses[-1]} if losses else None,
        "seconds": timings,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg": os.getloadavg(),
        },
        "reward_curve": str(curve),
        "model_dir": str(out / "model"),
        "demo_args": asdict(demo_args),
    }
    (out / "demo_report.json").write_text(json.dumps(report, indent=2))
    return report


def print_summary(report: dict) -> None:
    """The measured numbers next to the demo's targets, then the one-line result."""
    reg = report["reward_trend"].get("reg") or report["reward_trend"]["total"]
    print(f"\nheld-out videos of the trained defects ({', '.join(report['trained_defects'])}) + pristine:")
    print(
        f"  SRCC {report['srcc_before']:.3f} -> {report['srcc_after']:.3f}   (target after >= {TARGET_SRCC})"
    )
    print(f"  PLCC {report['plcc_before']:.3f} -> {report['plcc_after']:.3f}")
    learnable = report["learnable"]
    print(
        f"every learnable defect ({', '.join(learnable['defects'])}) + pristine: "
        f"SRCC {learnable['srcc_before']:.3f} -> {learnable['srcc_after']:.3f}"
    )
    for defect, m in report["per_defect"].items():
        kind = ("learnable" if m["learnable"] else "expected to stay low") + (
            "" if m["trained"] else ", never trained on"
        )
        print(f"  {defect:9s} SRCC {m['srcc_before']:+.3f} -> {m['srcc_after']:+.3f}  ({kind})")
    print(
        f"regression reward {reg['first']:.3f} -> {reg['last']:.3f} over {report['grpo_steps']} GRPO steps "
        f"(constant answer earns {report['constant_answer_reg_reward']:.3f}; target: up and above it)"
    )
    print(
        f"time {report['minutes']:.1f} min (target <= {TARGET_MINUTES:.0f} min on 2 CPU cores); {report['seconds']}"
    )
    print(f"held-out SRCC before={report['srcc_before']:.3f} after={report['srcc_after']:.3f}")


def main(argv: list[str] | None = None) -> int:
    demo_args, data_args, training_args, model_args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    print(
        f"vqathinker demo -> {training_args.output_dir}\ntargets: <= {TARGET_MINUTES:.0f} min on 2 CPU cores; "
        f"held-out SRCC after GRPO >= {TARGET_SRCC} on the trained defects while the warm-started model is "
        "~0; mean regression reward rising and above the constant-answer level"
    )
    report = run(demo_args, data_args, training_args, model_args)
    print_summary(report)
    return 0
