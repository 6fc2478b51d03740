"""One training run, the same for ``vqathinker train`` and the demo: dataset, model, warm start, trainer,
resume, save."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
from collections import Counter
from pathlib import Path

import datasets
import transformers
from accelerate import PartialState
from accelerate.utils import is_peft_model
from transformers import TrainerCallback, set_seed
from transformers.integrations import is_deepspeed_zero3_enabled

from vqathinker.data.datasets import build_dataset
from vqathinker.model.loading import load_model_and_processor
from vqathinker.training.callbacks import TrainingHealth
from vqathinker.training.checks import check_batch_geometry, training_dtype
from vqathinker.training.configs import VQADataArguments, VQAGRPOConfig, VQAModelConfig
from vqathinker.training.output import finish_output_dir
from vqathinker.training.trainer import VQAGRPOTrainer
from vqathinker.training.warmstart import WARM_START_DIR, WARM_START_FILE, warm_start_on_dataset

logger = logging.getLogger(__name__)

RESUME_LAST = "last"


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The ``checkpoint-N`` folder of ``output_dir`` with the highest N whose save completed.

    A save ends with ``trainer_state.json``; a folder without it was cut short (e.g. a killed job).
    """
    steps = []
    for folder in Path(output_dir).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", folder.name)
        if match and (folder / "trainer_state.json").is_file():
            steps.append((int(match.group(1)), folder))
    return str(max(steps)[1]) if steps else None


def resolve_resume(value: str | None, output_dir: str) -> str | None:
    """The checkpoint to resume from: None, a path, or ``"last"`` (the newest complete one, if any)."""
    if value is None:
        return None
    if value == RESUME_LAST:
        checkpoint = last_checkpoint(output_dir)
        logger.info(
            "resuming from %s" if checkpoint else "no checkpoint in %s: starting afresh",
            checkpoint or output_dir,
        )
        return checkpoint
    if not Path(value).is_dir():
        raise FileNotFoundError(
            f"resume_from_checkpoint {value!r} is not a folder (use a path or '{RESUME_LAST}')"
        )
    return value


def setup_logging(training_args: VQAGRPOConfig) -> None:
    """INFO from vqathinker on the main process (WARNING elsewhere); transformers and datasets follow."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = logging.INFO if training_args.process_index == 0 else logging.WARNING
    logging.getLogger("vqathinker").setLevel(level)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    datasets.utils.logging.set_verbosity(training_args.get_process_log_level())


def build_trainer(
    data_args: VQADataArguments,
    training_args: VQAGRPOConfig,
    model_args: VQAModelConfig,
    *,
    model=None,
    processor=None,
    callbacks: list[TrainerCallback] | None = None,
    checkpoint: str | None = None,
) -> VQAGRPOTrainer:
    """The training set of ``data_args``, the model of ``model_args`` (unless ``model`` and ``processor`` are
    given), warm-started when ``warm_start_steps`` > 0 (:func:`warm_start_model`), and the
    :class:`VQAGRPOTrainer` over them, with ``callbacks`` and a
    :class:`~vqathinker.training.callbacks.TrainingHealth` (warnings when nothing is learned, a summary).

    Resuming from ``checkpoint``, the warm start is not run again: its weights are in the checkpoint, and a
    full model starts from its saved warm start, so that the KL reference is the warm-started model again.
    """
    check_batch_geometry(training_args)  # before anything is loaded
    dataset = build_dataset(data_args, seed=training_args.seed)
    logger.info("training set: %d samples of %d videos", len(dataset), len(set(dataset["video"])))
    warm_start = training_args.warm_start_steps > 0
    if model is None:
        set_seed(training_args.seed)  # before loading: LoRA adapters are initialised randomly
        options = training_dtype(model_args, training_args).model_options()
        saved = Path(training_args.output_dir) / WARM_START_DIR
        if warm_start and checkpoint and (saved / WARM_START_FILE).is_file() and options.lora is None:
            logger.info("resuming: the model starts from the warm start saved in %s", saved)
            options = dataclasses.replace(options, model_name_or_path=str(saved))
        model, processor = load_model_and_processor(
            options, gradient_checkpointing=training_args.activation_checkpointing
        )
    elif processor is None:
        raise ValueError("a model given to build_trainer needs its processor")
    processor.num_frames = data_args.num_frames  # saved with the model: evaluate and predict read it
    record_prompt(processor, dataset, data_args.prompt_style)
    if warm_start and checkpoint is None:
        warm_start_model(model, processor, dataset, data_args, training_args)
    return VQAGRPOTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=processor,
        data_args=data_args,
        callbacks=[
            *(callbacks or []),
            TrainingHealth(training_args.no_signal_steps, training_args.no_signal_repeat_steps),
        ],
    )


def record_prompt(processor, dataset, prompt_style: str) -> None:
    """Record on ``processor`` (saved with the model) the prompt style and the question of the training set's
    score rows, the most common one when they differ (logged): evaluate and predict ask it of videos whose
    labels carry no question. A training set without score rows keeps the processor's question."""
    processor.prompt_style = prompt_style
    questions = Counter(
        q for q, task in zip(dataset["question"], dataset["task"], strict=True) if task == "score"
    )
    if not questions:
        return
    (processor.question, count), *others = questions.most_common()
    if others:
        logger.info(
            "the score rows ask %d different questions: the model records the most common (%d of %d rows) for "
            "evaluate and predict: %r",
            len(questions), count, questions.total(), processor.question,
        )  # fmt: skip


