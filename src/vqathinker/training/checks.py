"""Start-up checks of a training run: what would otherwise fail deep inside a step, or never."""

from __future__ import annotations

import dataclasses
import logging

from PIL import Image
from trl.data_utils import prepare_multimodal_messages

from vqathinker.model.loading import text_config
from vqathinker.model.processor import count_image_blocks, tile_size
from vqathinker.rewards import REWARDS
from vqathinker.training.configs import VQAGRPOConfig, VQAModelConfig

logger = logging.getLogger(__name__)


def check_context_length(model, processor, dataset, args: VQAGRPOConfig) -> None:
    """Fail before training when prompt + ``max_completion_length`` exceeds the model's context.

    The prompt measured is the dataset row with the longest question, with its frames (black tiles): its
    length is exact for that row; frames are never truncated (trl has no max_prompt_length).
    """
    if dataset is None or len(dataset) == 0 or "prompt" not in dataset.column_names:
        return
    if "question" in dataset.column_names:
        questions = dataset["question"]
        row = dataset[max(range(len(questions)), key=lambda i: len(questions[i]))]
    else:
        row = dataset[0]
    tile = tile_size(processor)
    frames = [Image.new("RGB", (tile, tile))] * count_image_blocks(row["prompt"])
    prompt = prepare_multimodal_messages(row["prompt"], images=frames)
    encoded = processor.apply_chat_template(
        [prompt],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        **(args.chat_template_kwargs or {}),
    )
    needed = len(encoded["input_ids"][0]) + args.max_completion_length
    limit = text_config(model.config).max_position_embeddings
    if needed > limit:
        raise ValueError(
            f"prompt ({len(encoded['input_ids'][0])} tokens with {len(frames)} frames) + max_completion_length "
            f"({args.max_completion_length}) = {needed} tokens exceeds the model's max_position_embeddings "
            f"({limit}): use fewer frames or a shorter max_completion_length"
        )
    if not args.use_vllm:
        return
    if args.vllm_mode == "server":  # the server's context was set when it was launched
        logger.info("vLLM server: its --max-model-len must be at least %d (prompt + completion)", needed)
    elif args.vllm_max_model_length is not None and needed > args.vllm_max_model_length:
        raise ValueError(
            f"prompt ({len(encoded['input_ids'][0])} tokens with {len(frames)} frames) + max_completion_length "
            f"({args.max_completion_length}) = {needed} tokens exceeds vllm_max_model_length "
            f"({args.vllm_max_model_length}), which vLLM would refuse: raise it or use fewer frames"
        )


def check_batch_geometry(args: VQAGRPOConfig) -> None:
    """Refuse a batch in which a reward that compares videos (the rank reward) can never compare two.

    Such a reward is computed over each generation batch of every process, i.e. over
    ``per_device_train_batch_size × steps_per_generation × processes / num_generations`` videos; with one
    video it is NaN at every step (no peer), for the whole run.
    """
    weights = args.reward_weights or [1.0] * len(args.reward_funcs)
    comparing = [
        name
        for name, weight in zip(args.reward_funcs, weights, strict=True)
        if weight and REWARDS[name].batch_rewards is not None
    ]
    videos = args.generation_batch_size // args.num_generations
    if comparing and videos < 2:
        raise ValueError(
            f"each generation batch holds a single video (per_device_train_batch_size × steps_per_generation × "
            f"processes = {args.per_device_train_batch_size} × {args.steps_per_generation} × {args.world_size} = "
            f"{args.generation_batch_size} rollouts, num_generations {args.num_generations} per video), so the "
            f"reward {comparing} can never compare two videos and stays NaN for the whole run: use "
            f"--per_device_train_batch_size {2 * args.num_generations} (or more gradient_accumulation_steps / "
            f"steps_per_generation), or drop {comparing} from reward_funcs"
        )


def training_dtype(model_args: VQAModelConfig, args: VQAGRPOConfig) -> VQAModelConfig:
    """``model_args`` whose ``dtype`` follows the precision flags: without ``bf16`` or ``fp16`` the model loads,
    trains and is saved in float32.

    A GPU recipe run with ``--bf16 false`` (e.g. on CPU) keeps its ``dtype: bfloat16``, and a ``dtype`` left
    to the checkpoint is bfloat16 for InternVL3: the weights would train and be saved in bfloat16 without
    saying so. A half-precision ``dtype`` set with both flags off is changed with a warning; a quantized model
    keeps its settings.
    """
    if (
        args.bf16
        or args.fp16
        or model_args.dtype == "float32"
        or model_args.load_in_4bit
        or model_args.load_in_8bit
    ):
        return model_args
    if model_args.dtype in ("bfloat16", "float16"):
        logger.warning(
            "dtype %s with bf16 and fp16 off: the model trains and is saved in float32 (for %s training set "
            "--bf16 true on a GPU)",
            model_args.dtype,
            model_args.dtype,
        )
    return dataclasses.replace(model_args, dtype="float32")
