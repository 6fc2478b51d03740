"""The private trl / transformers methods vqathinker overrides, calls or replaces, pinned by signature.

An upgrade of trl or transformers that renames or reshapes one of them fails here, at once and in one place,
instead of deep inside a training step. docs/architecture.md ("Private methods we depend on") says why each
one is touched; update both together.
"""

from __future__ import annotations

import inspect

import pytest
import transformers.conversion_mapping as conversion_mapping
import trl.trainer.grpo_trainer as trl_grpo
from transformers import Trainer
from transformers.generation.utils import GenerationMixin
from transformers.processing_utils import ProcessorMixin
from trl.trainer.utils import RepeatSampler

GRPOTrainer = trl_grpo.GRPOTrainer

CONTRACT = [
    (GRPOTrainer._prepare_inputs, ["self", "generation_batch"]),
    (
        GRPOTrainer._generate_single_turn,
        ["self", "prompt_ids", "images", "multimodal_fields", "num_generations", "has_tool_images"],
    ),
    (GRPOTrainer._generate_and_score_completions, ["self", "inputs"]),
    (GRPOTrainer._get_train_sampler, ["self", "dataset"]),
    (GRPOTrainer._calculate_rewards, ["self", "inputs", "prompts", "completions", "completion_ids_list"]),
    (GRPOTrainer._tokenize_prompts, ["self", "prompts"]),
    (Trainer._load_from_checkpoint, ["self", "resume_from_checkpoint", "model"]),
    (trl_grpo.shuffle_sequence_dict, ["seq_dict"]),
    (trl_grpo.create_model_from_path, ["model_id", "architecture", "kwargs"]),
    (ProcessorMixin._process_images, ["self", "images", "kwargs"]),
    (
        RepeatSampler.__init__,
        ["self", "data_source", "mini_repeat_count", "batch_size", "repeat_count", "shuffle", "seed"],
    ),
    (
        GRPOTrainer._get_per_token_logps_and_entropies,
        [
            "self",
            "model",
            "input_ids",
            "attention_mask",
            "logits_to_keep",
            "batch_size",
            "compute_entropy",
            "compute_aux_loss",
            "pixel_values",
            "image_grid_thw",
            "num_images",
            "pixel_attention_mask",
            "spatial_shapes",
            "num_tiles",
            "image_sizes",
            "token_type_ids",
            "mm_token_type_ids",
            "image_position_ids",
        ],
    ),
    (GenerationMixin._prepare_generation_config, ["self", "generation_config", "kwargs"]),
    (
        GenerationMixin._prepare_special_tokens,
        ["self", "generation_config", "kwargs_has_attention_mask", "device", "batch_size"],
    ),
    (
        GenerationMixin._get_logits_processor,
        [
            "self",
            "generation_config",
            "input_ids_seq_length",
            "encoder_input_ids",
            "prefix_allowed_tokens_fn",
            "logits_processor",
            "device",
            "model_kwargs",
            "negative_prompt_ids",
            "negative_prompt_attention_mask",
        ],
    ),
    (conversion_mapping.get_checkpoint_conversion_mapping, ["model_type"]),
    (
        conversion_mapping.register_checkpoint_conversion_mapping,
        ["model_type_or_class_name", "mapping", "overwrite"],
    ),
]


@pytest.mark.parametrize("function, expected", CONTRACT, ids=[f.__qualname__ for f, _ in CONTRACT])
def test_private_signature_is_the_one_we_build_on(function, expected):
    found = list(inspect.signature(function).parameters)
    assert found == expected, (
        f"{function.__module__}.{function.__qualname__} now takes {found}, vqathinker was written against "
        f"{expected}: review its override in vqathinker (docs/architecture.md, 'Private methods we depend on')"
    )


@pytest.mark.parametrize("attribute", ["_metrics", "_pending_extra_logs", "_pending_metrics"])
def test_private_attributes_we_read_are_set_by_grpo_trainer_init(attribute):
    assert f"self.{attribute} =" in inspect.getsource(GRPOTrainer.__init__), (
        f"trl's GRPOTrainer no longer sets {attribute}: the trainer's temporal-consistency pass reads it"
    )


def test_the_module_functions_we_replace_are_looked_up_at_call_time():
    # shuffling_whole_groups / reference_from_policy swap these module globals: trl must call them by name.
    prepare = inspect.getsource(GRPOTrainer._prepare_inputs)
    assert "shuffle_sequence_dict(" in prepare
    assert "create_model_from_path(" in inspect.getsource(GRPOTrainer.__init__)
