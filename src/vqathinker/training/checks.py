"""Start-up checks of a training run: what would otherwise fail deep inside a step, or never."""

from __future__ import annotations

import logging

from PIL import Image
from trl.data_utils import prepare_multimodal_messages

from vqathinker.model.loading import text_config
from vqathinker.model.processor import count_image_blocks, tile_size
from vqathinker.training.configs import VQAGRPOConfig

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
