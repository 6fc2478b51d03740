"""How the trainer orders its rows: resumable epoch shuffles, and micro-batches of whole GRPO groups."""

from __future__ import annotations

import contextlib

import torch
import trl.trainer.grpo_trainer as trl_grpo
from trl.trainer.utils import RepeatSampler


def shuffle_groups(batch: dict, group_size: int) -> dict:
    """trl's ``shuffle_sequence_dict`` moving whole groups: rows ``[k·G, (k+1)·G)`` stay together, in order.

    Values are permuted along their first dimension (tensors, lists); 0-dim tensors and None are kept.
    """
    size = len(next(v for v in batch.values() if isinstance(v, list) or (torch.is_tensor(v) and v.dim() > 0)))
    if size % group_size:
        raise ValueError(f"{size} rows are not whole groups of {group_size}")
    groups = torch.randperm(size // group_size)
    order = (groups[:, None] * group_size + torch.arange(group_size)).reshape(-1)

    def permute(value):
        if torch.is_tensor(value) and value.dim() > 0:
            return value[order.to(value.device)]
        if isinstance(value, list):
            return [value[i] for i in order.tolist()]
        return value

    return {key: permute(value) for key, value in batch.items()}


@contextlib.contextmanager
def shuffling_whole_groups(group_size: int):
    """Within it, trl's generation-batch shuffle (``shuffle_sequence_dict``) moves whole groups of rows.

    trl's ``GRPOTrainer._prepare_inputs`` shuffles the rows of a generation batch before cutting it into
    gradient-accumulation micro-batches. The trainer runs trl's method inside this context so that the G
    rollouts of a video stay together (see :func:`shuffle_groups`); outside it trl's function is untouched.
    """
    original = trl_grpo.shuffle_sequence_dict
    trl_grpo.shuffle_sequence_dict = lambda batch: shuffle_groups(batch, group_size)
    try:
        yield
    finally:
        trl_grpo.shuffle_sequence_dict = original


class EpochSeededRepeatSampler(RepeatSampler):
    """trl's ``RepeatSampler`` with each epoch's shuffle drawn from ``(seed, epoch)``.

    trl's sampler draws every epoch from one generator seeded once, which a resumed run recreates: resumed in
    epoch 2, it would replay epoch 1's order. The Trainer calls ``set_epoch`` before each epoch (also after a
    resume), so here the order depends only on the seed and the epoch. Epoch 0 is trl's order.
    """

    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed + self.epoch)
        return super().__iter__()
