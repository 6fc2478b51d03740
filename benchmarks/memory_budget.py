"""Per-GPU memory budget of a GRPO run on InternVL3, ZeRO-2 beside ZeRO-3, computed on paper.

Parameter counts come from the real module tree (InternVL3-1B/2B/8B built on the ``meta`` device, no
weights); everything else is the standard accounting of mixed-precision DeepSpeed training (ZeRO paper:
2 bytes bf16 weights, 2 bytes bf16 gradients, 12 bytes fp32 master weights + Adam moments per trainable
parameter) plus the activation, logits and KV-cache tensors that one GRPO step of trl 1.16 holds. It measures
nothing on a GPU: it says what must fit, so that a run can be sized before a node is booked.

    python benchmarks/memory_budget.py                      # the reference: 8B, 8×80 GB, 8 × G=4, 6 frames
    python benchmarks/memory_budget.py --size 2B --gpus 4 --max-completion-length 1024

Assumptions (each a flag): ``per_device_train_batch_size`` counts completions (trl ≥ 0.14), so 8 per device
with G=4 is 2 videos × 4 rollouts per micro-batch; one generation call covers ``gradient_accumulation_steps``
micro-batches (trl's ``steps_per_generation`` default); gradient checkpointing on both towers; attention by
sdpa / flash-attention (no L×L score matrix kept); the reference model (beta > 0) is a bf16 copy, replicated
under ZeRO-2 and partitioned under ZeRO-3; under ZeRO-3 trl gathers the whole policy for generation
(``ds3_gather_for_generation``, its default).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from vqathinker.model.shapes import count_parameters, internvl3_config, meta_internvl3

GIB = 1024**3
BF16 = 2
FP32 = 4


@dataclass
class RunShape:
    """What one GRPO step holds, in tokens and sequences (per GPU)."""

    per_device_batch: int
    grad_accum: int
    num_generations: int
    frames: int
    prompt_text_tokens: int
    completion_tokens: int
    shared_vision: bool
    shared_prompt: bool = False

    @property
    def image_tokens(self) -> int:
        return self.frames * 256

    @property
    def prompt_tokens(self) -> int:
        return self.image_tokens + self.prompt_text_tokens

    @property
    def seq_len(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def lm_tokens(self, rows: int) -> int:
        """Token positions the language model reads for ``rows`` rollouts (whole groups where they fit).

        Unshared: every row is prompt + completion. ``shared_prompt``: each video's prompt once, and per row
        its completion plus the repeated last prompt token (the packed layout).
        """
        if not self.shared_prompt:
            return rows * self.seq_len
        videos = -(-rows // self.num_generations)
        return videos * (self.prompt_tokens - 1) + rows * (self.completion_tokens + 1)

    @property
    def vision_tiles(self) -> int:
        """Tiles through the vision tower in one training micro-batch."""
        rows = self.per_device_batch
        if self.shared_vision:
            rows = -(-rows // self.num_generations)  # unique videos of the micro-batch
        return rows * self.frames


def budget(size: str, zero_stage: int, gpus: int, shape: RunShape, beta: float, train_vision: bool) -> dict:
    """Bytes per GPU of each part of the step for one ZeRO stage, by phase.

    Returns ``{"persistent": {...}, "generation": {...}, "training": {...}}``: model states stay for the
    whole run, the generation tensors are freed before the loss pass allocates its own.
    """
    config = internvl3_config(size)
    counts = count_parameters(meta_internvl3(size))
    total = counts["total"]
    trainable = total if train_vision else total - counts["vision_tower"]
    text, vision = config.text_config, config.vision_config
    head_dim = text.hidden_size // text.num_attention_heads
    shard = gpus if zero_stage == 3 else 1

    persistent = {
        "weights (bf16)": BF16 * total / shard,
        "gradients (bf16)": BF16 * trainable / gpus,
        "fp32 master + Adam m, v": 3 * FP32 * trainable / gpus,
        "reference model (bf16)": BF16 * total / shard if beta > 0 else 0.0,
    }

    # Generation: the KV cache of every rollout of one generation batch (GQA: few kv heads), and under
    # ZeRO-3 the rest of the policy gathered onto each GPU.
    gen_rows = shape.per_device_batch * shape.grad_accum
    kv_per_token = text.num_hidden_layers * 2 * text.num_key_value_heads * head_dim * BF16
    generation = {
        "ZeRO-3 gather for generation": BF16 * total * (1 - 1 / gpus) if zero_stage == 3 else 0.0,
        # shared_prompt (transformers' generate): each video's prompt cached once
        "KV cache": shape.lm_tokens(gen_rows) * kv_per_token,
    }

    # Training micro-batch, gradient checkpointing: each layer's input is kept, one layer is recomputed.
    tokens = shape.lm_tokens(shape.per_device_batch)
    rows = shape.per_device_batch
    llm_checkpoints = text.num_hidden_layers * tokens * text.hidden_size * BF16
    llm_layer_peak = tokens * (4 * text.hidden_size + 3 * text.intermediate_size) * BF16
    vit_tokens = (vision.image_size[0] // vision.patch_size[0]) * (
        vision.image_size[1] // vision.patch_size[1]
    ) + 1
    # A frozen vision tower keeps no graph: only the layer being computed is alive.
    vit_layers_kept = vision.num_hidden_layers if train_vision else 0
    vit_checkpoints = vit_layers_kept * shape.vision_tiles * vit_tokens * vision.hidden_size * BF16
    vit_layer_peak = (
        shape.vision_tiles * vit_tokens * (4 * vision.hidden_size + 2 * vision.intermediate_size) * BF16
    )
    training = {
        "LLM activations (checkpointed)": llm_checkpoints + llm_layer_peak,
        # trl keeps only the completion logits (logits_to_keep); their gradient has the same size.
        "completion logits + grad": 2 * rows * shape.completion_tokens * text.vocab_size * BF16,
        "vision activations (checkpointed)": vit_checkpoints + vit_layer_peak,
    }
    return {"persistent": persistent, "generation": generation, "training": training}


def lm_pass_cost(size: str, shape: RunShape, rows: int) -> dict:
    """FLOPs of one forward pass of the language model over ``rows`` rollouts, and its checkpointed activations.

    FLOPs: 2 per weight and token for the linear layers, 4 × attention width per (query, key) pair for the
    scores and the weighted sum (the keys each query may see: causal over prompt + completion unshared; the
    prompt causally once, each completion over the prompt and itself shared), and the LM head on the
    completion tokens only (trl scores those). The dense block-mask kernel computes some masked pairs too;
    they are not counted. Activations: the checkpointed layer inputs plus one recomputed layer, as in
    :func:`budget`.
    """
    text = internvl3_config(size).text_config
    head_dim = text.hidden_size // text.num_attention_heads
    kv_width = text.num_key_value_heads * head_dim
    layer_weights = (
        2 * text.hidden_size * text.hidden_size
        + 2 * text.hidden_size * kv_width
        + 3 * text.hidden_size * text.intermediate_size
    )
    prompt, completion = shape.prompt_tokens, shape.completion_tokens
    videos = -(-rows // shape.num_generations)
    if shape.shared_prompt:
        body, block = prompt - 1, completion + 1
        pairs = videos * body * (body + 1) // 2 + rows * (block * body + block * (block + 1) // 2)
    else:
        pairs = rows * shape.seq_len * (shape.seq_len + 1) // 2
    tokens = shape.lm_tokens(rows)
    flops = (
        text.num_hidden_layers
        * (2 * layer_weights * tokens + 4 * text.num_attention_heads * head_dim * pairs)
        + 2 * text.hidden_size * text.vocab_size * rows * completion
    )
    activations = (
        text.num_hidden_layers * tokens * text.hidden_size
        + tokens * (4 * text.hidden_size + 3 * text.intermediate_size)
    ) * BF16
    return {"tokens": tokens, "flops": flops, "activations": activations}


def shared_prompt_table(size: str, shape: RunShape, groups=(4, 8)) -> list[str]:
    """Markdown rows: per G, the language model's tokens, FLOPs per pass and activations, full vs shared."""
    lines = [
        f"| G | LM tokens per {shape.per_device_batch} rollouts full | shared | TFLOPs per pass full | shared | × "
        "| checkpointed activations GiB full | shared | × |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for group in groups:
        full, shared = (
            lm_pass_cost(
                size, replace(shape, num_generations=group, shared_prompt=flag), shape.per_device_batch
            )
            for flag in (False, True)
        )
        lines.append(
            f"| {group} | {full['tokens']} | {shared['tokens']} | {full['flops'] / 1e12:.1f} "
            f"| {shared['flops'] / 1e12:.1f} | {full['flops'] / shared['flops']:.2f} "
            f"| {full['activations'] / GIB:.2f} | {shared['activations'] / GIB:.2f} "
            f"| {full['activations'] / shared['activations']:.2f} |"
        )
    return lines


def peak(phases: dict) -> float:
    """Peak bytes: model states plus the larger of the generation and the training phase."""
    return sum(phases["persistent"].values()) + max(
        sum(phases["generation"].values()), sum(phases["training"].values())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8B", choices=["1B", "2B", "8B"])
    parser.add_argument("--gpus", type=int, default=8, help="GPUs in the run (data parallel)")
    parser.add_argument("--gpu-memory-gib", type=float, default=80.0)
    parser.add_argument("--per-device-batch", type=int, default=8, help="completions per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=2)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument(
        "--prompt-text-tokens", type=int, default=150, help="template + question + frame labels"
    )
    parser.add_argument("--max-completion-length", type=int, default=2048)
    parser.add_argument("--beta", type=float, default=0.04, help="KL weight; > 0 keeps a reference model")
    parser.add_argument("--freeze-vision", action="store_true", help="the vision tower does not train")
    parser.add_argument(
        "--no-shared-vision", action="store_true", help="vision tower on all G copies (plain trl)"
    )
    parser.add_argument(
        "--no-shared-prompt", action="store_true", help="the language model reads every copy of the prompt"
    )
    args = parser.parse_args(argv)

    shape = RunShape(
        per_device_batch=args.per_device_batch,
        grad_accum=args.grad_accum,
        num_generations=args.num_generations,
        frames=args.frames,
        prompt_text_tokens=args.prompt_text_tokens,
        completion_tokens=args.max_completion_length,
        shared_vision=not args.no_shared_vision,
        shared_prompt=not args.no_shared_prompt,
    )
    stages = {
        stage: budget(args.size, stage, args.gpus, shape, args.beta, not args.freeze_vision)
        for stage in (2, 3)
    }
    print(
        f"InternVL3-{args.size} GRPO, {args.gpus} GPUs × {args.gpu_memory_gib:g} GiB; micro-batch "
        f"{shape.per_device_batch} completions (G={shape.num_generations}), {shape.frames} frames, sequence "
        f"{shape.seq_len} tokens ({shape.image_tokens} image + {shape.prompt_text_tokens} text + "
        f"{shape.completion_tokens} completion), beta={args.beta:g}"
    )
    names = [(phase, name) for phase, parts in stages[2].items() for name in parts]
    peak_label = "peak = persistent + max(generation, training)"
    width = max(len(peak_label), *(len(f"{phase}: {name}") for phase, name in names))
    print(f"\n| {'GiB per GPU'.ljust(width)} | ZeRO-2 | ZeRO-3 |")
    print(f"|{'-' * (width + 2)}|-------:|-------:|")
    for phase, name in names:
        label = f"{phase}: {name}".ljust(width)
        print(f"| {label} | {stages[2][phase][name] / GIB:6.1f} | {stages[3][phase][name] / GIB:6.1f} |")
    peaks = {stage: peak(phases) / GIB for stage, phases in stages.items()}
    print(
        f"| {'peak = persistent + max(generation, training)'.ljust(width)} | {peaks[2]:6.1f} | {peaks[3]:6.1f} |"
    )
    headroom = {stage: args.gpu_memory_gib - value for stage, value in peaks.items()}
    print(f"| {'headroom'.ljust(width)} | {headroom[2]:6.1f} | {headroom[3]:6.1f} |")
    print(f"| {'ratio of peaks ZeRO-3 / ZeRO-2'.ljust(width)} | {'':6} | {peaks[3] / peaks[2]:6.2f} |")
    print(
        f"\nshared_prompt, one language-model pass over {shape.per_device_batch} rollouts (prompt "
        f"{shape.prompt_tokens} tokens, completion {shape.completion_tokens}):\n"
    )
    print("\n".join(shared_prompt_table(args.size, shape)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
