"""The processor of video frames for InternVL, and the one way a video becomes model inputs.

A video is a list of frames; every frame is ONE tile of the vision tower (no dynamic tiling) and sits in the
prompt where the conversation has an ``{"type": "image"}`` block, which the processor expands to
``<img>`` + ``<IMG_CONTEXT>`` × tokens-per-frame + ``</img>``. The same :func:`prepare_inputs` serves
training, evaluation and prediction, and trl's own processor calls get the same one-tile layout because the
processor's image defaults say so (:class:`VideoInternVLProcessor`). HF-format checkpoints ship their own
processor files; remote-code checkpoints and the tiny test models get one built here (ChatML template,
InternVL image processor at the model's tile size).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, make_flat_list_of_images
from transformers.models.got_ocr2 import GotOcr2ImageProcessorPil
from transformers.models.internvl import InternVLProcessor
from transformers.processing_utils import ProcessorMixin

from vqathinker.model.motion import MOTION_TOKEN, add_motion_slot

IMAGE_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
"""The InternVL image markers, registered on a remote-code checkpoint's tokenizer for the processor."""

STOCK_PROCESSOR_CLASS = "InternVLProcessor"
STOCK_VIDEO_PROCESSOR = "InternVLVideoProcessor"
"""What a saved processor says it is: the classes transformers' InternVL checkpoints ship with."""


# ChatML; an image block becomes the processor's placeholder ``<IMG_CONTEXT>``, which it expands to
# <img><IMG_CONTEXT>×tokens</img>. Video blocks are refused: frames go in as image blocks.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for block in message['content'] -%}"
    "{%- if block['type'] == 'image' -%}{{- '<IMG_CONTEXT>' -}}"
    "{%- elif block['type'] == 'text' -%}{{- block['text'] -}}"
    "{%- else -%}{{- raise_exception('unsupported content block ' + block['type'] + ': pass video frames "
    "as image blocks') -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def chat_template(system_message: str) -> str:
    """ChatML with ``system_message`` as the default system turn; image blocks become ``<IMG_CONTEXT>``."""
    system = ""
    if system_message:
        text = json.dumps(system_message, ensure_ascii=False)
        system = (
            "{%- if messages[0]['role'] != 'system' -%}"
            f"{{{{- '<|im_start|>system\\n' + {text} + '<|im_end|>\\n' -}}}}"
            "{%- endif -%}"
        )
    return system + CHAT_TEMPLATE


INTERNVL_SYSTEM_MESSAGE = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
"""The system message of InternVL's ``internvl2_5`` conversation template (InternVL2.5 and InternVL3), which the
remote-code model's ``chat()`` and the VQAThinker release send with every prompt."""


def use_internvl_chat_template(processor) -> bool:
    """Give an HF-format checkpoint's processor the remote-code model's prompt layout; whether it changed.

    The HF-format InternVL checkpoints ship a chat template without the system message and with a newline
    after each image; the remote-code model (and the release) renders ChatML with
    :data:`INTERNVL_SYSTEM_MESSAGE` and nothing after an image. A template of ours (a vqathinker run's saved
    processor, the tiny test model's) is kept as it is.
    """
    if (processor.chat_template or "").endswith(CHAT_TEMPLATE):
        return False
    processor.chat_template = chat_template(INTERNVL_SYSTEM_MESSAGE)
    return True


def one_tile_image_processor(tile: int) -> GotOcr2ImageProcessorPil:
    """InternVL's image processor with one ``tile`` × ``tile`` tile per frame (no dynamic tiling), ImageNet norm."""
    return GotOcr2ImageProcessorPil(
        size={"height": tile, "width": tile},
        crop_to_patches=False,
        max_patches=1,
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )


class VideoInternVLProcessor(InternVLProcessor):
    """``InternVLProcessor`` without a video processor, one tile per frame.

    transformers' ``InternVLVideoProcessor`` needs torchvision; videos here are lists of frames passed as
    images, so the processor needs only the image processor and the tokenizer. The image defaults turn the
    InternVL tiling off (``crop_to_patches=False``, ``max_patches=1``): they apply to every call, including
    the ones trl makes, unless a caller passes other values explicitly.

    ``num_frames`` is the checkpoint's suggested number of frames per video (saved in
    ``processor_config.json``; InternVL checkpoints without it get 6, the reference training setting).
    ``question`` and ``prompt_style`` are the question of the training set's score rows and the prompt layout
    it was trained with (saved there too; None and ``"default"`` for a checkpoint that records none): evaluate
    and predict ask that question of videos whose labels carry none.
    It is saved as a stock ``InternVLProcessor`` (:meth:`to_dict`), so that transformers' ``AutoProcessor``
    and vLLM load a trained folder without vqathinker.
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
        question: str | None = None,
        prompt_style: str = "default",
        chat_template=None,
        **kwargs,
    ):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
        self.image_seq_length = image_seq_length
        self.num_frames = num_frames
        self.motion = motion
        self.question = question
        self.prompt_style = prompt_style
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

    def to_dict(self) -> dict:
        """The saved ``processor_config.json``: transformers' ``InternVLProcessor`` layout (its class name and
        its video processor, default settings) plus ``num_frames``, ``motion``, ``question`` and ``prompt_style``,
        which it ignores."""
        return {
            **super().to_dict(),
            "processor_class": STOCK_PROCESSOR_CLASS,
            "video_processor": {"video_processor_type": STOCK_VIDEO_PROCESSOR},
        }

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


def count_image_blocks(conversation: list[dict]) -> int:
    """Number of ``{"type": "image"}`` blocks of a conversation: the frames its prompt expects."""
    return sum(
        1
        for message in conversation
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "image"
    )


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
        num_blocks = count_image_blocks(conversation)
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


def prompt_token_ids(processor: VideoInternVLProcessor, conversation: list[dict]) -> list[int]:
    """The token ids :func:`prepare_inputs` gives one conversation (unpadded), without processing any image:
    each image block expanded to ``<img>`` + ``<IMG_CONTEXT>`` × tokens-per-frame + ``</img>``. What vLLM takes
    as a prompt beside the frames."""
    if processor.motion:
        raise ValueError(
            "prompt_token_ids: a model with the motion branch takes its prompts from prepare_inputs"
        )
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    frame = (
        processor.start_image_token
        + processor.image_token * tokens_per_frame(processor)
        + processor.end_image_token
    )
    return processor.tokenizer(text.replace(processor.image_token, frame), add_special_tokens=False)[
        "input_ids"
    ]