def warm_start_model(
    model, processor, dataset, data_args: VQADataArguments, args: VQAGRPOConfig
) -> list[float]:
    """The format-only warm start (:mod:`vqathinker.training.warmstart`) of ``model`` on ``dataset``.

    Every process runs the same seeded pass on its device. The main process saves the model, the processor
    and ``warm_start.json`` (settings and the loss of every step) to ``output_dir/warm_start``; a full model's
    config then names that folder, from which trl rebuilds the KL reference model (``beta`` > 0). Returns the
    losses.
    """
    if is_deepspeed_zero3_enabled():
        raise ValueError(
            "warm_start_steps with DeepSpeed ZeRO-3: the warm start needs whole weights (use ZeRO-2)"
        )
    keywords = None
    if args.warm_start_answers_follow_reasoning:
        keywords = args.reward_kwargs.get("consistency", {}).get("keywords")
        if not (keywords and args.warm_start_reasoning):
            raise ValueError(
                "warm_start_answers_follow_reasoning needs warm_start_reasoning sentences and the consistency "
                'reward\'s keywords (reward_kwargs: {"consistency": {"keywords": {"option text": ["word", ...]}}})'
            )
    if getattr(model, "hf_device_map", None) is None:  # not placed by a quantization config
        model.to(args.device)
    settings = {
        "steps": args.warm_start_steps,
        "batch_size": args.warm_start_batch_size,
        "learning_rate": args.warm_start_learning_rate,
        "phrase": args.warm_start_phrase,
        "reasoning": args.warm_start_reasoning,
        "reasoning_tasks": args.warm_start_reasoning_tasks,
        "keywords": keywords,
        "seed": args.seed,
    }
    losses = warm_start_on_dataset(
        model,
        processor,
        dataset,
        decode_backend=data_args.decode_backend,
        show_progress=args.process_index == 0,
        **settings,
    )
    folder = Path(args.output_dir) / WARM_START_DIR
    if args.process_index == 0:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        (folder / WARM_START_FILE).write_text(json.dumps({**settings, "losses": losses}, indent=2))
    PartialState().wait_for_everyone()
    if not is_peft_model(model):
        model.config._name_or_path = str(folder)
    logger.info(
        "warm start: %d steps, loss %.3f -> %.3f; saved to %s", len(losses), losses[0], losses[-1], folder
    )
    return losses


def train(
    trainer: VQAGRPOTrainer,
    output_dir: str | Path,
    checkpoint: str | None = None,
    model_args: VQAModelConfig | None = None,
) -> None:
    """Train (resuming from ``checkpoint``, see :func:`resolve_resume`), then save the model (or the LoRA
    adapter), the processor and ``trainer_state.json`` to ``output_dir``, with the model card and, for a
    LoRA run, the merged model (:func:`vqathinker.training.output.finish_output_dir`)."""
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(output_dir))
    trainer.save_state()
    finish_output_dir(trainer, output_dir, model_args or VQAModelConfig())
    logger.info("model saved to %s", output_dir)
