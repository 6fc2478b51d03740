"""Configuration dataclasses, parsed from YAML recipes and the command line by ``trl.TrlParser``.

Three groups, as in trl / open-r1 scripts:

- :class:`VQADataArguments`: where the videos and MOS labels come from and how frames are sampled.
- :class:`VQAModelConfig`: ``trl.ModelConfig`` plus InternVL-specific options (freezing, tiles, motion).
- :class:`VQAGRPOConfig`: ``trl.GRPOConfig`` plus the reward and temporal-consistency options.
"""

from __future__ import annotations

import json
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
    use_motion: bool | None = field(
        default=None,
        metadata={
            "help": "Motion branch (a frozen SlowFast + a trained projector → one token per video after the frames). "
            "None: as the checkpoint has it (its config, or motion weights as in the VQAThinker release)."
        },
    )
    motion_weights: str | None = field(
        default=None,
        metadata={
            "help": "Local file of Kinetics SlowFast-R50 weights for the motion trunk (pytorchvideo's "
            "SLOWFAST_8x8_R50.pyth layout); never downloaded. Unset: the checkpoint's trunk, else random."
        },
    )
    motion_width: int | None = field(
        default=None,
        metadata={
            "help": "SlowFast channel width: 64 is R50 (2304 features), 8 a CPU-sized test trunk. None: the "
            "checkpoint's motion branch width, else 64."
        },
    )


