"""Test version of a remote-code InternVL checkpoint's ``configuration_internvl_chat.py``.

Same constructor as the checkpoints' chat config: a vision config dict, an LLM config dict whose
``architectures[0]`` picks the LLM config class, and the vision-to-language options.
"""

from transformers import LlamaConfig, PretrainedConfig, Qwen2Config

from .configuration_intern_vit import InternVisionConfig

LLM_CONFIGS = {"Qwen2ForCausalLM": Qwen2Config, "LlamaForCausalLM": LlamaConfig}


class InternVLChatConfig(PretrainedConfig):
    model_type = "internvl_chat"
    is_composition = True

    def __init__(
        self,
        vision_config=None,
        llm_config=None,
        use_backbone_lora=0,
        use_llm_lora=0,
        select_layer=-1,
        force_image_size=None,
        downsample_ratio=0.5,
        template=None,
        dynamic_image_size=False,
        use_thumbnail=False,
        ps_version="v1",
        min_dynamic_patch=1,
        max_dynamic_patch=6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        vision_config = dict(vision_config or {})
        llm_config = dict(llm_config or {"architectures": ["Qwen2ForCausalLM"]})
        self.vision_config = InternVisionConfig(**vision_config)
        architecture = llm_config["architectures"][0]
        if architecture not in LLM_CONFIGS:
            raise ValueError(f"unsupported LLM architecture {architecture}")
        self.llm_config = LLM_CONFIGS[architecture](**llm_config)
        self.use_backbone_lora = use_backbone_lora
        self.use_llm_lora = use_llm_lora
        self.select_layer = select_layer
        self.force_image_size = force_image_size
        self.downsample_ratio = downsample_ratio
        self.template = template
        self.dynamic_image_size = dynamic_image_size
        self.use_thumbnail = use_thumbnail
        self.ps_version = ps_version
        self.min_dynamic_patch = min_dynamic_patch
        self.max_dynamic_patch = max_dynamic_patch
        self.hidden_size = self.llm_config.hidden_size
        self.tie_word_embeddings = False
        self.llm_config.tie_word_embeddings = False

    def to_dict(self):
        output = super().to_dict()
        output["vision_config"] = self.vision_config.to_dict()
        output["llm_config"] = self.llm_config.to_dict()
        output["model_type"] = self.model_type
        return output
