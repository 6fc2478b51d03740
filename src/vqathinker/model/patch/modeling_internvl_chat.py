# vqathinker's chat model for remote-code InternVL checkpoints, installed by `vqathinker patch-checkpoint`.
#
# Adapted from OpenGVLab InternVL's `modeling_internvl_chat.py` (https://github.com/OpenGVLab/InternVL,
# `internvl_chat/internvl/model/internvl_chat/modeling_internvl_chat.py`; the same file is the remote code of
# the OpenGVLab/InternVL3-* checkpoints on the Hugging Face Hub). The class layout, parameter names, the vision
# path (`pixel_shuffle`, `extract_feature`) and the `chat()` API follow that file; the rest was rewritten
# for vqathinker (see the docstring below). That file is "Copyright (c) 2024 OpenGVLab" and "Licensed under
# The MIT License" (its own header), the licence of the OpenGVLab/InternVL repository (its LICENSE: MIT),
# whose notice follows. vqathinker's changes are under the Apache License 2.0 (LICENSE of vqathinker). The
# InternVL3 model weights carry their own licences, stated on each model card; this file contains none.
#
# MIT License
#
# Copyright (c) 2024 OpenGVLab
#
# Permission is hereby granted, free of charge, to any person obtaining a copy
# of this software and associated documentation files (the "Software"), to deal
# in the Software without restriction, including without limitation the rights
# to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
# copies of the Software, and to permit persons to whom the Software is
# furnished to do so, subject to the following conditions:
#
# The above copyright notice and this permission notice shall be included in all
# copies or substantial portions of the Software.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
# IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
# FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
# AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
# LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
# OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
# SOFTWARE.

"""vqathinker's ``InternVLChatModel`` for remote-code InternVL checkpoints (InternVL3-*, VQAThinker).

Installed over a checkpoint's own ``modeling_internvl_chat.py`` by ``vqathinker patch-checkpoint DIR`` (see
``docs/remote_checkpoints.md`` in the vqathinker repository); it is imported by ``transformers`` with
``trust_remote_code`` and keeps using the checkpoint's ``configuration_internvl_chat.py``,
``modeling_intern_vit.py`` and ``conversation.py``.

What it keeps from the original model: the parameter names (``vision_model``, ``mlp1``, ``language_model``,
and ``slowfast_model`` / ``motion_mlp`` of the VQAThinker motion branch), the vision path (InternViT tiles →
CLS dropped → pixel shuffle → ``mlp1``), the ``<IMG_CONTEXT>`` placeholders filled in prompt order, and
``forward`` / ``generate`` taking ``pixel_values`` and ``image_flags`` (tiles with flag 0 are padding and
are dropped after the vision tower).

What it changes so that trl, PEFT and ``transformers`` 5 can drive it:

- ``generate`` returns the prompt followed by the completion, like every ``transformers`` model (the
  original returned the completion only).
- ``base_model`` is the multimodal backbone: it takes ``input_ids`` + ``pixel_values`` and returns the
  language model's last hidden states, which trl's fused log-prob head needs.
- ``config.image_token_id`` (the ``<IMG_CONTEXT>`` id) may be set instead of assigning
  ``img_context_token_id`` after loading; gradient checkpointing reaches the vision tower and the LLM.
- The motion branch is optional (``config.use_motion``) and built by ``vqathinker.model.motion``: one
  motion token per video, given by ``config.motion_token_id``, whose clip is the video's own frames.
"""

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel

from .configuration_internvl_chat import InternVLChatConfig
from .conversation import get_conv_template
from .modeling_intern_vit import InternVisionModel

try:
    from vqathinker.model import motion as vqa_motion
except ImportError:
    vqa_motion = None

VQATHINKER_MODELING = "vqathinker-internvl-chat/1"
"""Marks this file as vqathinker's (``vqathinker patch-checkpoint`` and the loader look for it)."""


