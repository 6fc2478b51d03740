"""``vqathinker train``: GRPO training from a YAML recipe, every field overridable on the command line.

    vqathinker train --config configs/grpo_lsvq.yaml --learning_rate 2e-6 --temporal_consistency true
    accelerate launch --config_file configs/accelerate/zero2.yaml -m vqathinker.cli train --config ...

The arguments are the fields of :class:`~vqathinker.training.configs.VQADataArguments`,
:class:`~vqathinker.training.configs.VQAGRPOConfig` and :class:`~vqathinker.training.configs.VQAModelConfig`
(``--help`` lists vqathinker's own, ``--help_all`` every trl / transformers field too); the command line wins
over the YAML file (``trl.TrlParser``, as in open-r1). ``--resume_from_checkpoint last`` resumes from the
newest complete ``checkpoint-*`` of ``output_dir`` and starts afresh when there is none; a path resumes from
that checkpoint.

With ``warm_start_steps`` a supervised pass teaches the answer format before GRPO. During training, warnings
name a run that learns nothing (no answer in format, or rewards without spread) and its likely cause;
``output_dir/training_health.json`` summarises the learning signal. At the end the model (or the LoRA adapter
with ``use_peft``, and the merged model in ``merged/``), the processor (with the run's ``num_frames``), a model
card ``README.md`` and ``trainer_state.json`` (the logged metrics, for ``vqathinker plot-training``) are written
to ``output_dir``; stock transformers loads it. A bad recipe or override is one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
import sys

from vqathinker.commands.arguments import recipe_parser
from vqathinker.training.checks import check_batch_geometry
from vqathinker.training.configs import VQADataArguments, VQAGRPOConfig, VQAModelConfig
from vqathinker.training.run import build_trainer, resolve_resume, setup_logging, train

logger = logging.getLogger(__name__)

ARGUMENT_TYPES = (VQADataArguments, VQAGRPOConfig, VQAModelConfig)


def parse_args(argv: list[str] | None = None) -> tuple[VQADataArguments, VQAGRPOConfig, VQAModelConfig]:
    """``(data_args, training_args, model_args)`` from ``--config X.yaml`` and command-line overrides."""
    parser = recipe_parser("vqathinker train", ARGUMENT_TYPES, argv)
    return parser.parse_args_and_config(argv)


def main(argv: list[str] | None = None) -> int:
    try:  # a bad recipe or override: one line, before anything loads
        data_args, training_args, model_args = parse_args(argv)
        check_batch_geometry(training_args)
    except ValueError as error:
        print(f"vqathinker train: error: {error}", file=sys.stderr)
        return 2
    setup_logging(training_args)
    logger.info("model %s, output %s", model_args.model_name_or_path, training_args.output_dir)
    checkpoint = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    trainer = build_trainer(data_args, training_args, model_args, checkpoint=checkpoint)
    train(trainer, training_args.output_dir, checkpoint, model_args)
    # every process leaves the process group together: a rank that exits while another still writes the model
    # can abort at interpreter shutdown (SIGABRT, "terminate called without an active exception"), and the
    # launcher then fails the finished run
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
