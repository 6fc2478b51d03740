"""What a finished run leaves in ``output_dir`` besides the weights: the model card, and for a LoRA run the
merged model.

The trainer saves the model (``use_cache`` on, see ``VQAGRPOTrainer.save_model``) and the processor (as a
stock ``InternVLProcessor`` with the run's ``num_frames``, question and prompt style). :func:`finish_output_dir` then writes
``README.md`` (:mod:`vqathinker.model.card`) and, for a LoRA run with ``save_merged``, ``merged/``: the
adapter merged into the base weights, a full checkpoint that stock transformers and vLLM load.
"""

from __future__ import annotations

import logging
from pathlib import Path

from accelerate.utils import is_peft_model

from vqathinker.model.card import write_model_card
from vqathinker.model.loading import ModelOptions, load_model_and_processor
from vqathinker.model.processor import tile_size, tokens_per_frame
from vqathinker.training.configs import VQAModelConfig
from vqathinker.training.trainer import VQAGRPOTrainer

logger = logging.getLogger(__name__)

MERGED = "merged"


def card_facts(trainer: VQAGRPOTrainer, model_args: VQAModelConfig) -> dict[str, dict]:
    """The model card's tables: data, recipe and rewards of the run."""
    data, args, processor = trainer.data_args, trainer.args, trainer.processing_class
    source = (
        {"dataset_config": data.dataset_config}
        if data.dataset_config
        else {"data_jsonl": data.data_jsonl, "video_root": data.video_root, "mos_range": data.mos_range}
    )
    recipe = {
        "steps": trainer.state.global_step,
        "learning_rate": args.learning_rate,
        "processes × per-device batch × accumulation": f"{args.world_size} × {args.per_device_train_batch_size} "
        f"× {args.gradient_accumulation_steps}",
        "num_generations": args.num_generations,
        "max_completion_length": args.max_completion_length,
        "temperature": args.temperature,
        "loss_type": args.loss_type,
        "beta": args.beta,
        "seed": args.seed,
        "warm_start_steps": args.warm_start_steps,
        "weights": f"LoRA r={model_args.lora_r}, alpha={model_args.lora_alpha}"
        if model_args.use_peft
        else "full",
    }
    rewards = {
        "reward_funcs": args.reward_funcs,
        "reward_weights": args.reward_weights,
        "reward_kwargs": args.reward_kwargs,
        "temporal_consistency": args.temporal_consistency,
    }
    frames = {
        "num_frames": data.num_frames,
        "frame size (px)": tile_size(processor),
        "tokens per frame": tokens_per_frame(processor),
        "decode_backend": data.decode_backend,
    }
    return {"Data": {**source, **frames}, "Recipe": recipe, "Rewards": rewards}


def base_model_name(model) -> str:
    """The checkpoint the model was loaded from (for a full model after a warm start: its folder)."""
    if is_peft_model(model):
        return next(iter(model.peft_config.values())).base_model_name_or_path
    return str(getattr(model.config, "_name_or_path", "") or "unknown")


def finish_output_dir(trainer: VQAGRPOTrainer, output_dir: str | Path, model_args: VQAModelConfig) -> None:
    """On the main process: the model card, and ``merged/`` for a LoRA run with ``save_merged``."""
    if not trainer.is_world_process_zero():
        return
    output_dir = Path(output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    base, facts = model_args.model_name_or_path or base_model_name(model), card_facts(trainer, model_args)
    merging = is_peft_model(model) and model_args.save_merged
    note = ""
    if is_peft_model(model):
        note = f"This folder holds the LoRA adapter (peft) of the run on `{base}` and its processor" + (
            f"; `{MERGED}/` is the full checkpoint with the adapter merged in." if merging else "."
        )
    write_model_card(output_dir, base, facts, note)
    if merging:
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        merged, processor = load_model_and_processor(ModelOptions(str(output_dir), dtype=dtype))
        merged.save_pretrained(output_dir / MERGED)
        processor.save_pretrained(output_dir / MERGED)
        write_model_card(output_dir / MERGED, base, facts)
        logger.info("LoRA adapter merged into %s", output_dir / MERGED)
