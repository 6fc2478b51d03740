"""Loading InternVL checkpoints (HF format, patched remote code, LoRA run folders) with their processor.

:func:`load_model_and_processor` takes a :class:`ModelOptions`: plain loading options, independent of any
training library (the training layer builds one from its command-line config). HF-format checkpoints
(model_type ``internvl``) load natively, a local remote-code checkpoint (model_type ``internvl_chat``) through
vqathinker's chat model once patched (:mod:`vqathinker.model.remote`), a LoRA run's folder as its base model
with the adapter applied. The processor is :class:`~vqathinker.model.processor.VideoInternVLProcessor`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    InternVLForConditionalGeneration,
    PreTrainedConfig,
)

from vqathinker.model import remote
from vqathinker.model.efficientnet import MODEL_TYPE as EFFICIENTNET_MODEL_TYPE
from vqathinker.model.motion import PROJECTOR_NAME, configure_motion, finish_motion
from vqathinker.model.motion_native import InternVLMotionForConditionalGeneration
from vqathinker.model.processor import (
    VideoInternVLProcessor,
    tile_size,
    tokens_per_frame,
    use_internvl_chat_template,
)

logger = logging.getLogger(__name__)

# Linear layers of a Qwen2 decoder block: the default LoRA targets (the vision tower is left alone).
LLM_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_LORA_TARGETS = r"(.*\.)?language_model\..*\.(" + "|".join(LLM_LINEAR_LAYERS) + r")"

ADAPTER_CONFIG = "adapter_config.json"  # marks a LoRA run's output folder (peft)


@dataclass
class ModelOptions:
    """How to load a checkpoint: what :func:`load_model_and_processor` needs, and nothing of training.

    Attributes:
        model_name_or_path: checkpoint folder (or Hub id of an HF-format checkpoint), or a LoRA run's folder.
        revision: Hub revision.
        dtype: ``"bfloat16"``, ``"float16"``, ``"float32"``, ``"auto"`` or None (the checkpoint's).
        attn_implementation: attention kernel; None picks one (:func:`choose_attn_implementation`).
        quantization_config: a transformers quantization config (e.g. ``BitsAndBytesConfig``) or None.
        lora: a ``peft.LoraConfig`` to wrap the model in (None: no adapters). Without ``target_modules`` it
            targets the language model's linear layers (:data:`DEFAULT_LORA_TARGETS`). For a LoRA run's
            folder, a config here keeps its adapter trainable; None merges it for inference.
        freeze_vision_tower, freeze_projector, freeze_llm: turn ``requires_grad`` off for that part.
        use_motion, motion_weights, motion_width, motion_pooling, motion_batch_norm: the motion branch
            (:func:`vqathinker.model.motion.configure_motion`); motion_init: how a projector the checkpoint
            lacks starts (:func:`vqathinker.model.motion.finish_motion`).
    """

    model_name_or_path: str
    revision: str = "main"
    dtype: str | None = None
    attn_implementation: str | None = None
    quantization_config: Any = None
    lora: Any = None
    freeze_vision_tower: bool = False
    freeze_projector: bool = False
    freeze_llm: bool = False
    use_motion: bool | None = None
    motion_weights: str | None = None
    motion_width: int | None = None
    motion_pooling: str | None = None
    motion_batch_norm: str | None = None
    motion_init: str = "default"


# Parameter-name prefixes of the three parts of InternVLForConditionalGeneration.
VISION_PREFIX = "model.vision_tower."
PROJECTOR_PREFIX = "model.multi_modal_projector."
LLM_PREFIXES = ("model.language_model.", "lm_head.")


def choose_attn_implementation(requested: str | None) -> str:
    """``requested`` if given, else ``flash_attention_2`` when CUDA and flash-attn are there, else ``sdpa``."""
    if requested:
        choice, reason = requested, "requested"
    elif torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        choice, reason = "flash_attention_2", "CUDA and flash-attn available"
    else:
        choice, reason = "sdpa", "flash-attn needs CUDA and the flash-attn package"
    logger.info("attention implementation: %s (%s)", choice, reason)
    return choice


def read_internvl_config_dict(model_name_or_path: str, revision: str = "main") -> dict:
    """The checkpoint's ``config.json`` as a dict, after checking it is an HF-format InternVL checkpoint."""
    path = os.path.expanduser(str(model_name_or_path))
    local = os.path.exists(path) or path.startswith((".", "/")) or path.count("/") != 1
    if local and not os.path.isdir(path):
        raise FileNotFoundError(f"model checkpoint {path!r}: no such directory")
    if local and not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"{path!r} is not a model checkpoint: it has no config.json")
    try:
        config_dict, _ = PreTrainedConfig.get_config_dict(path, revision=revision)
    except OSError as error:
        raise FileNotFoundError(
            f"model checkpoint {path!r}: not a local directory, and not found on the Hugging Face Hub or in "
            f"its local cache ({error})"
        ) from error
    model_type = config_dict.get("model_type")
    if model_type in ("internvl", EFFICIENTNET_MODEL_TYPE):  # the latter: vqathinker.model.efficientnet
        return config_dict
    if model_type == "internvl_chat":
        raise ValueError(
            f"{path!r} is a remote-code InternVL checkpoint (model_type 'internvl_chat'): download it to a folder "
            "and run `vqathinker patch-checkpoint DIR` on it, or use the HF format (e.g. OpenGVLab/InternVL3-8B-hf)."
        )
    raise ValueError(
        f"{path!r} is not an InternVL checkpoint: its config.json has model_type {model_type!r}, expected "
        "'internvl' (an HF-format InternVL such as OpenGVLab/InternVL3-8B-hf, or `vqathinker make-tiny-model`)."
    )


