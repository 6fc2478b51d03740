"""Generation with ``shared_prompt``: each distinct prompt prefilled once, its G rollouts decoded from it.

:func:`shared_prefill` makes transformers' ``generate`` prefill each distinct prompt once (vision once per
video) and :func:`sample_packed` decode the G rows of a prompt as one packed sequence over that prefill: the
prompt's keys are stored and read once for the G rows. Sampling is ``generate``'s own (its logits processors,
draws and stopping), so the same seed gives ``generate``'s rollouts. The packing and its block mask are those of
the log-prob passes (:mod:`vqathinker.model.shared_prompt`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable

import torch
from transformers.generation import GenerationMode
from transformers.generation.utils import GenerateDecoderOnlyOutput
from transformers.integrations import is_deepspeed_zero3_enabled

from vqathinker.model.shared_prompt import (
    MASKABLE_ATTENTION,
    block_attention_mask,
    group_rows,
)

logger = logging.getLogger(__name__)


def packed_sampling_config(model, generation_config, model_kwargs: dict):
    """``generate``'s own merged generation config when :func:`sample_packed` implements it exactly, else None.

    Implemented: greedy or multinomial sampling with ``generate``'s logits processors (temperature, top-k /
    top-p / min-p, repetition penalty, suppressed tokens, min_new_tokens...), EOS and max_new_tokens, scores.
    Anything else (beams, assistants, stop strings, extra outputs or model inputs) runs ``generate``.
    """
    config, _ = model._prepare_generation_config(generation_config)
    unsupported = (
        model_kwargs
        or config.get_generation_mode() not in (GenerationMode.SAMPLE, GenerationMode.GREEDY_SEARCH)
        or config.stop_strings is not None
        or config.max_time is not None
        or config.cache_implementation is not None
        or config.prefill_chunk_size is not None
        or config.output_attentions
        or config.output_hidden_states
        or config.output_logits
        or (config.guidance_scale is not None and config.guidance_scale != 1)
    )
    return None if unsupported else config


def _packing(groups: list[list[int]], num_rows: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(slot_of, pack_order)``: each row's index in the packed order, and the rows in packed order."""
    size = len(groups[0])
    slot_of = torch.empty(num_rows, dtype=torch.long)
    for g, rows in enumerate(groups):
        slot_of[rows] = g * size + torch.arange(size)
    pack_order = torch.tensor([row for rows in groups for row in rows], device=device)
    return slot_of.to(device), pack_order


def _prefill_inputs(model, input_ids, attention_mask, first: torch.Tensor, num_groups: int):
    """The prefill's inputs (one row per prompt) and the position of each prompt's first new token, as
    ``generate`` counts them: from the first unpadded token for models that take ``position_ids``, else the
    column index."""
    prefill = {"input_ids": input_ids[first], "attention_mask": attention_mask[first]}
    if "position_ids" in inspect.signature(model.forward).parameters:
        positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        prefill["position_ids"] = positions[first]
        return prefill, attention_mask[first].sum(dim=1)
    return prefill, torch.full((num_groups,), input_ids.shape[1], device=input_ids.device)


def _logits_processors(model, config, input_ids: torch.Tensor):
    """``generate``'s logits processors for ``config`` (its special tokens prepared as ``generate`` does)."""
    model._prepare_special_tokens(config, True, device=input_ids.device)
    return model._get_logits_processor(
        generation_config=config,
        input_ids_seq_length=input_ids.shape[1],
        encoder_input_ids=input_ids,
        prefix_allowed_tokens_fn=None,
        logits_processor=None,
        device=input_ids.device,
        model_kwargs={},
    )


