"""Builders for the shared-prompt exactness tests: fixed rollouts, and one GRPO micro-step run both ways.

The rollouts are fixed (a stand-in for ``_generate_single_turn`` answers each row with its own completion of
its own length), so the shared and the unshared run see the same rows; everything after generation is trl's
and ours for real: rewards, advantages, the old-policy and reference passes, the loss and its backward.
"""

from __future__ import annotations

import torch
from datasets import Dataset

from tests.grpo_helpers import NUM_FRAMES, cpu_grpo_args
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.model.loading import load_model_and_processor
from vqathinker.training.configs import VQAModelConfig
from vqathinker.training.trainer import VQAGRPOTrainer

# Questions of different lengths: rows of one micro-batch are left-padded to the longest prompt.
QUESTIONS = (QUALITY_QUESTION, "Rate it.", QUALITY_QUESTION + " Be precise about blur and noise.", "Score?")
TOLERANCE = 1e-5


def varied_dataset(videos) -> Dataset:
    """One row per video, each with another question (prompt length)."""
    return Dataset.from_list(
        [
            {
                "prompt": build_conversation(QUESTIONS[i % len(QUESTIONS)], NUM_FRAMES),
                "mos": mos,
                "video": path,
                "id": str(i),
            }
            for i, (path, mos) in enumerate(videos)
        ]
    )


def completion_texts(count: int) -> list[str]:
    """Answers of different lengths and scores (rewards, hence advantages, differ within a group)."""
    return [
        "<think>" + "ok " * (1 + (3 * i) % 7) + f"</think><answer>{1.2 + 0.37 * i:.2f}</answer><|im_end|>"
        for i in range(count)
    ]


def fixed_rollouts(trainer: VQAGRPOTrainer):
    """A ``_generate_single_turn`` answering row i with ``completion_texts()[i]``: the same in both runs."""
    tokenizer = trainer.processing_class.tokenizer

    def generate(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        texts = completion_texts(len(prompt_ids))
        return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], None

    return generate


def build_trainer(model_dir, videos, tmp_path, model_options=None, peft=False, **overrides) -> VQAGRPOTrainer:
    options = dict(model_name_or_path=str(model_dir), dtype="float32", **(model_options or {}))
    if peft:
        options.update(use_peft=True, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    model, processor = load_model_and_processor(VQAModelConfig(**options).model_options())
    if peft:  # LoRA B starts at zero: give the adapters an effect, so that the reference differs
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    settings = dict(max_completion_length=32, max_steps=1, seed=0, beta=0.04, logging_steps=1)
    args = cpu_grpo_args(tmp_path / "out", **{**settings, **overrides})
    trainer = VQAGRPOTrainer(model, args, varied_dataset(videos), processor)
    # The policy moves away from the reference (which holds the loaded weights), so that the KL term counts.
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for name, parameter in trainer.model.named_parameters():
            if parameter.requires_grad and "language_model" in name:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.03)
    if args.activation_checkpointing:  # what Trainer.train does first
        trainer.model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=args.activation_checkpointing_kwargs
        )
    trainer._generate_single_turn = fixed_rollouts(trainer)
    return trainer


class PositionCounter:
    """Counts the token positions (batch × length) the language model's decoder reads."""

    def __init__(self, trainer: VQAGRPOTrainer):
        self.positions = 0
        models = [trainer.model] + ([trainer.ref_model] if trainer.ref_model is not None else [])
        decoders = [
            m
            for model in models
            for m in model.modules()
            if hasattr(m, "layers") and hasattr(m, "embed_tokens")
        ]
        self.handles = [d.register_forward_pre_hook(self._count, with_kwargs=True) for d in decoders]

    def _count(self, module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        x = kwargs["input_ids"] if x is None else x
        self.positions += x.shape[0] * x.shape[1]

    def remove(self):
        for handle in self.handles:
            handle.remove()


def run_micro_step(trainer: VQAGRPOTrainer, shared: bool) -> dict:
    """Generation batch → micro-batch 0 → loss and gradients, with ``shared_prompt`` set to ``shared``.

    Returns the micro-batch's inputs (old-policy and reference log-probs included), the policy's per-token
    log-probs and entropies, the loss, every gradient and the language-model positions read.
    """
    trainer.args.shared_prompt = shared
    trainer._buffered_inputs, trainer._step = None, 0
    trainer.model.train()
    counter = PositionCounter(trainer)
    try:
        torch.manual_seed(0)  # the group shuffle of _prepare_inputs
        inputs = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
        trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        with torch.no_grad():
            logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
                trainer.model,
                input_ids,
                mask,
                inputs["completion_ids"].shape[1],
                compute_entropy=True,
                pixel_values=inputs.get("pixel_values"),
                num_images=inputs.get("num_images"),
            )
    finally:
        counter.remove()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return {
        "inputs": inputs,
        "logps": logps,
        "entropies": entropies,
        "loss": loss.detach(),
        "grads": grads,
        "positions": counter.positions,
    }


def assert_same_step(shared: dict, unshared: dict, tolerance: float = TOLERANCE) -> None:
    """Every compared value within ``tolerance``; the comparison is of real values (non-zero, not all equal)."""
    for key in ("prompt_ids", "completion_ids", "completion_mask", "advantages"):
        torch.testing.assert_close(shared["inputs"][key], unshared["inputs"][key], atol=0, rtol=0, msg=key)
    assert unshared["inputs"]["advantages"].abs().sum() > 0, "all advantages are zero: nothing is compared"
    mask = unshared["inputs"]["completion_mask"].bool()
    assert unshared["logps"][mask].abs().min() > 0 and bool((unshared["logps"][~mask] == 0).all())
    for key in ("old_per_token_logps", "ref_per_token_logps", "importance_sampling_ratio"):
        if unshared["inputs"].get(key) is not None:
            assert shared["inputs"].get(key) is not None, key
            torch.testing.assert_close(
                shared["inputs"][key], unshared["inputs"][key], atol=tolerance, rtol=0, msg=key
            )
    for key in ("logps", "entropies", "loss"):
        torch.testing.assert_close(shared[key], unshared[key], atol=tolerance, rtol=0, msg=key)
    assert shared["grads"].keys() == unshared["grads"].keys() and unshared["grads"]
    for name, grad in unshared["grads"].items():
        torch.testing.assert_close(shared["grads"][name], grad, atol=tolerance, rtol=0, msg=name)
    assert any(g.abs().sum() > 0 for g in unshared["grads"].values())
