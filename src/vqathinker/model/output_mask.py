"""Tokens a model may never write: a logit mask on its output embedding, for sampling and scoring alike.

trl samples rollouts with ``suppress_tokens`` (the image-context token: one more in a completion would break the
next forward), but scores them with the full vocabulary. The two distributions then differ, and the gap grows:
GRPO pushes sampled tokens down, the mass they lose spreads over the others, and a token that is never sampled
is never pushed back, so the suppressed one soaks it up. Measured on the CPU demo: after a few hundred steps the
model gives ``<IMG_CONTEXT>`` a probability near 1 after some answer prefixes; generation, which cannot pick it,
samples the remaining ~1e-12 of mass uniformly (garbage text), the log-prob passes score those tokens at about
-26, and the k3 KL estimate of such a row reaches 1e8, so that its gradient outweighs the whole batch's.

:func:`mask_output_tokens` gives the output embedding a bias that holds :data:`MASKED_LOGIT` at the masked ids
and 0 elsewhere: the model's forward (so ``generate``) and trl's fused log-prob head (which reads
``lm_head.bias``) both see the vocabulary without them, and sampled and scored distributions are the same. The
bias is a non-persistent buffer: checkpoints are unchanged and load without it. Before each forward it is
marked as a whole tensor for trl's ZeRO-3 gather of the head (``ds_status``), which would fail on a plain one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

MASKED_LOGIT = -1.0e4
"""Logit added at a masked token: exp() of it underflows to 0 in float32 and bfloat16 softmaxes, and it stays
finite, so entropies (p · log p) remain 0 rather than NaN."""


def _keep_marked_whole(model: nn.Module, head: nn.Linear) -> None:
    """Mark the bias buffer as a whole tensor for trl's ZeRO-3 gather of ``lm_head.weight`` and ``lm_head.bias``
    (which reads each tensor's DeepSpeed status; buffers are never partitioned), before every forward of
    ``model``: moving or casting the model replaces the buffer by a tensor without the mark."""
    try:
        from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus
    except ImportError:  # no DeepSpeed, no ZeRO-3 gather
        return
    if getattr(head, "_whole_bias_hook", None) is not None:
        return

    def mark(module, args):
        head.bias.ds_status = ZeroParamStatus.AVAILABLE

    head._whole_bias_hook = model.register_forward_pre_hook(mark)


def mask_output_tokens(model: nn.Module, token_ids: Sequence[int]) -> None:
    """Let ``model`` never write ``token_ids``: its output embedding gets a bias of :data:`MASKED_LOGIT` there.

    Calling it again replaces the mask. Raises ``ValueError`` for an output embedding that is not a linear
    layer, that has a bias of its own (a trained parameter), or for ids outside its vocabulary.
    """
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear):
        raise ValueError(f"cannot mask output tokens of a {type(head).__name__} output embedding")
    if "bias" in head._parameters and head._parameters["bias"] is not None:
        raise ValueError("the output embedding has a bias parameter of its own: cannot add a token mask")
    vocab = getattr(head.weight, "ds_shape", head.weight.shape)[0]  # ZeRO-3 partitions the weight itself
    ids = sorted(set(int(i) for i in token_ids))
    if any(not 0 <= i < vocab for i in ids):
        raise ValueError(f"token ids {ids} outside the output vocabulary (size {vocab})")
    bias = torch.zeros(vocab, dtype=head.weight.dtype, device=head.weight.device)
    bias[ids] = MASKED_LOGIT
    head._parameters.pop("bias", None)
    head.register_buffer("bias", bias, persistent=False)
    _keep_marked_whole(model, head)
