"""Loading HF-format InternVL checkpoints and turning video frames into model inputs.

A video is a list of frames; every frame is ONE tile of the vision tower (no dynamic tiling) and sits in the
prompt where the conversation has an ``{"type": "image"}`` block, which the processor expands to
``<img>`` + ``<IMG_CONTEXT>`` × tokens-per-frame + ``</img>``. The same :func:`prepare_inputs` serves
training, evaluation and prediction, and trl's own processor calls get the same one-tile layout because the
processor's image defaults say so (:class:`VideoInternVLProcessor`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import re
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    BatchFeature,
    InternVLForConditionalGeneration,
    PreTrainedConfig,
)
from transformers.image_utils import make_flat_list_of_images
from transformers.models.internvl import InternVLProcessor
from transformers.processing_utils import ProcessorMixin

from vqathinker.config import VQAModelConfig
from vqathinker.data.prompts import MOTION_TOKEN
from vqathinker.model import remote
from vqathinker.model.efficientnet import MODEL_TYPE as EFFICIENTNET_MODEL_TYPE
from vqathinker.model.motion import (
    PROJECTOR_NAME,
    InternVLMotionForConditionalGeneration,
    add_motion_slot,
    configure_motion,
    finish_motion,
)

logger = logging.getLogger(__name__)

# Linear layers of a Qwen2 decoder block: the default LoRA targets (the vision tower is left alone).
LLM_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_LORA_TARGETS = r"(.*\.)?language_model\..*\.(" + "|".join(LLM_LINEAR_LAYERS) + r")"

ADAPTER_CONFIG = "adapter_config.json"  # marks a LoRA run's output folder (peft)

# Parameter-name prefixes of the three parts of InternVLForConditionalGeneration.
VISION_PREFIX = "model.vision_tower."
PROJECTOR_PREFIX = "model.multi_modal_projector."
LLM_PREFIXES = ("model.language_model.", "lm_head.")


class VideoInternVLProcessor(InternVLProcessor):
    """``InternVLProcessor`` without a video processor, one tile per frame.

    transformers' ``InternVLVideoProcessor`` needs torchvision; videos here are lists of frames passed as
    images, so the processor needs only the image processor and the tokenizer. The image defaults turn the
    InternVL tiling off (``crop_to_patches=False``, ``max_patches=1``): they apply to every call, including
    the ones trl makes, unless a caller passes other values explicitly.

    ``num_frames`` is the checkpoint's suggested number of frames per video (saved in
    ``processor_config.json``; InternVL checkpoints without it get 6, the reference training setting).
    ``motion`` (set by :func:`load_model_and_processor` for a model with the motion branch) puts the motion
    slot after the last frame of every prompt (:func:`vqathinker.model.motion.add_motion_slot`).
    """

    images_kwargs = {"crop_to_patches": False, "max_patches": 1}

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        image_seq_length: int = 256,
        num_frames: int = 6,
        motion: bool = False,
        chat_template=None,
        **kwargs,
    ):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
        self.image_seq_length = image_seq_length
        self.num_frames = num_frames
        self.motion = motion
        self.start_image_token = tokenizer.start_image_token
        self.end_image_token = tokenizer.end_image_token
        self.start_image_token_id = tokenizer.start_image_token_id
        self.end_image_token_id = tokenizer.end_image_token_id
        self.image_token = tokenizer.context_image_token
        self.image_token_id = tokenizer.context_image_token_id
        self.video_token = tokenizer.video_token
        self.multimodal_pattern = re.compile(
            f"(?P<image>{re.escape(self.image_token)})|(?P<video>{re.escape(self.video_token)})"
        )

    def __call__(self, images=None, text=None, videos=None, **kwargs) -> BatchFeature:
        if videos is not None:
            raise ValueError(
                "VideoInternVLProcessor takes a video as a list of frames in `images` (one image block per "
                "frame), not as `videos`."
            )
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            if not self.motion and any(MOTION_TOKEN in t for t in texts):
                raise ValueError(
                    f"the prompt has the motion slot ({MOTION_TOKEN}) but the model has no motion branch"
                )
            if self.motion:
                texts = [add_motion_slot(t, self.image_token) for t in texts]
            text = texts[0] if isinstance(text, str) else texts
        return super().__call__(images=images, text=text, **kwargs)

    def _process_images(self, images, **kwargs):
        """Preprocess each distinct image object once; its repeats get copies of its tiles.

        The G rollouts of a video share one list of frame objects (the trainer decodes each video once), so
        trl's processor calls, which see every copy, resize and normalise each frame once instead of G times.
        Matching is by object identity: the same object always gives the same tiles.
        """
        flat = make_flat_list_of_images(images)
        position: dict[int, int] = {}
        order = [position.setdefault(id(image), len(position)) for image in flat]
        if len(position) == len(flat):
            return super()._process_images(images, **kwargs)
        unique = list({id(image): image for image in flat}.values())
        processed, _ = super()._process_images(unique, **kwargs)
        starts = np.cumsum([0, *(int(n) for n in processed["num_patches"])])
        tiles = [tile for u in order for tile in range(starts[u], starts[u + 1])]
        processed["pixel_values"] = _take(processed["pixel_values"], tiles)
        processed["num_patches"] = _take(processed["num_patches"], order)
        return processed, [self.replace_image_token(processed, image_idx=i) for i in range(len(flat))]


def _take(values, index: list[int]):
    """Rows ``index`` of a tensor, an array or a list."""
    if isinstance(values, torch.Tensor):
        return values[torch.tensor(index, dtype=torch.long)]
    if isinstance(values, np.ndarray):
        return values[np.asarray(index, dtype=np.int64)]
    return [values[i] for i in index]


def tile_size(processor: VideoInternVLProcessor) -> int:
    """Side in pixels of the square tile each frame becomes (448 for InternVL3)."""
    return int(processor.image_processor.size["height"])


def tokens_per_frame(processor: VideoInternVLProcessor) -> int:
    """Number of ``<IMG_CONTEXT>`` tokens one frame (one tile) occupies in the prompt."""
    return int(processor.image_seq_length)


def prepare_inputs(
    processor: VideoInternVLProcessor,
    conversations: Sequence[list[dict]],
    frames: Sequence[Sequence[Image.Image]],
    add_generation_prompt: bool = True,
) -> BatchFeature:
    """Batch of conversations (one video each) and their frames → padded model inputs.

    Each conversation has one ``{"type": "image"}`` block per frame, in order (see
    ``vqathinker.data.prompts.build_conversation``). Returns ``input_ids`` and ``attention_mask``
    (left-padded) and ``pixel_values`` of shape ``[sum of frames, 3, T, T]`` with T = :func:`tile_size`,
    the same layout trl builds from an ``images`` column.
    """
    if len(conversations) != len(frames):
        raise ValueError(f"{len(conversations)} conversations but {len(frames)} frame lists")
    texts = []
    for i, (conversation, video_frames) in enumerate(zip(conversations, frames, strict=True)):
        num_blocks = sum(
            1
            for message in conversation
            if isinstance(message["content"], list)
            for block in message["content"]
            if block.get("type") == "image"
        )
        if num_blocks != len(video_frames):
            raise ValueError(
                f"conversation {i} has {num_blocks} image blocks but {len(video_frames)} frames were given"
            )
        texts.append(
            processor.apply_chat_template(
                conversation, add_generation_prompt=add_generation_prompt, tokenize=False
            )
        )
    images = [list(video_frames) for video_frames in frames]
    return processor(text=texts, images=images, padding=True, return_tensors="pt")


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


def lora_config(model_args: VQAModelConfig):
    """The ``peft.LoraConfig`` of ``model_args`` (None without ``use_peft``).

    Targets default to the language model's attention and MLP linear layers only (not the vision tower or
    the projector; add those through ``lora_target_modules`` / ``lora_modules_to_save``).
    """
    from trl import get_peft_config

    config = get_peft_config(model_args)
    if config is not None and not model_args.lora_target_modules:
        config.target_modules = DEFAULT_LORA_TARGETS
    return config


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
    model_args: VQAModelConfig,
    *,
    device: str | torch.device | None = None,
    gradient_checkpointing: bool = False,
):
    """Load an InternVL checkpoint and its :class:`VideoInternVLProcessor`.

    HF-format checkpoints (model_type ``internvl``) load natively; a local remote-code checkpoint (model_type
    ``internvl_chat``) loads with ``trust_remote_code`` through vqathinker's chat model once patched
    (:mod:`vqathinker.model.remote`). The motion branch follows ``use_motion`` / ``motion_width`` /
    ``motion_weights`` (:func:`vqathinker.model.motion.configure_motion`).

    Applies ``model_args``: dtype, attention implementation (:func:`choose_attn_implementation`), the
    freeze options, then LoRA when ``use_peft`` (the model becomes a ``peft.PeftModel`` whose only
    trainable parameters are the adapters and ``lora_modules_to_save``; do not also give the trainer a
    ``peft_config``). ``gradient_checkpointing`` turns activation recomputation on (non-reentrant).
    Returns ``(model, processor)``.
    """
    path = model_args.model_name_or_path
    if not path:
        raise ValueError("model_name_or_path is required")
    revision = model_args.model_revision
    path = os.path.expanduser(path)
    if os.path.isfile(os.path.join(path, ADAPTER_CONFIG)):
        return _load_adapter(path, model_args, device=device, gradient_checkpointing=gradient_checkpointing)

    from trl import get_quantization_config

    quantization_config = get_quantization_config(model_args)
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    load_kwargs = dict(
        revision=revision,
        dtype=dtype,
        attn_implementation=choose_attn_implementation(model_args.attn_implementation),
        quantization_config=quantization_config,
        device_map={"": device} if quantization_config is not None and device is not None else None,
    )
    if remote.is_remote_checkpoint(path):
        model, processor, use_motion, loading_info = _load_remote(path, model_args, load_kwargs)
    else:
        config_dict = read_internvl_config_dict(path, revision)
        processor = VideoInternVLProcessor.from_pretrained(path, revision=revision)
        check_processor_matches(processor, config_dict)
        config = AutoConfig.from_pretrained(path, revision=revision)
        use_motion = configure_motion(
            config, processor.tokenizer, path, model_args.use_motion, model_args.motion_width
        )
        # the Auto class: InternVLForConditionalGeneration, or the class registered for the config's model_type
        model_class = InternVLMotionForConditionalGeneration if use_motion else AutoModelForImageTextToText
        model, loading_info = model_class.from_pretrained(
            path, config=config, output_loading_info=True, **load_kwargs
        )
    processor.motion = use_motion
    if use_motion:
        finish_motion(model, model_args.motion_weights, loading_info["missing_keys"])

    freeze_parts(model, model_args.freeze_vision_tower, model_args.freeze_projector, model_args.freeze_llm)
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    peft_config = lora_config(model_args)
    if peft_config is not None:
        from peft import get_peft_model

        if use_motion:  # the motion projector is new: it trains in full beside the adapters
            peft_config.modules_to_save = [*(peft_config.modules_to_save or []), PROJECTOR_NAME]
        model = get_peft_model(model, peft_config)
        if gradient_checkpointing:
            model.enable_input_require_grads()
    if device is not None and quantization_config is None:
        model = model.to(device)
    return model, processor


def _load_adapter(path: str, model_args: VQAModelConfig, **kwargs):
    """A LoRA run's output folder: its base checkpoint with the adapter applied.

    The base is the ``base_model_name_or_path`` recorded in ``adapter_config.json``; the processor is the one
    saved beside the adapter. With ``use_peft`` the adapter stays a trainable ``PeftModel`` (training goes
    on); otherwise it is merged into the weights, so evaluation and prediction run at the base model's speed.
    """
    from peft import PeftModel

    with open(os.path.join(path, ADAPTER_CONFIG)) as file:
        base = json.load(file).get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"{os.path.join(path, ADAPTER_CONFIG)}: no base_model_name_or_path to load the adapter on"
        )
    base_args = dataclasses.replace(model_args, model_name_or_path=base, use_peft=False)
    model, processor = load_model_and_processor(base_args, **kwargs)
    if os.path.isfile(os.path.join(path, "processor_config.json")):
        processor = VideoInternVLProcessor.from_pretrained(path)
    model = PeftModel.from_pretrained(model, path, is_trainable=model_args.use_peft)
    logger.info("LoRA adapter %s on %s (%s)", path, base, "trainable" if model_args.use_peft else "merged")
    return (model if model_args.use_peft else model.merge_and_unload()), processor


def _load_remote(path: str, model_args: VQAModelConfig, load_kwargs: dict):
    """A patched remote-code checkpoint: ``(model, processor, motion on, loading info)``."""
    remote.check_patched(path)
    revision = load_kwargs["revision"]
    saved_processor = os.path.isfile(os.path.join(path, "processor_config.json"))
    if saved_processor:  # a folder written by a vqathinker run
        processor = VideoInternVLProcessor.from_pretrained(path, revision=revision, trust_remote_code=True)
        tokenizer = processor.tokenizer
    else:
        tokenizer = remote.load_remote_tokenizer(path, revision)
    config = remote.load_remote_config(path, revision)
    config.image_token_id = tokenizer.convert_tokens_to_ids(remote.IMAGE_TOKENS["context_image_token"])
    use_motion = configure_motion(config, tokenizer, path, model_args.use_motion, model_args.motion_width)
    model, loading_info = remote.load_remote_model(path, config, **load_kwargs)
    if not saved_processor:
        processor = remote.build_remote_processor(tokenizer, model)
    return model, processor, use_motion, loading_info


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
