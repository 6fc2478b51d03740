"""Remote-code InternVL checkpoints (model_type ``internvl_chat``) loaded through vqathinker's chat model.

``OpenGVLab/InternVL3-8B`` and the VQAThinker release ship their model class as remote code. vqathinker
loads them only after ``vqathinker patch-checkpoint DIR`` replaced that class with ours
(``vqathinker/model/patch/modeling_internvl_chat.py``, see :mod:`vqathinker.model.patching`), and only then with
``trust_remote_code``: the code that runs is the checkpoint's configuration / InternViT / conversation
files plus our chat model. :func:`vqathinker.model.loading.load_model_and_processor` loads
through this module when ``config.json`` says ``internvl_chat``.

The processor is the same :class:`~vqathinker.model.processor.VideoInternVLProcessor` as for HF-format
checkpoints (one tile per frame, ``<img>`` + ``<IMG_CONTEXT>`` × tokens + ``</img>`` per frame), built from
the checkpoint's tokenizer, an InternVL image processor at the model's tile size, and a chat template with
the system message of the checkpoint's conversation template (what the original ``chat()`` sends). A folder
saved by a vqathinker run has its processor saved alongside, and that one is loaded as it is.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers.dynamic_module_utils import get_imports

from vqathinker.model.patching import (
    MODELING_FILE,
    CheckpointLayoutError,
    check_remote_checkpoint,
    is_vqathinker_modeling,
)
from vqathinker.model.processor import (
    IMAGE_TOKENS,
    VideoInternVLProcessor,
    chat_template,
    one_tile_image_processor,
)

REMOTE_MODEL_TYPE = "internvl_chat"
VISION_PREFIX = "vision_model."
PROJECTOR_PREFIX = "mlp1."
LLM_PREFIXES = ("language_model.",)
"""Parameter-name prefixes of the three parts of the remote-code InternVLChatModel."""

REMOTE_EXTRA = "remote"
"""The package extra with what the checkpoints' own files import (timm, and torchvision through it)."""


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_remote_imports(path: str | os.PathLike) -> None:
    """Fail at once, naming the extra to install, when the checkpoint's Python files import a missing package.

    InternViT's file imports timm (which imports torchvision); without them transformers would fail later,
    midway through loading, with a bare ``pip install timm``. Imports inside ``try`` blocks are optional and
    not checked (transformers' own reading of the files, ``get_imports``).
    """
    missing = sorted(
        {
            name
            for file in sorted(Path(path).glob("*.py"))
            for name in get_imports(file)
            if not _installed(name)
        }
    )
    if missing:
        raise ImportError(
            f"{path}: the checkpoint's remote code imports {', '.join(missing)}, not installed here. The InternVL "
            f"remote-code files need timm and torchvision: pip install 'vqathinker[{REMOTE_EXTRA}]' "
            f"(`GPU=1 bash setup.sh` installs it)."
        )


def is_remote_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a local folder whose ``config.json`` has model_type ``internvl_chat``."""
    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        return False
    try:
        return json.loads(config_path.read_text(encoding="utf-8")).get("model_type") == REMOTE_MODEL_TYPE
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def check_patched(path: str | os.PathLike) -> None:
    """Refuse a remote-code checkpoint whose modeling file is not vqathinker's, saying how to patch it."""
    try:
        check_remote_checkpoint(path)
    except CheckpointLayoutError as error:
        raise CheckpointLayoutError(f"cannot load the remote-code InternVL checkpoint: {error}") from error
    if not is_vqathinker_modeling((Path(path) / MODELING_FILE).read_bytes()):
        raise ValueError(
            f"{str(path)!r} is a remote-code InternVL checkpoint with its original {MODELING_FILE}; vqathinker "
            f"runs it with its own chat model: `vqathinker patch-checkpoint {path}` (revert with --revert)"
        )


def load_remote_tokenizer(path: str | os.PathLike, revision: str = "main"):
    """The checkpoint's tokenizer with the InternVL image markers registered (loaded with its remote code)."""
    return AutoTokenizer.from_pretrained(
        path,
        revision=revision,
        trust_remote_code=True,
        extra_special_tokens=IMAGE_TOKENS,
        padding_side="left",
    )


def load_remote_config(path: str | os.PathLike, revision: str = "main"):
    """The checkpoint's ``InternVLChatConfig`` (its own configuration file, hence ``trust_remote_code``)."""
    return AutoConfig.from_pretrained(path, revision=revision, trust_remote_code=True)


def load_remote_model(path: str | os.PathLike, config, **from_pretrained_kwargs):
    """vqathinker's ``InternVLChatModel`` with the checkpoint's weights; ``config.image_token_id`` must be set.

    Returns ``(model, loading_info)`` (``loading_info["missing_keys"]`` tells a fresh motion branch).
    """
    model, loading_info = AutoModel.from_pretrained(
        path, config=config, trust_remote_code=True, output_loading_info=True, **from_pretrained_kwargs
    )
    model.img_context_token_id = config.image_token_id
    return model, loading_info


def build_remote_processor(tokenizer, model, num_frames: int = 6):
    """A :class:`VideoInternVLProcessor` for ``model``: its tile size, tokens per tile and system message."""
    vision = model.config.vision_config
    tile = model.config.force_image_size or vision.image_size
    return VideoInternVLProcessor(
        image_processor=one_tile_image_processor(tile),
        tokenizer=tokenizer,
        image_seq_length=model.num_image_token,
        num_frames=num_frames,
        chat_template=chat_template(model.system_message),
    )
