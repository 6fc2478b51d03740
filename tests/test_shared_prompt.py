"""shared_prompt: the G rollouts of a prompt share one language-model pass over it, exactly (fp32, tiny models).

Each case runs one GRPO micro-step twice on the same fixed rollouts, shared and unshared (trl's path), and
compares old-policy / reference log-probs, the policy's per-token log-probs and entropies, the loss and every
gradient (vision tower and projector included) to 1e-5, and checks that the shared run read fewer positions.
"""

from __future__ import annotations

import logging

import pytest
import torch

from tests.shared_prompt_helpers import assert_same_step, build_trainer, completion_texts, run_micro_step
from vqathinker.model import shared_prompt
from vqathinker.model.shared_prompt import pack_rows, shared_prompt_log_probs

NATIVE, REMOTE = "native", "remote"


def check_case(trainer) -> tuple[dict, dict]:
    shared = run_micro_step(trainer, shared=True)
    unshared = run_micro_step(trainer, shared=False)
    assert_same_step(shared, unshared)
    assert shared["positions"] < unshared["positions"]
    return shared, unshared


CASES = {
    # name: (checkpoint, model options, peft, trainer overrides)
    "native": (NATIVE, None, False, {}),
    "native-eager": (NATIVE, {"attn_implementation": "eager"}, False, {}),
    "remote": (REMOTE, None, False, {}),
    "native-motion": (NATIVE, {"use_motion": True, "motion_width": 8}, False, {}),
    "remote-motion": (REMOTE, {"use_motion": True, "motion_width": 8}, False, {}),
    "lora": (NATIVE, None, True, {}),
    "beta0": (NATIVE, None, False, {"beta": 0.0}),
    "num-iterations-2": (NATIVE, None, False, {"num_iterations": 2}),
    "dapo": (NATIVE, None, False, {"loss_type": "dapo"}),
    "dr-grpo": (NATIVE, None, False, {"loss_type": "dr_grpo"}),
    "bnpo": (NATIVE, None, False, {"loss_type": "bnpo"}),
    # 2 videos × G = 4 rollouts in micro-batches (and reference chunks) of 2 rows: half a group each
    "group-larger-than-batch": (
        NATIVE,
        None,
        False,
        {"num_generations": 4, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4},
    ),
    "checkpointing": (NATIVE, None, False, {"gradient_checkpointing": True}),
    "checkpointing-reentrant": (
        NATIVE,
        None,
        False,
        {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": True}},
    ),
    "remote-checkpointing-reentrant": (
        REMOTE,
        None,
        False,
        {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": True}},
    ),
    "lora-checkpointing-reentrant": (
        NATIVE,
        None,
        True,
        {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": True}},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_shared_prompt_equals_the_unshared_path(
    case, tiny_model_dir, remote_checkpoint_dir, graded_videos, tmp_path
):
    checkpoint, model_options, peft, overrides = CASES[case]
    model_dir = tiny_model_dir if checkpoint == NATIVE else remote_checkpoint_dir
    trainer = build_trainer(model_dir, graded_videos, tmp_path, model_options, peft=peft, **overrides)
    if overrides.get("gradient_checkpointing"):
        reentrant = overrides.get("gradient_checkpointing_kwargs", {}).get("use_reentrant", False)
        layers = [m for m in trainer.model.modules() if type(m).__name__ == "Qwen2DecoderLayer"]
        assert layers and all(layer.gradient_checkpointing for layer in layers)
        assert all(
            layer._gradient_checkpointing_func.keywords["use_reentrant"] is reentrant for layer in layers
        )
    shared, unshared = check_case(trainer)
    inputs = unshared["inputs"]
    if overrides.get("num_iterations", 1) > 1:
        assert inputs.get("old_per_token_logps") is not None
    if trainer.beta:
        assert inputs.get("ref_per_token_logps") is not None
        assert unshared["loss"].abs() > 1e-4  # the KL term (advantages of a group of 2 cancel in the mean)
    if peft:
        assert trainer.ref_model is None  # the reference is the base model, adapters disabled
        assert not torch.allclose(inputs["ref_per_token_logps"], unshared["logps"], atol=1e-4)
    if case.startswith("group-larger"):
        rows = inputs["prompt_ids"]
        assert rows.shape[0] == 2 and torch.equal(rows[0], rows[1])  # half a group in this micro-batch
    else:
        assert bool((inputs["prompt_mask"][:, 0] == 0).any()), "no left padding: prompts of one length"


def test_pack_rows_layout():
    """Two rows sharing a left-padded prompt [pad, 7, 8, 9] + completions [1, 2] and [3, 0(pad)]."""
    input_ids = torch.tensor([[0, 7, 8, 9, 1, 2], [0, 7, 8, 9, 3, 0]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 0]])
    packed = pack_rows(input_ids, mask, 2, [[0, 1]], pad_token_id=0)
    assert packed.input_ids.tolist() == [[7, 8, 9, 1, 2, 9, 3]]
    assert packed.position_ids.tolist() == [[1, 2, 3, 4, 5, 3, 4]]  # the unshared columns, padding included
    assert packed.labels.tolist() == [[-100, -100, -100, 1, 2, -100, 3]]
    assert packed.segments.tolist() == [[0, 0, 1, 1, 1, 2, 2]]
    assert packed.index.tolist() == [[2, 3], [5, -1]]  # shifted: position t scores the token at t + 1
    allowed = packed.attention_mask("sdpa", torch.float32)[0, 0].int().tolist()
    assert allowed[6] == [1, 1, 0, 0, 0, 1, 1]  # row 2's token sees the prompt and its own block only
    assert allowed[4] == [1, 1, 1, 1, 1, 0, 0]
    eager = packed.attention_mask("eager", torch.float32)[0, 0]
    assert eager[6, 2] == torch.finfo(torch.float32).min and eager[6, 5] == 0


def test_fallbacks_are_logged_once_and_return_none(caplog):
    input_ids = torch.tensor([[0, 7, 8, 9, 1, 2], [0, 7, 8, 9, 3, 0]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 0]])
    calls = []
    settings = dict(dtype=torch.float32, pad_token_id=0, image_token_id=5)

    def forward(**inputs):
        calls.append(inputs)

    shared_prompt._reported.clear()
    with caplog.at_level(logging.WARNING, logger=shared_prompt.__name__):
        for _ in range(2):
            assert (
                shared_prompt_log_probs(
                    forward, input_ids, mask, 2, attn_implementation="flash_attention_2", **settings
                )
                is None
            )
        image_in_completion = input_ids.clone()
        image_in_completion[0, 4] = 5
        assert (
            shared_prompt_log_probs(
                forward, image_in_completion, mask, 2, attn_implementation="sdpa", **settings
            )
            is None
        )
        holes = mask.clone()
        holes[0, 2] = 0
        assert (
            shared_prompt_log_probs(forward, input_ids, holes, 2, attn_implementation="sdpa", **settings)
            is None
        )
        assert (
            shared_prompt_log_probs(
                forward,
                input_ids,
                mask,
                2,
                attn_implementation="sdpa",
                unsupported=["image_grid_thw"],
                **settings,
            )
            is None
        )
        # nothing shared: silently unshared
        distinct = input_ids.clone()
        distinct[1, 2] = 4
        assert (
            shared_prompt_log_probs(forward, distinct, mask, 2, attn_implementation="sdpa", **settings)
            is None
        )
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4 and not calls
    assert "flash_attention_2" in messages[0] and "image placeholder" in messages[1]
    assert "left-padded" in messages[2] and "image_grid_thw" in messages[3]


class RecordingVLLM:
    """Stands in for trl's vLLM backend (as in tests/test_vllm_rollouts.py): fixed completions, own log-probs."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def sync_weights(self):
        pass

    def generate(self, prompts, images, num_generations, profiler=None):
        texts = completion_texts(len(prompts))
        completions = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        logprobs = [[[-0.4 - 0.01 * (i % 5)] for i in range(len(ids))] for ids in completions]
        return prompts, completions, logprobs, None


def test_vllm_importance_sampling_equals_the_unshared_path(tiny_model_dir, graded_videos, tmp_path):
    """vLLM rollouts: the old-policy pass feeds the importance-sampling ratio; shared and unshared agree."""
    trainer = build_trainer(tiny_model_dir, graded_videos, tmp_path)
    del trainer._generate_single_turn  # our override, with trl's vLLM path behind it
    trainer.use_vllm, trainer._last_loaded_step = True, -1
    trainer.vllm_generation = RecordingVLLM(trainer.processing_class.tokenizer)
    assert trainer.vllm_importance_sampling_correction
    shared, unshared = check_case(trainer)
    ratio = unshared["inputs"]["importance_sampling_ratio"]
    assert shared["inputs"]["importance_sampling_ratio"] is not None and not torch.allclose(
        ratio, torch.ones_like(ratio)
    )
