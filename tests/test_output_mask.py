"""The image-context token masked out of the vocabulary: sampling and trl's log-prob passes see one distribution."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from trl.trainer.utils import add_fused_lm_head

from tests.grpo_helpers import NUM_FRAMES
from tests.test_trainer import make_trainer
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.output_mask import MASKED_LOGIT, mask_output_tokens
from vqathinker.model.processor import prepare_inputs, tile_size
from vqathinker.training.configs import VQAModelConfig


def load(model_dir):
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(model_dir)).model_options()
    )
    return model.eval(), processor


def grey_batch(processor, completion: str = "<think>ok</think><answer>3.5</answer>"):
    """Input ids of one 4-frame quality prompt followed by ``completion``, and its frames."""
    from PIL import Image

    tile = tile_size(processor)
    frames = [[Image.new("RGB", (tile, tile), (90,) * 3)] * NUM_FRAMES]
    batch = prepare_inputs(processor, [build_conversation(QUALITY_QUESTION, NUM_FRAMES)], frames)
    completion_ids = processor.tokenizer(completion, add_special_tokens=False, return_tensors="pt").input_ids
    input_ids = torch.cat([batch["input_ids"], completion_ids], dim=1)
    return input_ids, batch["pixel_values"], completion_ids.shape[1]


def make_image_token_dominant(model, processor) -> int:
    """Give ``<IMG_CONTEXT>`` the output row of the most likely token, scaled: it becomes the likeliest token
    after every position, as GRPO's drift made it after some answer prefixes of the demo."""
    image_token = processor.image_token_id
    head = model.get_output_embeddings()
    with torch.no_grad():
        head.weight[image_token] = head.weight.mean(dim=0) + 50.0 * head.weight.std(dim=0)
    return image_token


def test_the_masked_token_gets_no_probability_and_the_rest_is_unchanged(tiny_model_dir):
    model, processor = load(tiny_model_dir)
    image_token = make_image_token_dominant(model, processor)
    input_ids, pixel_values, _ = grey_batch(processor)
    with torch.no_grad():
        before = model(input_ids=input_ids, pixel_values=pixel_values).logits
        mask_output_tokens(model, [image_token])
        after = model(input_ids=input_ids, pixel_values=pixel_values).logits
    assert before.softmax(-1)[0, -6:, image_token].median() > 0.9  # it dominated
    assert after.softmax(-1)[0, :, image_token].max() == 0.0
    others = torch.ones(before.shape[-1], dtype=torch.bool)
    others[image_token] = False
    torch.testing.assert_close(after[..., others], before[..., others])
    assert after[..., image_token].max() < MASKED_LOGIT / 2


def test_trl_fused_log_probs_are_those_of_the_vocabulary_without_the_token(tiny_model_dir):
    """trl scores completions with its fused head (``lm_head.weight`` and ``lm_head.bias``): with the mask its
    log-probs are the softmax over the other tokens, the distribution ``generate(suppress_tokens=...)`` samples."""
    model, processor = load(tiny_model_dir)
    image_token = make_image_token_dominant(model, processor)
    input_ids, pixel_values, length = grey_batch(processor)
    labels = input_ids.clone()
    labels[:, :-length] = -100
    with torch.no_grad():
        logits = model(input_ids=input_ids, pixel_values=pixel_values).logits[0, -length - 1 : -1]
    logits[:, image_token] = -torch.inf  # generate's suppress_tokens
    wanted = logits.log_softmax(-1).gather(-1, input_ids[0, -length:, None])[:, 0]
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    with torch.no_grad():
        unmasked = model(input_ids=input_ids, pixel_values=pixel_values, labels=labels, fused_lm_head=True)
        mask_output_tokens(model, [image_token])
        masked = model(input_ids=input_ids, pixel_values=pixel_values, labels=labels, fused_lm_head=True)
    # the unmasked head scores the tokens that generation would sample as improbable
    assert unmasked.log_probs[0, -length:].median() < -5
    torch.testing.assert_close(masked.log_probs[0, -length:], wanted, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(masked.entropy).all()


def test_the_mask_is_never_saved_and_can_be_replaced(tiny_model_dir, tmp_path):
    model, processor = load(tiny_model_dir)
    image_token = processor.image_token_id
    mask_output_tokens(model, [image_token])
    mask_output_tokens(model, [image_token, 0])  # replaced, not added to
    bias = model.get_output_embeddings().bias
    assert (bias == MASKED_LOGIT).nonzero().flatten().tolist() == sorted([0, image_token])
    assert not any(name.endswith("lm_head.bias") for name in model.state_dict())
    model.save_pretrained(tmp_path / "saved")
    processor.save_pretrained(tmp_path / "saved")
    reloaded, _ = load(tmp_path / "saved")
    assert reloaded.get_output_embeddings().bias is None


def test_refused_heads_and_ids(tiny_model_dir):
    model, processor = load(tiny_model_dir)
    vocab = model.get_output_embeddings().weight.shape[0]
    with pytest.raises(ValueError, match="outside the output vocabulary"):
        mask_output_tokens(model, [vocab])
    head = model.get_output_embeddings()
    head.bias = nn.Parameter(torch.zeros(vocab))
    with pytest.raises(ValueError, match="bias parameter of its own"):
        mask_output_tokens(model, [processor.image_token_id])


def test_the_trainer_masks_the_image_token_of_policy_and_reference(
    answering_model_dir, graded_videos, tmp_path
):
    trainer = make_trainer(answering_model_dir, graded_videos, tmp_path, beta=0.1)
    image_token = trainer.processing_class.image_token_id
    for model in (trainer.model, trainer.ref_model):
        bias = model.get_output_embeddings().bias
        assert (bias == MASKED_LOGIT).nonzero().flatten().tolist() == [image_token]
    assert not any(name.endswith("lm_head.bias") for name in trainer.model.state_dict())


def test_the_mask_stays_marked_whole_for_zero3_after_the_model_moves(tiny_model_dir):
    """trl gathers ``lm_head.weight`` and ``lm_head.bias`` under ZeRO-3 by their ``ds_status``; a cast or a move
    (as DeepSpeed's engine makes) replaces the buffer, and every forward marks the new one again."""
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    model, processor = load(tiny_model_dir)
    mask_output_tokens(model, [processor.image_token_id])
    model.double()
    bias = model.get_output_embeddings().bias
    assert bias.dtype == torch.float64 and not hasattr(bias, "ds_status")  # a new tensor
    input_ids, pixel_values, _ = grey_batch(processor)
    with torch.no_grad():
        model(input_ids=input_ids, pixel_values=pixel_values.double())
    assert model.get_output_embeddings().bias.ds_status == ZeroParamStatus.AVAILABLE
    hooks = len(model._forward_pre_hooks)
    mask_output_tokens(model, [processor.image_token_id])  # masking again adds no second hook
    assert len(model._forward_pre_hooks) == hooks
