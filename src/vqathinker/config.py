"""Configuration dataclasses, parsed from YAML recipes and the command line by ``trl.TrlParser``.

Three groups, as in trl / open-r1 scripts:

- :class:`VQADataArguments`: where the videos and MOS labels come from and how frames are sampled.
- :class:`VQAModelConfig`: ``trl.ModelConfig`` plus InternVL-specific options (freezing, tiles, motion).
- :class:`VQAGRPOConfig`: ``trl.GRPOConfig`` plus the reward and temporal-consistency options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig, ModelConfig


@dataclass
class VQADataArguments:
    """Data options of a training or evaluation run."""

    dataset_config: str | None = field(
        default=None,
        metadata={"help": "YAML dataset config (configs/datasets/*.yaml) mixing several jsonl files."},
    )
    data_jsonl: str | None = field(
        default=None,
        metadata={"help": "A single LSVQ-style jsonl file; used when `dataset_config` is not given."},
    )
    video_root: str | None = field(
        default=None,
        metadata={
            "help": "Folder the video paths of `data_jsonl` are relative to (default: the jsonl's folder)."
        },
    )
    mos_range: list[float] = field(
        default_factory=lambda: [1.0, 5.0],
        metadata={
            "help": "MOS scale of `data_jsonl` as [low, high]; mapped linearly to 1-5 (e.g. [0, 100])."
        },
    )
    max_samples: int | None = field(
        default=None,
        metadata={
            "help": "Use at most this many records of `data_jsonl`, a seeded random subset (None: all)."
        },
    )
    bad_records: str = field(
        default="error",
        metadata={
            "help": "What a malformed record does: 'error' stops with file:line, 'skip' counts and logs it.",
            "choices": ["error", "skip"],
        },
    )
    num_frames: int = field(
        default=6,
        metadata={"help": "Frames sampled per video (segment centres)."},
    )
    decode_backend: str = field(
        default="pyav",
        metadata={
            "help": "Video decoder: 'pyav', 'decord' or 'auto' (first that works).",
            "choices": ["pyav", "decord", "auto"],
        },
    )


@dataclass
class VQAModelConfig(ModelConfig):
    """``trl.ModelConfig`` plus the InternVL options of vqathinker."""

    freeze_vision_tower: bool = field(
        default=False,
        metadata={"help": "Keep the vision encoder's weights fixed."},
    )
    freeze_projector: bool = field(
        default=False,
        metadata={"help": "Keep the vision-to-language projector (mlp1 / multi_modal_projector) fixed."},
    )
    freeze_llm: bool = field(
        default=False,
        metadata={"help": "Keep the language model fixed (LoRA adapters, if any, still train)."},
    )


@dataclass
class VQAGRPOConfig(GRPOConfig):
    """``trl.GRPOConfig`` plus the vqathinker reward and rollout options."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "reg", "rank"],
        metadata={
            "help": "Reward names from vqathinker.rewards (see `get_reward_funcs`), one per reward_weights."
        },
    )
