"""Encode each distinct frame (and motion clip) once per forward pass, whatever the batch repeats.

In GRPO every prompt appears G times (``num_generations``): the rollouts of a video are G rows with the same
frames. trl sends all G copies to the model, so the vision tower encodes every frame G times in the rollout
generation, again in the log-prob passes (old policy, reference model) and again in the loss, and so does
the motion trunk. :func:`share_encoders` hooks the encoders of a model so that, inside any forward pass,
identical input rows are encoded once and the result is copied to every row that had them:

- the vision tower (``vision_tower`` of an HF-format InternVL, ``vision_model`` of a remote-code one), whose
  rows are frames (one tile per frame): each distinct frame of the batch is encoded once;
- the motion trunk (``slowfast_model``, :mod:`vqathinker.model.motion`), whose rows are clips: each distinct
  video's clip runs once.

Rows are matched by content, exactly: a strided sample of each row groups candidates, then ``torch.equal``
confirms every match, so a row is only ever given the encoding of a bit-identical row. The result is the
model's own forward pass on every backend (HF-format, motion, remote-code, PEFT, DeepSpeed), with no input
or signature changed: the copies are an ``index_select`` of the encoder's output, whose backward adds the
G copies' gradients into the one encoding, so losses and gradients equal the unshared ones up to float
summation order. The projector after the tower and the language model still see every row.

With dropout inside an encoder (none in InternVL's vision tower or the frozen trunk, but LoRA dropout when
adapters target vision-tower layers) the copies of a row share one dropout mask, as they do in
``generate(num_return_sequences=...)``: an equally valid sample, not the unshared path's draw.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from transformers.utils import ModelOutput

from vqathinker.model.motion import TRUNK_NAME

ENCODER_NAMES = ("vision_tower", "vision_model", TRUNK_NAME)
"""Module names whose forward passes are shared: the HF-format and remote-code vision towers, the motion trunk."""

SAMPLE_SIZE = 1024
"""Values per row in the strided sample that groups candidate duplicates before the exact comparison."""


def distinct_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(first, inverse)`` with ``x[first][inverse]`` equal to ``x`` row for row, or None if no row repeats.

    ``first`` indexes the first occurrence of each distinct row (in order), ``inverse`` maps every row of
    ``x`` to its position in ``first``. Rows are equal when ``torch.equal`` says so.
    """
    num_rows = x.shape[0]
    if num_rows < 2:
        return None
    flat = x.reshape(num_rows, -1)
    step = max(1, flat.shape[1] // SAMPLE_SIZE)
    _, sample_ids = torch.unique(flat[:, ::step].float(), dim=0, return_inverse=True)
    sample_ids = sample_ids.tolist()
    if len(set(sample_ids)) == num_rows:
        return None
    first: list[int] = []
    inverse: list[int] = []
    candidates: dict[int, list[int]] = {}
    for row, sample_id in enumerate(sample_ids):
        same = candidates.setdefault(sample_id, [])
        match = next((u for u in same if torch.equal(flat[row], flat[first[u]])), None)
        if match is None:
            match = len(first)
            same.append(match)
            first.append(row)
        inverse.append(match)
    if len(first) == num_rows:
        return None
    return (
        torch.tensor(first, dtype=torch.long, device=x.device),
        torch.tensor(inverse, dtype=torch.long, device=x.device),
    )


def expand_rows(value, index: torch.Tensor):
    """``value`` (a tensor, a ``ModelOutput``, or tuples / lists of them) with its rows picked by ``index``."""
    if isinstance(value, torch.Tensor):
        return value.index_select(0, index) if value.dim() > 0 else value
    if isinstance(value, ModelOutput):
        return type(value)(**{key: expand_rows(item, index) for key, item in value.items()})
    if isinstance(value, tuple | list):
        return type(value)(expand_rows(item, index) for item in value)
    return value


class SharedEncoder:
    """Hooks on one encoder module: it encodes the distinct rows of its input batch and copies the results.

    The input batch is the first positional tensor argument, else the ``pixel_values`` keyword (how the
    vision towers are called). ``enabled`` turns the sharing off and on without removing the hooks;
    ``rows_seen`` and ``rows_encoded`` count input rows and rows actually encoded.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.enabled = True
        self.rows_seen = 0
        self.rows_encoded = 0
        self._plans: list[torch.Tensor | None] = []
        self._handles = [
            module.register_forward_pre_hook(self._before, with_kwargs=True),
            module.register_forward_hook(self._after, with_kwargs=True),
        ]

    def _before(self, module, args, kwargs):
        if args and isinstance(args[0], torch.Tensor):
            batch = args[0]
        elif isinstance(kwargs.get("pixel_values"), torch.Tensor):
            batch = kwargs["pixel_values"]
        else:
            self._plans.append(None)
            return None
        plan = distinct_rows(batch) if self.enabled else None
        self._plans.append(None if plan is None else plan[1])
        self.rows_seen += batch.shape[0]
        self.rows_encoded += batch.shape[0] if plan is None else plan[0].numel()
        if plan is None:
            return None
        unique = batch.index_select(0, plan[0])
        if args and args[0] is batch:
            return (unique, *args[1:]), kwargs
        return args, {**kwargs, "pixel_values": unique}

    def _after(self, module, args, kwargs, output):
        inverse = self._plans.pop()
        return None if inverse is None else expand_rows(output, inverse)

    def remove(self) -> None:
        """Remove the hooks: the module encodes every row again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def share_encoders(models: Iterable[nn.Module | None]) -> list[SharedEncoder]:
    """Hook every encoder (:data:`ENCODER_NAMES`) of ``models`` (Nones skipped, each module once)."""
    encoders: dict[int, SharedEncoder] = {}
    for model in models:
        if model is None:
            continue
        for name, module in model.named_modules():
            if name.rsplit(".", 1)[-1] in ENCODER_NAMES and id(module) not in encoders:
                encoders[id(module)] = SharedEncoder(module)
    return list(encoders.values())
