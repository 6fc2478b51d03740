"""``vqathinker train``: GRPO training from a YAML recipe, every field overridable on the command line.

    vqathinker train --config configs/grpo_lsvq.yaml --learning_rate 2e-6 --temporal_consistency true
    accelerate launch --config_file configs/accelerate/zero2.yaml -m vqathinker.cli train --config ...

The arguments are the fields of :class:`~vqathinker.config.VQADataArguments`,
:class:`~vqathinker.config.VQAGRPOConfig` and :class:`~vqathinker.config.VQAModelConfig` (``--help`` lists
them); the command line wins over the YAML file (``trl.TrlParser``, as in open-r1).
``--resume_from_checkpoint last`` resumes from the newest complete ``checkpoint-*`` of ``output_dir`` and
starts afresh when there is none; a path resumes from that checkpoint.

At the end the model (or the LoRA adapter with ``use_peft``), the processor and ``trainer_state.json`` (the
logged metrics, for ``vqathinker plot-training``) are written to ``output_dir``.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import datasets
import transformers
from transformers import set_seed
from trl import TrlParser

from vqathinker.config import VQADataArguments, VQAGRPOConfig, VQAModelConfig
from vqathinker.data.datasets import build_dataset
from vqathinker.model.internvl import load_model_and_processor
from vqathinker.trainer import VQAGRPOTrainer

logger = logging.getLogger(__name__)

RESUME_LAST = "last"


def parse_args(argv: list[str] | None = None) -> tuple[VQADataArguments, VQAGRPOConfig, VQAModelConfig]:
    """``(data_args, training_args, model_args)`` from ``--config X.yaml`` and command-line overrides."""
    parser = TrlParser((VQADataArguments, VQAGRPOConfig, VQAModelConfig))
    return parser.parse_args_and_config(argv)


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


def main(argv: list[str] | None = None) -> int:
    data_args, training_args, model_args = parse_args(argv)
    setup_logging(training_args)
    logger.info("model %s, output %s", model_args.model_name_or_path, training_args.output_dir)
    checkpoint = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)

    dataset = build_dataset(data_args, seed=training_args.seed)
    logger.info("training set: %d samples of %d videos", len(dataset), len(set(dataset["video"])))

    set_seed(training_args.seed)  # before loading: LoRA adapters are initialised randomly
    model, processor = load_model_and_processor(
        model_args, gradient_checkpointing=training_args.activation_checkpointing
    )
    trainer = VQAGRPOTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=processor,
        data_args=data_args,
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    logger.info("model saved to %s", training_args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