def freeze_parts(
    model: InternVLForConditionalGeneration, vision_tower: bool, projector: bool, llm: bool
) -> None:
    """Turn ``requires_grad`` off for the chosen parts (the LLM part includes embeddings and ``lm_head``)."""
    prefixes = (
        ((VISION_PREFIX, remote.VISION_PREFIX) if vision_tower else ())
        + ((PROJECTOR_PREFIX, remote.PROJECTOR_PREFIX) if projector else ())
        + (LLM_PREFIXES + remote.LLM_PREFIXES if llm else ())
    )
    for name, param in model.named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)


def load_model_and_processor(
    options: ModelOptions,
    *,
    device: str | torch.device | None = None,
    gradient_checkpointing: bool = False,
):
    """Load an InternVL checkpoint and its :class:`VideoInternVLProcessor`.

    HF-format checkpoints (model_type ``internvl``) load natively; a local remote-code checkpoint (model_type
    ``internvl_chat``) loads with ``trust_remote_code`` through vqathinker's chat model once patched
    (:mod:`vqathinker.model.remote`). The motion branch follows ``use_motion`` / ``motion_width`` /
    ``motion_weights`` (:func:`vqathinker.model.motion.configure_motion`).

    Applies ``options``: dtype, attention implementation (:func:`choose_attn_implementation`), the
    freeze options, then LoRA when ``options.lora`` is set (the model becomes a ``peft.PeftModel`` whose only
    trainable parameters are the adapters and its ``modules_to_save``; do not also give the trainer a
    ``peft_config``). ``gradient_checkpointing`` turns activation recomputation on (non-reentrant).
    Returns ``(model, processor)``.
    """
    path = options.model_name_or_path
    if not path:
        raise ValueError("model_name_or_path is required")
    revision = options.revision
    path = os.path.expanduser(path)
    if os.path.isfile(os.path.join(path, ADAPTER_CONFIG)):
        return _load_adapter(path, options, device=device, gradient_checkpointing=gradient_checkpointing)

    quantization_config = options.quantization_config
    dtype = options.dtype if options.dtype in (None, "auto") else getattr(torch, options.dtype)
    load_kwargs = dict(
        revision=revision,
        dtype=dtype,
        attn_implementation=choose_attn_implementation(options.attn_implementation),
        quantization_config=quantization_config,
        device_map={"": device} if quantization_config is not None and device is not None else None,
    )
    if remote.is_remote_checkpoint(path):
        model, processor, use_motion, loading_info = _load_remote(path, options, load_kwargs)
    else:
        model, processor, use_motion, loading_info = _load_hf_format(path, options, load_kwargs)
    processor.motion = use_motion
    if use_motion:
        finish_motion(
            model, options.motion_weights, loading_info["missing_keys"], projector_init=options.motion_init
        )
    freeze_parts(model, options.freeze_vision_tower, options.freeze_projector, options.freeze_llm)
    model = _for_training(model, options.lora, use_motion, gradient_checkpointing)
    if device is not None and quantization_config is None:
        model = model.to(device)
    return model, processor


def _load_hf_format(path: str, options: ModelOptions, load_kwargs: dict):
    """An HF-format checkpoint: ``(model, processor, motion on, loading info)``. The class is the one
    registered for the config's model_type (``InternVLForConditionalGeneration``, or e.g. the tiny
    pretrained-trunk model of :mod:`vqathinker.model.efficientnet`), or the motion model."""
    revision = load_kwargs["revision"]
    config_dict = read_internvl_config_dict(path, revision)
    processor = VideoInternVLProcessor.from_pretrained(path, revision=revision)
    if use_internvl_chat_template(processor):
        logger.info(
            "%s: chat template replaced by InternVL's (system message, as the remote-code model)", path
        )
    check_processor_matches(processor, config_dict)
    config = AutoConfig.from_pretrained(path, revision=revision)
    use_motion = configure_motion(config, processor.tokenizer, path, **_motion_settings(options))
    model_class = InternVLMotionForConditionalGeneration if use_motion else AutoModelForImageTextToText
    model, loading_info = model_class.from_pretrained(
        path, config=config, output_loading_info=True, **load_kwargs
    )
    return model, processor, use_motion, loading_info


