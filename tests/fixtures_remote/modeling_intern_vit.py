"""Test version of a remote-code InternVL checkpoint's ``modeling_intern_vit.py``.

A pre-norm ViT: patch embedding + CLS token + learned positions, then transformer layers. Like InternViT,
its output keeps the CLS token first, it resizes its positions to the patch grid of the input (frames of
another size than the tile) and it can checkpoint activations (``encoder.gradient_checkpointing``).
"""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .configuration_intern_vit import InternVisionConfig

has_flash_attn = False


class InternVisionEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, config.patch_size, stride=config.patch_size
        )
        positions = (config.image_size // config.patch_size) ** 2 + 1
        self.position_embedding = nn.Parameter(torch.zeros(1, positions, config.hidden_size))

    def positions(self, height, width):
        """The learned positions, resized (bicubic) to a patch grid of another size, as InternViT does."""
        cls, grid = self.position_embedding[:, :1], self.position_embedding[:, 1:]
        side = int(grid.shape[1] ** 0.5)
        if (height, width) == (side, side):
            return self.position_embedding
        grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
        grid = nn.functional.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
        grid = grid.reshape(1, -1, height * width).permute(0, 2, 1).to(cls.dtype)
        return torch.cat([cls, grid], dim=1)

    def forward(self, pixel_values):
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        height, width = patches.shape[2:]
        patches = patches.flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.positions(height, width)


class InternVisionEncoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states):
        batch, length, width = hidden_states.shape
        qkv = self.qkv(self.norm1(hidden_states)).reshape(batch, length, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)
        hidden_states = hidden_states + self.proj(attended.transpose(1, 2).reshape(batch, length, width))
        return hidden_states + self.fc2(nn.functional.gelu(self.fc1(self.norm2(hidden_states))))


class InternVisionEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList(InternVisionEncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = False

    def forward(self, hidden_states, output_hidden_states=False):
        all_states = [hidden_states]
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                hidden_states = self._gradient_checkpointing_func(layer.__call__, hidden_states)
            else:
                hidden_states = layer(hidden_states)
            all_states.append(hidden_states)
        return hidden_states, (tuple(all_states) if output_hidden_states else None)


class InternVisionModel(PreTrainedModel):
    config_class = InternVisionConfig
    main_input_name = "pixel_values"
    _no_split_modules = ["InternVisionEncoderLayer"]

    def __init__(self, config):
        super().__init__(config)
        self.embeddings = InternVisionEmbeddings(config)
        self.encoder = InternVisionEncoder(config)
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, InternVisionEmbeddings):
            init.normal_(module.class_embedding, std=self.config.initializer_range)
            init.normal_(module.position_embedding, std=self.config.initializer_range)

    def forward(self, pixel_values=None, output_hidden_states=None, return_dict=None, pixel_embeds=None):
        hidden_states = self.embeddings(pixel_values) if pixel_embeds is None else pixel_embeds
        last, all_states = self.encoder(hidden_states, output_hidden_states=bool(output_hidden_states))
        return BaseModelOutputWithPooling(
            last_hidden_state=last, pooler_output=last[:, 0], hidden_states=all_states
        )