def sample_packed(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    pixel_values: torch.Tensor | None,
    pixel_rows: list[tuple[int, int]] | None,
    groups: list[list[int]],
    config,
    *,
    attn_implementation: str,
    dtype: torch.dtype,
    motion_token_id: int | None = None,
):
    """Sample every row from one prefill of its prompt, decoding the rows of a prompt as one packed sequence.

    Each distinct prompt runs once (frames included) into a key/value cache of one row per prompt; every
    decoding step then feeds the k new tokens of a prompt's rows as k positions of that row, each seeing the
    prompt and its own earlier tokens only (a block mask), at the position ``generate`` gives it. The prompt's
    keys are stored and read once per step for all k rows. Sampling is ``generate``'s: the same logits
    processors, the same multinomial draws in the same row order, EOS and padding of finished rows.
    Needs groups of equal size. The motion token (``motion_token_id``), outside the vocabulary, reads as token
    0 to the logits processors, as in the motion models' ``generate``; the returned prompts are ``input_ids``.
    """
    num_rows, prompt_length = input_ids.shape
    device = input_ids.device
    size = len(groups[0])
    slot_of, pack_order = _packing(groups, num_rows, device)
    first = pack_order[::size]
    prefill, next_position = _prefill_inputs(model, input_ids, attention_mask, first, len(groups))
    if pixel_values is not None:
        prefill["pixel_values"] = torch.cat([pixel_values[slice(*pixel_rows[rows[0]])] for rows in groups])
    processors = _logits_processors(model, config, input_ids)
    eos, pad = config._eos_token_tensor, config._pad_token_tensor
    max_new = (
        config.max_new_tokens if config.max_new_tokens is not None else config.max_length - prompt_length
    )
    # who may read each cached key: -1 a prompt token, -2 prompt padding, j the j-th row of the prompt
    owners = torch.where(attention_mask[first].bool(), -1, -2)
    slots = torch.arange(size, device=device)
    scores = [] if config.return_dict_in_generate and config.output_scores else None
    sequences = (
        input_ids if motion_token_id is None else input_ids.masked_fill(input_ids == motion_token_id, 0)
    )
    unfinished = torch.ones(num_rows, dtype=torch.bool, device=device)
    with torch.no_grad():
        outputs = model(**prefill, use_cache=True, logits_to_keep=1)
        cache = outputs.cache
        logits = outputs.logits[:, -1].float().repeat_interleave(size, dim=0)[slot_of]
        for step in range(max_new):
            step_scores = processors(sequences, logits)
            if scores is not None:
                scores.append(step_scores)
            if config.do_sample:
                tokens = torch.multinomial(step_scores.softmax(dim=-1), num_samples=1).squeeze(1)
            else:
                tokens = step_scores.argmax(dim=-1)
            if eos is not None:
                tokens = torch.where(unfinished, tokens, pad)
            sequences = torch.cat([sequences, tokens[:, None]], dim=-1)
            if eos is not None:
                unfinished &= ~torch.isin(tokens, eos)
            if step == max_new - 1 or not bool(unfinished.any()):
                break
            owners = torch.cat([owners, slots.expand(len(groups), size)], dim=1)
            allowed = (owners[:, None, :] == -1) | (owners[:, None, :] == slots[None, :, None])
            outputs = model(
                input_ids=tokens[pack_order].view(len(groups), size),
                attention_mask=block_attention_mask(allowed[:, None], attn_implementation, dtype),
                position_ids=(next_position + step)[:, None].expand(len(groups), size),
                cache=cache,
                use_cache=True,
            )
            logits = outputs.logits.reshape(num_rows, -1).float()[slot_of]
    sequences = torch.cat([input_ids, sequences[:, prompt_length:]], dim=1)
    if scores is None:
        return sequences
    return GenerateDecoderOnlyOutput(sequences=sequences, scores=tuple(scores))


def generate_with_shared_prefill(
    model,
    generate: Callable[..., torch.Tensor],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    pixel_values: torch.Tensor | None = None,
    *,
    image_token_id: int,
    tokens_per_tile: int,
    motion_token_id: int | None = None,
    generation_config=None,
    **kwargs,
):
    """``generate(input_ids, attention_mask, pixel_values, generation_config, **kwargs)``, each distinct
    prompt prefilled once and its rows decoded together (:func:`sample_packed`).

    Rows whose prompts (ids, padding, frames) are identical form a group. Without repeats, with groups of
    unequal size, under multi-process ZeRO-3 (whose forward passes need every process) or with a generation
    setting :func:`sample_packed` does not implement, this is plain ``generate``. ``pixel_values`` are
    tile-indexed: ``count(image_token_id) / tokens_per_tile`` tiles per row, in row order.
    """
    tiles = ((input_ids == image_token_id).sum(dim=1) // tokens_per_tile).tolist()
    ends = torch.tensor(tiles).cumsum(0).tolist()
    pixel_rows = [(end - count, end) for end, count in zip(ends, tiles, strict=True)]
    groups = None
    if pixel_values is None or (ends and ends[-1] == pixel_values.shape[0]):
        groups = group_rows(input_ids, attention_mask, input_ids.shape[1], pixel_values, pixel_rows)
    decoder = model.get_decoder()
    attn_implementation = decoder.config._attn_implementation
    config = None
    if (
        groups is not None
        and len(groups) < input_ids.shape[0]
        and len({len(rows) for rows in groups}) == 1
        and attn_implementation in MASKABLE_ATTENTION
        and not (
            is_deepspeed_zero3_enabled()
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1
        )
    ):
        config = packed_sampling_config(model, generation_config, kwargs)
    if config is None:
        if pixel_values is not None:
            kwargs["pixel_values"] = pixel_values
        return generate(
            input_ids=input_ids, attention_mask=attention_mask, generation_config=generation_config, **kwargs
        )
    return sample_packed(
        model,
        input_ids,
        attention_mask,
        pixel_values,
        pixel_rows,
        groups,
        config,
        attn_implementation=attn_implementation,
        dtype=decoder.get_input_embeddings().weight.dtype,
        motion_token_id=motion_token_id,
    )


@contextlib.contextmanager
def shared_prefill(model, *, image_token_id: int, tokens_per_tile: int, motion_token_id: int | None = None):
    """Within it, ``model.generate`` prefills each distinct prompt once (:func:`generate_with_shared_prefill`).

    ``model`` may be a ``peft.PeftModel``: its base model's ``generate`` is the one replaced, the one PEFT
    calls, and the prefill runs that model, adapters in place.
    """
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    target.generate = functools.partial(
        generate_with_shared_prefill,
        target,
        target.generate,
        image_token_id=image_token_id,
        tokens_per_tile=tokens_per_tile,
        motion_token_id=motion_token_id,
    )
    try:
        yield
    finally:
        del target.generate