@dataclass
class VQAGRPOConfig(GRPOConfig):
    """``trl.GRPOConfig`` plus the vqathinker reward, temporal-consistency and logging options.

    Everything of ``GRPOConfig`` keeps its meaning (loss_type, scale_rewards, num_iterations, epsilon /
    epsilon_high, beta, reward_weights, temperature, log_completions, ...). Defaults that differ from trl's:
    ``loss_type="grpo"`` and ``beta=0.04`` (the reference method, DESIGN §5), and ``log_multimodal=False``
    (it would keep every frame of every logged rollout in memory).
    """

    _VALID_DICT_FIELDS = GRPOConfig._VALID_DICT_FIELDS + ["reward_kwargs"]

    reward_funcs: list[str] = field(
        default_factory=lambda: ["format", "reg", "rank"],
        metadata={
            "help": "Reward names from vqathinker.rewards (see `get_reward_funcs`), one per reward_weights. "
            "'rank' is computed over the whole generation batch of all processes."
        },
    )
    reward_kwargs: dict | str | None = field(
        default=None,
        metadata={
            "help": 'Keyword arguments per reward name, e.g. {"reg": {"sigma": 0.5}} (JSON on the command line).'
        },
    )
    temporal_consistency: bool = field(
        default=False,
        metadata={
            "help": "Also roll out on temporally perturbed frames and give a bonus to rollouts whose rewards on the "
            "true frames beat the perturbed ones (DESIGN §5). Costs one more generation per step."
        },
    )
    temporal_perturbations: list[str] = field(
        default_factory=lambda: ["shuffle", "local_shuffle", "reverse", "jitter", "duplicate", "drop"],
        metadata={
            "help": "Perturbations to draw from (one per video and step), see vqathinker.data.perturb."
        },
    )
    temporal_reward_names: list[str] = field(
        default_factory=lambda: ["rank", "reg"],
        metadata={
            "help": "Rewards compared between true and perturbed frames, by name (each in reward_funcs)."
        },
    )
    temporal_thresholds: list[float] = field(
        default_factory=lambda: [0.5, 0.9],
        metadata={
            "help": "Per temporal_reward_names: a rollout gets the bonus on that reward only when its reward on the "
            "true frames is above this value."
        },
    )
    temporal_bonus: float = field(
        default=0.3,
        metadata={"help": "Added to each compared reward of a rollout that earns it."},
    )
    loss_type: str = field(
        default="grpo",
        metadata={
            "help": "trl's loss formulation: 'grpo' (the reference's: per-sequence mean, PPO clip, k3 KL), "
            "'dr_grpo', 'dapo', 'bnpo', 'cispo', 'sapo', 'luspo', 'vespo'."
        },
    )
    beta: float = field(
        default=0.04,
        metadata={"help": "KL coefficient to the frozen reference model (0 skips the reference model)."},
    )
    log_multimodal: bool = field(
        default=False,
        metadata={"help": "Keep the frames of logged completions for wandb/trackio tables (memory-hungry)."},
    )
    share_vision: bool = field(
        default=True,
        metadata={
            "help": "Encode each video's frames (and motion clip) once per forward pass, shared by its G rollouts, "
            "in generation, log-prob and loss passes, and keep each video's rollouts in one gradient-accumulation "
            "micro-batch. Same losses and gradients as False (trl's: every copy encoded, rows shuffled)."
        },
    )
    shared_prompt: bool = field(
        default=True,
        metadata={
            "help": "Let the G rollouts of a prompt share one language-model pass over it: in every log-prob pass "
            "(old policy, reference, loss) the rows with the same prompt and frames run as one packed sequence "
            "with a block attention mask, and transformers' generate prefills each distinct prompt once. Same "
            "log-probs, losses and gradients as False; needs eager or sdpa attention (otherwise, like anything it "
            "cannot share exactly, it runs unshared and logs why once)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.reward_kwargs, str):  # a JSON string not starting with "{" (e.g. "null")
            self.reward_kwargs = json.loads(self.reward_kwargs)
        self.reward_kwargs = self.reward_kwargs or {}
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns must be False: the trainer decodes the `video` column and the rewards read `mos`."
            )
        local_batch = self.per_device_train_batch_size * self.steps_per_generation
        if local_batch % self.num_generations != 0:
            raise ValueError(
                f"per_device_train_batch_size × steps_per_generation ({self.per_device_train_batch_size} × "
                f"{self.steps_per_generation} = {local_batch}) must be a multiple of num_generations "
                f"({self.num_generations}), so that the {self.num_generations} rollouts of a video stay on one process."
            )

        if (
            self.use_vllm
            and self.vllm_mode == "colocate"
            and self.vllm_max_model_length is not None
            and self.vllm_max_model_length <= self.max_completion_length
        ):
            raise ValueError(
                f"vllm_max_model_length ({self.vllm_max_model_length}) leaves no room for the prompt: it must cover "
                f"max_completion_length ({self.max_completion_length}) + frames × tokens per frame (256 for "
                "InternVL3) + the text; the trainer checks the exact prompt length at start"
            )

        from vqathinker.data.perturb import PERTURBATIONS
        from vqathinker.rewards import get_reward_funcs

        if not self.reward_funcs:
            raise ValueError("reward_funcs is empty: name at least one reward (e.g. [rank, reg, format])")
        get_reward_funcs(self.reward_funcs, self.reward_kwargs)  # unknown names or parameters raise here
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(
                f"reward_weights ({self.reward_weights}) must have one weight per reward_funcs ({self.reward_funcs})"
            )
        stray = [name for name in self.reward_kwargs if name not in self.reward_funcs]
        if stray:
            raise ValueError(f"reward_kwargs for {stray}, which are not in reward_funcs {self.reward_funcs}")
        if self.temporal_consistency:
            bad = [kind for kind in self.temporal_perturbations if kind not in PERTURBATIONS]
            if bad or not self.temporal_perturbations:
                raise ValueError(
                    f"temporal_perturbations {bad or self.temporal_perturbations}: choose from {list(PERTURBATIONS)}"
                )
            missing = [name for name in self.temporal_reward_names if name not in self.reward_funcs]
            if missing or not self.temporal_reward_names:
                raise ValueError(
                    f"temporal_reward_names {missing or self.temporal_reward_names} must be in reward_funcs "
                    f"{self.reward_funcs}"
                )
            if len(self.temporal_thresholds) != len(self.temporal_reward_names):
                raise ValueError("temporal_thresholds needs one value per temporal_reward_names")