def _for_training(model, lora, use_motion: bool, gradient_checkpointing: bool):
    """Activation checkpointing (non-reentrant) and LoRA adapters, when asked for."""
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if lora is None:
        return model
    from peft import get_peft_model

    peft_config = dataclasses.replace(lora)
    if not peft_config.target_modules:
        peft_config.target_modules = DEFAULT_LORA_TARGETS
    if use_motion:  # the motion projector is new: it trains in full beside the adapters
        peft_config.modules_to_save = [*(peft_config.modules_to_save or []), PROJECTOR_NAME]
    model = get_peft_model(model, peft_config)
    if gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def _load_adapter(path: str, options: ModelOptions, **kwargs):
    """A LoRA run's output folder: its base checkpoint with the adapter applied.

    The base is the ``base_model_name_or_path`` recorded in ``adapter_config.json``; the processor is the one
    saved beside the adapter. With ``options.lora`` set the adapter stays a trainable ``PeftModel`` (training goes
    on); otherwise it is merged into the weights, so evaluation and prediction run at the base model's speed.
    """
    from peft import PeftModel

    with open(os.path.join(path, ADAPTER_CONFIG)) as file:
        base = json.load(file).get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"{os.path.join(path, ADAPTER_CONFIG)}: no base_model_name_or_path to load the adapter on"
        )
    trainable = options.lora is not None
    base_options = dataclasses.replace(options, model_name_or_path=base, lora=None)
    model, processor = load_model_and_processor(base_options, **kwargs)
    if os.path.isfile(os.path.join(path, "processor_config.json")):
        processor = VideoInternVLProcessor.from_pretrained(path)
    model = PeftModel.from_pretrained(model, path, is_trainable=trainable)
    logger.info("LoRA adapter %s on %s (%s)", path, base, "trainable" if trainable else "merged")
    return (model if trainable else model.merge_and_unload()), processor


def _motion_settings(options: ModelOptions) -> dict:
    """The keyword arguments of :func:`vqathinker.model.motion.configure_motion` in ``options``."""
    return {
        "use_motion": options.use_motion,
        "width": options.motion_width,
        "pooling": options.motion_pooling,
        "batch_norm": options.motion_batch_norm,
    }


def _load_remote(path: str, options: ModelOptions, load_kwargs: dict):
    """A patched remote-code checkpoint: ``(model, processor, motion on, loading info)``."""
    remote.check_patched(path)
    remote.check_remote_imports(path)
    revision = load_kwargs["revision"]
    saved_processor = os.path.isfile(os.path.join(path, "processor_config.json"))
    if saved_processor:  # a folder written by a vqathinker run
        processor = VideoInternVLProcessor.from_pretrained(path, revision=revision, trust_remote_code=True)
        tokenizer = processor.tokenizer
    else:
        tokenizer = remote.load_remote_tokenizer(path, revision)
    config = remote.load_remote_config(path, revision)
    config.image_token_id = tokenizer.convert_tokens_to_ids(remote.IMAGE_TOKENS["context_image_token"])
    use_motion = configure_motion(config, tokenizer, path, **_motion_settings(options))
    model, loading_info = remote.load_remote_model(path, config, **load_kwargs)
    if not saved_processor:
        processor = remote.build_remote_processor(tokenizer, model)
    return model, processor, use_motion, loading_info


@contextlib.contextmanager
def cache_on_for_saving(model) -> Iterator[None]:
    """``use_cache`` on (in the model's config and its language model's) while a save writes the config.

    :func:`load_model_and_processor` turns it off with gradient checkpointing, where a key-value cache in the
    training forward passes would only hold memory; a saved model should generate with its cache.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    configs = list({id(c): c for c in (base.config, text_config(base.config))}.values())
    previous = [getattr(c, "use_cache", True) for c in configs]
    for config in configs:
        config.use_cache = True
    try:
        yield
    finally:
        for config, value in zip(configs, previous, strict=True):
            config.use_cache = value


def check_processor_matches(processor: VideoInternVLProcessor, config_dict: dict) -> None:
    """Fail early when the processor's tile or token count disagrees with the vision tower's config."""
    vision = config_dict.get("vision_config", {})
    image_size = vision.get("image_size", 448)
    patch_size = vision.get("patch_size", 14)
    image_size = image_size[0] if isinstance(image_size, list | tuple) else image_size
    patch_size = patch_size[0] if isinstance(patch_size, list | tuple) else patch_size
    ratio = config_dict.get("downsample_ratio", 0.5)
    grid = vision.get("grid_size") or image_size // patch_size  # a convolutional trunk states its grid
    expected = round(grid**2 * ratio**2)
    if tile_size(processor) != image_size or tokens_per_frame(processor) != expected:
        raise ValueError(
            f"processor gives {tile_size(processor)} px tiles with {tokens_per_frame(processor)} tokens, but the "
            f"vision tower expects {image_size} px tiles with {expected} tokens"
        )


def text_config(config: PreTrainedConfig) -> PreTrainedConfig:
    """The language model's config of an InternVL config, HF format (``text_config``) or remote code (``llm_config``)."""
    llm_config = getattr(config, "llm_config", None)
    return llm_config if llm_config is not None else config.get_text_config()
