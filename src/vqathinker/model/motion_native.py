"""The motion branch for HF-format checkpoints: ``InternVLForConditionalGeneration`` with a motion token.

The trunk and projector are the ones of :mod:`vqathinker.model.motion`, under the same names as in the
remote-code model (``slowfast_model``, ``motion_mlp``).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, InternVLForConditionalGeneration
from transformers.conversion_mapping import (
    get_checkpoint_conversion_mapping,
    register_checkpoint_conversion_mapping,
)
from transformers.models.internvl.modeling_internvl import (
    InternVLModel,
    InternVLMultiModalProjector,
    InternVLPreTrainedModel,
)

from vqathinker.model.motion import MOTION_TOKEN, add_motion_modules, embed_with_motion, restore_prompt


class InternVLMotionModel(InternVLModel):
    """``InternVLModel`` plus the motion branch (``config.use_motion``, ``motion_width``, ``motion_token_id``).

    Without a motion token in ``input_ids`` it is ``InternVLModel``; with one, the token embeddings are built
    here (frames and motion) and the language model runs on them.
    """

    def __init__(self, config):
        InternVLPreTrainedModel.__init__(self, config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = InternVLMultiModalProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        if getattr(config, "use_motion", False):
            add_motion_modules(self, config)
        self.post_init()

    def forward(self, input_ids=None, pixel_values=None, inputs_embeds=None, **kwargs):
        motion_token_id = getattr(self.config, "motion_token_id", None)
        if input_ids is None or motion_token_id is None or not bool((input_ids == motion_token_id).any()):
            return super().forward(
                input_ids=input_ids, pixel_values=pixel_values, inputs_embeds=inputs_embeds, **kwargs
            )
        if not getattr(self.config, "use_motion", False):
            raise ValueError(f"the prompt has a {MOTION_TOKEN} token but the model has no motion branch")
        embeds = self.multimodal_embeddings(input_ids, pixel_values)
        return super().forward(inputs_embeds=embeds, **kwargs)

    def multimodal_embeddings(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None):
        """Embeddings of ``input_ids`` with the frame features and motion embeddings in place."""
        image_mask = input_ids == self.config.image_token_id
        embeds = embed_with_motion(
            self,
            input_ids,
            self.get_input_embeddings(),
            self.config.motion_token_id,
            pixel_values,
            image_mask,
            self.config.image_seq_length,
        )
        if pixel_values is not None:
            features = self.get_image_features(pixel_values=pixel_values, return_dict=True).pooler_output
            features = features.to(embeds.device, embeds.dtype)
            if int(image_mask.sum()) != features.shape[0] * features.shape[1]:
                raise ValueError(
                    f"Image features and image tokens do not match, tokens: {int(image_mask.sum())}, "
                    f"features: {features.shape[0] * features.shape[1]}"
                )
            embeds = embeds.masked_scatter(image_mask.unsqueeze(-1), features)
        return embeds


# Checkpoints of InternVLModel are stored with renamed keys; the subclass loads and saves them the same way.
register_checkpoint_conversion_mapping(
    InternVLMotionModel.__name__, get_checkpoint_conversion_mapping(InternVLModel.__name__), overwrite=True
)


class InternVLMotionForConditionalGeneration(InternVLForConditionalGeneration):
    """``InternVLForConditionalGeneration`` whose ``model`` is :class:`InternVLMotionModel`.

    ``generate`` with motion tokens embeds the prompt once and decodes from the embeddings, so the motion
    token id (outside the vocabulary) never reaches the logits processors; the returned sequences still
    start with the caller's ``input_ids``.
    """

    def __init__(self, config):
        InternVLPreTrainedModel.__init__(self, config)
        self.model = InternVLMotionModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def forward(self, *args, labels=None, **kwargs):
        motion_token_id = getattr(self.config, "motion_token_id", None)
        if labels is not None and motion_token_id is not None:  # a placeholder, never a target
            labels = labels.masked_fill(labels == motion_token_id, -100)
        return super().forward(*args, labels=labels, **kwargs)

    def generate(self, input_ids=None, pixel_values=None, attention_mask=None, **kwargs):
        motion_token_id = getattr(self.config, "motion_token_id", None)
        if input_ids is None or motion_token_id is None or not bool((input_ids == motion_token_id).any()):
            return super().generate(
                input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask, **kwargs
            )
        with torch.no_grad():
            embeds = self.model.multimodal_embeddings(input_ids, pixel_values)
        sequences = super().generate(
            input_ids=input_ids.masked_fill(input_ids == motion_token_id, 0),
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            **kwargs,
        )
        if isinstance(sequences, torch.Tensor):
            return restore_prompt(sequences, input_ids)
        sequences.sequences = restore_prompt(sequences.sequences, input_ids)
        return sequences