class InternVLChatBackbone:
    """``model.base_model``: multimodal embeddings → the LLM's decoder → ``last_hidden_state``.

    It owns no parameters (they stay registered under the chat model's names); calling it runs
    :meth:`InternVLChatModel.backbone_forward`.
    """

    _tp_plan = None
    _pp_plan = None

    def __init__(self, chat_model):
        self.chat_model = chat_model

    def __call__(self, *args, **kwargs):
        return self.chat_model.backbone_forward(*args, **kwargs)

    def get_decoder(self):
        return self.chat_model.language_model.get_decoder()


class InternVLChatModel(PreTrainedModel, GenerationMixin):
    config_class = InternVLChatConfig
    main_input_name = "pixel_values"
    base_model_prefix = "language_model"
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _no_split_modules = ["InternVisionModel", "LlamaDecoderLayer", "Qwen2DecoderLayer"]

    def __init__(self, config, vision_model=None, language_model=None, use_flash_attn=None):
        super().__init__(config)
        vision_config, llm_config = config.vision_config, config.llm_config
        image_size = config.force_image_size or vision_config.image_size
        self.patch_size = vision_config.patch_size
        self.select_layer = config.select_layer
        self.template = config.template
        self.downsample_ratio = config.downsample_ratio
        self.ps_version = config.ps_version
        self.num_image_token = int((image_size // self.patch_size) ** 2 * self.downsample_ratio**2)

        attn_implementation = config._attn_implementation or "eager"
        if use_flash_attn is not None:
            attn_implementation = "flash_attention_2" if use_flash_attn else "sdpa"
        vision_config.use_flash_attn = attn_implementation == "flash_attention_2"
        llm_config._attn_implementation = attn_implementation

        self.vision_model = vision_model if vision_model is not None else InternVisionModel(vision_config)
        self.language_model = (
            language_model if language_model is not None else AutoModelForCausalLM.from_config(llm_config)
        )
        vit_features = vision_config.hidden_size * int(1 / self.downsample_ratio) ** 2
        self.mlp1 = nn.Sequential(
            nn.LayerNorm(vit_features),
            nn.Linear(vit_features, llm_config.hidden_size),
            nn.GELU(),
            nn.Linear(llm_config.hidden_size, llm_config.hidden_size),
        )
        if getattr(config, "use_motion", False):
            if vqa_motion is None:
                raise ImportError("config.use_motion needs the vqathinker package (vqathinker.model.motion)")
            vqa_motion.add_motion_modules(self, config)

        self.img_context_token_id = getattr(config, "image_token_id", None)
        self.conv_template = get_conv_template(self.template)
        self.system_message = self.conv_template.system_message
        self.post_init()

    # ------------------------------------------------------------------ embeddings and heads

    @property
    def base_model(self):
        return InternVLChatBackbone(self)

    @property
    def lm_head(self):
        return self.language_model.get_output_embeddings()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value):
        self.language_model.set_output_embeddings(value)

    # ------------------------------------------------------------------------- vision path

    def pixel_shuffle(self, x, scale_factor=0.5):
        """``[N, W, H, C]`` → ``[N, W·s, H·s, C/s²]``: neighbouring patches folded into channels."""
        n, w, h, c = x.shape
        x = x.reshape(n, w, int(h * scale_factor), int(c / scale_factor))
        x = x.permute(0, 2, 1, 3).contiguous()
        x = x.reshape(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
        if self.ps_version != "v1":  # v1 checkpoints were trained on the transposed layout
            x = x.permute(0, 2, 1, 3).contiguous()
        return x

    def extract_feature(self, pixel_values):
        """Tiles ``[N, 3, S, S]`` → LLM embeddings ``[N, num_image_token, d]``."""
        pixel_values = pixel_values.to(self.vision_model.dtype)
        if self.select_layer == -1:
            features = self.vision_model(
                pixel_values=pixel_values, output_hidden_states=False, return_dict=True
            ).last_hidden_state
        else:
            features = self.vision_model(
                pixel_values=pixel_values, output_hidden_states=True, return_dict=True
            ).hidden_states[self.select_layer]
        features = features[:, 1:, :]  # drop the CLS token
        side = int(features.shape[1] ** 0.5)
        features = features.reshape(features.shape[0], side, side, -1)
        features = self.pixel_shuffle(features, scale_factor=self.downsample_ratio)
        features = features.reshape(features.shape[0], -1, features.shape[-1])
        return self.mlp1(features)

    def embed_inputs(self, input_ids, pixel_values=None, image_flags=None, visual_features=None):
        """Token embeddings with every ``<IMG_CONTEXT>`` (and motion token) replaced by its feature.

        ``pixel_values`` are the tiles of all prompts in prompt order; ``image_flags`` (1 per real tile, 0 per
        padding tile) drops padding tiles after the vision tower. ``visual_features`` may replace
        ``pixel_values`` with precomputed ``extract_feature`` output (then no motion branch).
        """
        has_images = pixel_values is not None or visual_features is not None
        if has_images and self.img_context_token_id is None:
            raise ValueError(
                "img_context_token_id is not set: set config.image_token_id (or model.img_context_token_id) "
                "to the tokenizer's <IMG_CONTEXT> id"
            )
        if self.img_context_token_id is None:
            image_mask = torch.zeros_like(input_ids, dtype=torch.bool)
        else:
            image_mask = input_ids == self.img_context_token_id
        keep = None if image_flags is None else image_flags.reshape(-1) == 1
        motion_token_id = getattr(self.config, "motion_token_id", None)
        if motion_token_id is not None and bool((input_ids == motion_token_id).any()):
            if not getattr(self.config, "use_motion", False):
                raise ValueError("the prompt has a motion token but the model was built without use_motion")
            frames = None if pixel_values is None else (pixel_values if keep is None else pixel_values[keep])
            embeds = vqa_motion.embed_with_motion(
                self,
                input_ids,
                self.get_input_embeddings(),
                motion_token_id,
                frames,
                image_mask,
                self.num_image_token,
            )
        else:
            embeds = self.get_input_embeddings()(input_ids)
        if not has_images:
            return embeds
        features = self.extract_feature(pixel_values) if visual_features is None else visual_features
        if keep is not None:
            features = features[keep]
        features = features.reshape(-1, features.shape[-1]).to(embeds.device, embeds.dtype)
        num_tokens = int(image_mask.sum())
        if num_tokens != features.shape[0]:
            raise ValueError(
                f"image tokens and image features do not match: {num_tokens} <IMG_CONTEXT> tokens in the "
                f"prompts, {features.shape[0]} features ({self.num_image_token} per tile)"
            )
        return embeds.masked_scatter(image_mask.unsqueeze(-1), features)

    # ---------------------------------------------------------------------------- forward

    def backbone_forward(
        self,
        input_ids=None,
        pixel_values=None,
        attention_mask=None,
        position_ids=None,
        image_flags=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        **kwargs,
    ):
        """The language model's decoder on the multimodal embeddings (``last_hidden_state``, no logits)."""
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(input_ids, pixel_values, image_flags)
        if past_key_values is not None:
            kwargs["cache"] = past_key_values
        return self.language_model.get_decoder()(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **kwargs,
        )

    def forward(
        self,
        pixel_values=None,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        image_flags=None,
        past_key_values=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        inputs_embeds=None,
        logits_to_keep=0,
        **kwargs,
    ):
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(input_ids, pixel_values, image_flags)
        motion_token_id = getattr(self.config, "motion_token_id", None)
        if labels is not None and motion_token_id is not None:  # a placeholder, never a target
            labels = labels.masked_fill(labels == motion_token_id, -100)
        if past_key_values is not None:
            kwargs["cache"] = past_key_values
        if output_attentions is not None:
            kwargs["output_attentions"] = output_attentions
        if output_hidden_states is not None:
            kwargs["output_hidden_states"] = output_hidden_states
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return outputs if return_dict else outputs.to_tuple()

    @torch.no_grad()
    def generate(
        self,
        pixel_values=None,
        input_ids=None,
        attention_mask=None,
        image_flags=None,
        visual_features=None,
        generation_config=None,
        output_hidden_states=None,
        **generate_kwargs,
    ):
        """Sample from the prompts; returns ``input_ids`` followed by the new tokens (or a generate output).

        The prompts are embedded once (frames, motion) and decoding continues from the embeddings; the
        token ids handed to the language model have the motion token (outside the vocabulary) replaced, and
        the returned prompt columns are the caller's ``input_ids``.
        """
        embeds = self.embed_inputs(input_ids, pixel_values, image_flags, visual_features)
        motion_token_id = getattr(self.config, "motion_token_id", None)
        lm_ids = (
            input_ids if motion_token_id is None else input_ids.masked_fill(input_ids == motion_token_id, 0)
        )
        if output_hidden_states is not None:
            generate_kwargs["output_hidden_states"] = output_hidden_states
        outputs = self.language_model.generate(
            input_ids=lm_ids,
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            generation_config=generation_config,
            use_cache=True,
            **generate_kwargs,
        )
        sequences = outputs if isinstance(outputs, torch.Tensor) else outputs.sequences
        sequences = sequences.clone()
        sequences[:, : input_ids.shape[1]] = input_ids
        if isinstance(outputs, torch.Tensor):
            return sequences
        outputs.sequences = sequences
        return outputs

    # ---------------------------------------------------------------------------- chatting

    def chat(
        self,
        tokenizer,
        pixel_values,
        question,
        generation_config,
        history=None,
        return_history=False,
        num_patches_list=None,
        IMG_START_TOKEN="<img>",
        IMG_END_TOKEN="</img>",
        IMG_CONTEXT_TOKEN="<IMG_CONTEXT>",
        verbose=False,
    ):
        """One turn of the original chat API: ``<image>`` markers in ``question`` take the tiles in order.

        ``num_patches_list`` gives the tiles of each ``<image>`` (default: all tiles for one image, put in
        front of the question when it has no marker). ``generation_config`` is a dict of generate kwargs.
        """
        if pixel_values is not None and "<image>" not in question:
            question = "<image>\n" + question
        if num_patches_list is None:
            num_patches_list = [pixel_values.shape[0]] if pixel_values is not None else []
        self.img_context_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
        template = get_conv_template(self.template)
        template.system_message = self.system_message
        for old_question, old_answer in history or []:
            template.append_message(template.roles[0], old_question)
            template.append_message(template.roles[1], old_answer)
        template.append_message(template.roles[0], question)
        template.append_message(template.roles[1], None)
        query = template.get_prompt()
        for num_patches in num_patches_list:
            image_tokens = (
                IMG_START_TOKEN + IMG_CONTEXT_TOKEN * self.num_image_token * num_patches + IMG_END_TOKEN
            )
            query = query.replace("<image>", image_tokens, 1)
        inputs = tokenizer(query, return_tensors="pt")
        device = self.get_input_embeddings().weight.device
        eos_token_id = tokenizer.convert_tokens_to_ids(template.sep.strip())
        generation_config = {"eos_token_id": eos_token_id, **dict(generation_config)}
        sequences = self.generate(
            pixel_values=None if pixel_values is None else pixel_values.to(device, self.dtype),
            input_ids=inputs["input_ids"].to(device),
            attention_mask=inputs["attention_mask"].to(device),
            **generation_config,
        )
        new_tokens = sequences[0, inputs["input_ids"].shape[1] :]
        response = (
            tokenizer.decode(new_tokens, skip_special_tokens=True).split(template.sep.strip())[0].strip()
        )
        if verbose:
            print(query.replace(IMG_CONTEXT_TOKEN * self.num_image_token, "") + response)
        if return_history:
            return response, [*(history or []), (question, response)]
        return response
