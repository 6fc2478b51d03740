"""Every argument dataclass of vqathinker, parsed from YAML recipes and the command line.

As in trl / open-r1 scripts, each field has its help text, and ``trl.TrlParser`` (training, demo) or
``transformers.HfArgumentParser`` (evaluation, prediction) reads them; a flag is spelled with underscores, as
the field (``--num_frames``), and the hyphenated form is accepted too (``--num-frames``).

- :class:`VQADataArguments`: where the videos and MOS labels come from and how frames are sampled.
- :class:`VQAModelConfig`: ``trl.ModelConfig`` plus InternVL-specific options (freezing, motion).
- :class:`VQAGRPOConfig`: ``trl.GRPOConfig`` plus the reward, temporal-consistency and sharing options.
- :class:`InferenceArguments`: model and generation options of ``evaluate`` and ``predict``.
- :class:`EvalArguments`: which benchmarks ``evaluate`` scores and where it writes.
- :class:`DemoArguments`: the CPU demo's ladder and held-out scoring.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from trl import GRPOConfig, ModelConfig, get_peft_config, get_quantization_config

from vqathinker.data.perturb import PERTURBATIONS
from vqathinker.data.records import TASKS
from vqathinker.data.sampling import FRAME_SAMPLINGS
from vqathinker.demo.ladder import DEFECTS, LEARNABLE_DEFECTS
from vqathinker.evaluation.backends import BACKENDS, BackendOptions
from vqathinker.evaluation.inference import SCORE_MODES, GenerationOptions
from vqathinker.model.loading import ModelOptions
from vqathinker.model.motion import PROJECTOR_INITS
from vqathinker.model.slowfast import BATCH_NORM_MODES, POOLINGS
from vqathinker.rewards import get_reward_funcs
from vqathinker.training.environment import bf16_device_available, check_report_backends
from vqathinker.training.warmstart import THINK_PHRASE

DECODE_BACKENDS = ["pyav", "decord", "auto"]


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
            "choices": DECODE_BACKENDS,
        },
    )
    frame_sampling: str = field(
        default="centre",
        metadata={
            "help": "Which frames: 'centre' (segment centres, by time for variable frame rates) or 'release' (the "
            "release's int(s/2 + round(s*i)), s = (frames - 1) / num_frames, by index; 0-2 frames earlier).",
            "choices": list(FRAME_SAMPLINGS),
        },
    )
    prompt_style: str = field(
        default="default",
        metadata={
            "help": "Prompt layout: 'default' ('Frame1: <image>') or 'release' (the release's 'Frame1:<image>', "
            "no space); see vqathinker.data.prompts.",
            "choices": ["default", "release"],
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
    save_merged: bool = field(
        default=True,
        metadata={
            "help": "A LoRA run (use_peft) also writes output_dir/merged: the adapter merged into the base "
            "weights, a full checkpoint that stock transformers, vLLM and evaluate load."
        },
    )

    motion_pooling: str | None = field(
        default=None,
        metadata={
            "help": "Pooling of the SlowFast feature maps: 'mean' (ours) or 'release' (the release's repeat-interleave "
            "+ (8,7,7)/(32,7,7) average pools at stride 1, centre-weighted). None: the checkpoint's ('release' for "
            "the release's own checkpoint), else 'mean'.",
            "choices": [None, *POOLINGS],
        },
    )
    motion_batch_norm: str | None = field(
        default=None,
        metadata={
            "help": "SlowFast BatchNorm: 'frozen' (ours: Kinetics statistics, always eval mode) or 'train' (the "
            "release's: batch statistics while training, running statistics drift and are saved). None: the "
            "checkpoint's, else 'frozen'.",
            "choices": [None, *BATCH_NORM_MODES],
        },
    )
    motion_init: str = field(
        default="default",
        metadata={
            "help": "Initialisation of a new motion projector: 'default' (normal, std 0.02) or 'release' (Linear "
            "weights U(0, 0.01), zero biases).",
            "choices": list(PROJECTOR_INITS),
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.motion_weights and not os.path.isfile(os.path.expanduser(self.motion_weights)):
            raise ValueError(
                f"motion_weights {self.motion_weights!r}: no such file. Download the Kinetics SlowFast-R50 "
                "checkpoint (pytorchvideo's SLOWFAST_8x8_R50.pyth) and give its local path (run_grpo_lsvq.sh: "
                "MOTION_WEIGHTS=/path/to/SLOWFAST_8x8_R50.pyth)"
            )

    def model_options(self) -> ModelOptions:
        """The loading options of these arguments (LoRA and quantization configs built by trl's helpers)."""
        return ModelOptions(
            model_name_or_path=self.model_name_or_path,
            revision=self.model_revision,
            dtype=self.dtype,
            attn_implementation=self.attn_implementation,
            quantization_config=get_quantization_config(self),
            lora=get_peft_config(self),
            freeze_vision_tower=self.freeze_vision_tower,
            freeze_projector=self.freeze_projector,
            freeze_llm=self.freeze_llm,
            use_motion=self.use_motion,
            motion_weights=self.motion_weights,
            motion_width=self.motion_width,
            motion_pooling=self.motion_pooling,
            motion_batch_norm=self.motion_batch_norm,
            motion_init=self.motion_init,
        )


@dataclass
class VQAGRPOConfig(GRPOConfig):
    """``trl.GRPOConfig`` plus the vqathinker reward, temporal-consistency, warm-start and logging options.

    The warm start's fields are here, beside ``learning_rate`` and the batch sizes, because they are a
    training phase's hyper-parameters (the data it runs on is ``VQADataArguments``', the training set).

    Everything of ``GRPOConfig`` keeps its meaning (loss_type, scale_rewards, num_iterations, epsilon /
    epsilon_high, beta, reward_weights, temperature, log_completions, ...). Defaults that differ from trl's:
    ``loss_type="grpo"`` and ``beta=0.04`` (the VQAThinker release's method), and ``log_multimodal=False``
    (it would keep every frame of every logged rollout in memory). Activation checkpointing is on unless set
    off, as in trl, but through transformers' ``activation_checkpointing``: trl's default sets the deprecated
    ``gradient_checkpointing``, which would warn in every run that did not name either field.
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
            "true frames beat the perturbed ones (docs/architecture.md). Costs one more generation per step."
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
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={
            "help": "Deprecated alias of `activation_checkpointing` (transformers 5.24); used only when "
            "`activation_checkpointing` is not set."
        },
    )
    warm_start_steps: int = field(
        default=0,
        metadata={
            "help": "Supervised steps before GRPO that teach the answer FORMAT only: each target is "
            "<think>{warm_start_phrase}</think><answer>X.XX</answer> with a random X.XX in 1..5 (a random letter on a "
            "multiple-choice row; a random warm_start_reasoning sentence as the reasoning when given), on the training "
            "videos (vqathinker.training.warmstart). For a model that never answers in format (the training-health "
            "warning says so). Saved to output_dir/warm_start, the KL reference model. 0: none."
        },
    )
    warm_start_batch_size: int = field(
        default=8, metadata={"help": "Videos per warm-start step, drawn at random from the training set."}
    )
    warm_start_learning_rate: float = field(
        default=1e-5,
        metadata={
            "help": "AdamW learning rate of the warm start (a pretrained model: ~1e-5 full, ~1e-4 LoRA; the "
            "demo's tiny random model: 1e-3)."
        },
    )
    warm_start_phrase: str = field(
        default=THINK_PHRASE,
        metadata={
            "help": "Fixed reasoning text of the warm start's targets.",
            "aliases": ["--think_phrase"],
        },
    )
    warm_start_reasoning: list[str] | None = field(
        default=None,
        metadata={
            "help": "Sentences the warm start's reasoning is drawn from: each target's <think> is one of them at "
            "random (independent of the video and of the answer) instead of warm_start_phrase. The demo's "
            "multi-task recipe fills it with its defect sentences, so that the reasoning's faithfulness starts "
            "at chance. None: warm_start_phrase."
        },
    )
    warm_start_reasoning_tasks: list[str] = field(
        default_factory=lambda: list(TASKS),
        metadata={
            "help": "Tasks (score, choice) whose warm-start targets draw their reasoning from "
            "warm_start_reasoning; the other rows keep warm_start_phrase. The demo's multi-task recipe gives "
            "the defect sentences to the questions only, so that a score's rollouts differ by what the model "
            "sees, not by a sentence drawn at random."
        },
    )
    warm_start_answers_follow_reasoning: bool = field(
        default=False,
        metadata={
            "help": "With warm_start_reasoning: a multiple-choice row whose drawn sentence names one of its options "
            "(by the consistency reward's keywords, reward_kwargs.consistency.keywords) gets that option as its "
            "answer instead of a random letter, so the warm-started model answers what its reasoning says (still "
            "with no link to the video). Needs consistency in reward_funcs (its weight may be 0). The demo's "
            "multi-task recipe sets it."
        },
    )
    no_signal_steps: int = field(
        default=3,
        metadata={
            "help": "Warn when for this many consecutive steps no answer held a score, or every group's rewards "
            "had zero spread (no advantage, no gradient); checked at each log (0: never warn)."
        },
    )
    no_signal_repeat_steps: int = field(
        default=50,
        metadata={"help": "Repeat that warning every this many steps while it holds."},
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
        bf16 = not self.fp16 if self.bf16 is None else self.bf16  # trl's default: bf16 unless fp16
        if (bf16 or self.bf16_full_eval) and not self.use_cpu and not bf16_device_available():
            raise ValueError(
                "bf16 needs a GPU with bfloat16 support, and this machine has none: on CPU add --bf16 false "
                "--use_cpu true (the model then trains in float32), or start from configs/grpo_cpu.yaml"
            )
        if self.activation_checkpointing is None and self.gradient_checkpointing is None:
            self.activation_checkpointing = True  # trl's default, without its deprecated field
        super().__post_init__()
        check_report_backends(self.report_to)
        if isinstance(self.reward_kwargs, str):  # a JSON string not starting with "{" (e.g. "null")
            self.reward_kwargs = json.loads(self.reward_kwargs)
        self.reward_kwargs = self.reward_kwargs or {}
        if self.warm_start_steps < 0 or self.warm_start_batch_size < 1 or self.warm_start_learning_rate <= 0:
            raise ValueError(
                "warm_start_steps must be >= 0, warm_start_batch_size >= 1 and warm_start_learning_rate > 0"
            )
        unknown = sorted(set(self.warm_start_reasoning_tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"warm_start_reasoning_tasks: unknown tasks {unknown}; known: {list(TASKS)}")
        if self.warm_start_reasoning is not None and (
            not self.warm_start_reasoning
            or not all(isinstance(p, str) and p.strip() for p in self.warm_start_reasoning)
        ):
            raise ValueError(
                f"warm_start_reasoning must list non-empty sentences, got {self.warm_start_reasoning!r}"
            )
        if self.warm_start_answers_follow_reasoning and "consistency" not in self.reward_funcs:
            raise ValueError(
                "warm_start_answers_follow_reasoning reads which option a sentence names with the consistency "
                "reward's keywords: add consistency to reward_funcs (weight 0 to log it only)"
            )
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

        self._check_rewards()

    def _check_rewards(self) -> None:
        """Reward names, weights and parameters, and the temporal-consistency options, checked at parse time."""
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


@dataclass
class InferenceArguments:
    """Model and generation options of ``vqathinker evaluate`` and ``vqathinker predict``."""

    model_name_or_path: str = field(
        metadata={
            "help": "InternVL checkpoint folder (a training output_dir) or Hub id.",
            "aliases": ["--model"],
        }
    )
    num_frames: int | None = field(
        default=None,
        metadata={
            "help": "Frames sampled per video (segment centres). None: the checkpoint's training setting "
            "(processor num_frames, 6 for InternVL checkpoints); the paper's evaluation used 12."
        },
    )
    frame_size: int | None = field(
        default=None,
        metadata={
            "help": "Side of each frame in pixels (one tile). None: the checkpoint's tile size (448 for InternVL3, "
            "256 tokens); the VQAThinker release evaluates at 560 (400 tokens). A multiple of patch / 0.5 (28)."
        },
    )
    question: str | None = field(
        default=None,
        metadata={
            "help": "The question asked of videos whose labels carry none (a VQAThinker test json, predict's "
            "videos); records with a question keep theirs. None: the one the model was trained with (recorded "
            "in its folder), or the release's LSVQ question for a folder without one and with --protocol release."
        },
    )
    batch_size: int = field(default=4, metadata={"help": "Videos per generate call."})
    max_new_tokens: int = field(
        default=1024, metadata={"help": "Generation limit per answer (think + answer)."}
    )
    decode_backend: str = field(
        default="pyav",
        metadata={
            "help": "Video decoder: 'pyav', 'decord' or 'auto' (first that works).",
            "choices": DECODE_BACKENDS,
        },
    )
    decode_workers: int = field(
        default=2,
        metadata={
            "help": "Processes decoding the next batches while the model answers the current one "
            "(0: decode each batch when it is needed)."
        },
    )
    device: str | None = field(
        default=None, metadata={"help": "Torch device. None: cuda when available, else cpu."}
    )
    backend: str = field(
        default="transformers",
        metadata={
            "help": "'transformers' (generate), or 'vllm' (the gpu extra; an HF-format folder, frames at its tile "
            "size, one process: --tensor_parallel_size for several GPUs).",
            "choices": list(BACKENDS),
        },
    )
    tensor_parallel_size: int = field(default=1, metadata={"help": "vLLM: GPUs the model is split over."})
    gpu_memory_utilization: float = field(
        default=0.9,
        metadata={"help": "vLLM: share of each GPU's memory it takes (weights and key-value cache)."},
    )
    dtype: str | None = field(
        default=None,
        metadata={
            "help": "Model dtype: 'bfloat16', 'float16' or 'float32'. None: bfloat16 on CUDA, float32 on CPU."
        },
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "Attention kernel. None: flash_attention_2 when installed on CUDA, else sdpa."},
    )
    num_samples: int = field(
        default=0,
        metadata={
            "help": "0: one greedy answer per video. N > 0: N answers sampled at `temperature`; the video's "
            "score is the interquartile mean of their scores, which one stray answer does not move (the CSV "
            "keeps each)."
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature with num_samples > 0."})
    score_mode: str = field(
        default="answer",
        metadata={
            "help": "An answer's score: 'answer', the number written in its <answer> block; 'expected', that "
            "number with each digit replaced by its expectation under the model's distribution there "
            "(probability-weighted, as Q-Align scores from its level tokens).",
            "choices": list(SCORE_MODES),
        },
    )

    def __post_init__(self):
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.batch_size < 1 or self.max_new_tokens < 1 or self.decode_workers < 0:
            raise ValueError("batch_size and max_new_tokens must be >= 1, decode_workers >= 0")
        if self.dtype not in (None, "bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be 'bfloat16', 'float16' or 'float32', got {self.dtype!r}")
        self.generation_options()  # num_samples, temperature, score_mode checked there

    def generation_options(self) -> GenerationOptions:
        """How each video is answered and scored."""
        return GenerationOptions(self.max_new_tokens, self.num_samples, self.temperature, self.score_mode)

    def backend_options(self, device: str, processes: int = 1) -> BackendOptions:
        """Where the answers are generated (``device`` for transformers, this many data-parallel processes)."""
        return BackendOptions(
            self.backend, device, self.tensor_parallel_size, self.gpu_memory_utilization, processes
        )

    def model_options(self) -> ModelOptions:
        """Loading options: the checkpoint in ``dtype`` (bfloat16 on CUDA, float32 on CPU by default)."""
        dtype = self.dtype or ("bfloat16" if str(self.resolved_device()).startswith("cuda") else "float32")
        return ModelOptions(
            model_name_or_path=self.model_name_or_path,
            dtype=dtype,
            attn_implementation=self.attn_implementation,
        )

    def resolved_device(self) -> str:
        """``device``, else cuda when available, else cpu."""
        import torch

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class EvalArguments:
    """Which benchmarks ``vqathinker evaluate`` scores and where it writes the results."""

    benchmarks: str | None = field(
        default=None,
        metadata={
            "help": "YAML list of benchmarks (configs/benchmarks.yaml); or give --dataset_config, --jsonl, --json "
            "or --qbench."
        },
    )
    only: str | None = field(
        default=None,
        metadata={"help": "Comma-separated benchmark keys of --benchmarks to run (default: all)."},
    )
    data_root: str | None = field(
        default=None,
        metadata={"help": "Folder the relative paths of --benchmarks are under. None: $VQA_DATA_ROOT."},
    )
    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Output folder. None: MODEL/eval for a local model, else eval/<model id>.",
            "aliases": ["--output"],
        },
    )
    jsonl: str | None = field(
        default=None, metadata={"help": "One ad-hoc benchmark: an LSVQ-style jsonl (needs --video_root)."}
    )
    json: str | None = field(
        default=None,
        metadata={
            "help": 'One ad-hoc benchmark: a VQAThinker test json {"annotations": [{"image_id", "score"}]} '
            "(needs --video_root)."
        },
    )
    dataset_config: str | None = field(
        default=None,
        metadata={
            "help": "A dataset config (configs/datasets/*.yaml): one benchmark per source, with its mos_range."
        },
    )
    qbench: str | None = field(
        default=None,
        metadata={
            "help": "One ad-hoc multiple-choice benchmark in the Q-Bench / Q-Bench-Video layout as published "
            "(Q_Bench_Video_dev.json; needs --video_root)."
        },
    )
    task: str | None = field(
        default=None,
        metadata={
            "help": "What --jsonl asks: 'score' (a MOS per video) or 'choice' (multiple-choice records). None: "
            "score, choice for --qbench.",
            "choices": ["score", "choice"],
        },
    )
    video_root: str | None = field(
        default=None, metadata={"help": "Video folder of --jsonl / --json / --qbench."}
    )
    mos_range: list[float] | None = field(
        default=None,
        metadata={
            "help": "MOS scale of --jsonl / --json as LOW HIGH (None: 1 5 for a jsonl): labels are checked against "
            "it and the CSV's pred_mos is the prediction mapped onto it; the metrics use the raw MOS."
        },
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Start every benchmark's CSV afresh instead of resuming it."}
    )
    protocol: str = field(
        default="default",
        metadata={
            "help": "'default' (ours: the checkpoint's frames, the training prompt, the last <answer>, unparsed left "
            "out) or 'release' (the release's test code: 12 frames, its test prompt, the first <answer>, unparsed "
            "scored 3.00 and counted, raw PLCC first); see vqathinker.evaluation.protocol.",
            "choices": ["default", "release"],
        },
    )


@dataclass
class DemoArguments:
    """Options of the demo that are not training options: the ladder and the scoring (the warm start's are
    :class:`VQAGRPOConfig`'s ``warm_start_*``, as for ``vqathinker train``)."""

    ladder_contents: int = field(default=16, metadata={"help": "Distinct moving scenes of the ladder."})
    ladder_heldout: int = field(
        default=6,
        metadata={"help": "Scenes held out for evaluation (never trained on, warm start included)."},
    )
    ladder_levels: int = field(
        default=3,
        metadata={"help": "Degradation levels per defect (MOS 4.5 pristine down to 1.5 at the last)."},
    )
    ladder_frames: int = field(default=16, metadata={"help": "Frames per ladder video (8 fps)."})
    ladder_size: int = field(
        default=64, metadata={"help": "Width and height of the ladder videos in pixels."}
    )
    defects: list[str] = field(
        default_factory=lambda: list(DEFECTS),
        metadata={
            "help": f"Defects of the ladder, from {list(DEFECTS)}; learnable: {list(LEARNABLE_DEFECTS)}."
        },
    )
    train_defects: list[str] | None = field(
        default=None,
        metadata={
            "help": "Defects whose videos are trained on (None: every one of defects); the others are held-out "
            "only (a probe of defects never trained on). The measurements are in configs/demo.yaml."
        },
    )
    vision: str = field(
        default="efficientnet-lite0",
        metadata={
            "help": "Vision tower of the tiny model the demo writes when no model_name_or_path is given: "
            "efficientnet-lite0 (a frozen ImageNet trunk, the `demo` extra) or internvit (random)."
        },
    )
    question: str = field(
        default="Rate the quality of this video.",
        metadata={
            "help": "The question of the ladder's records. A short one keeps the image tokens a large share of "
            "the tiny model's prompt (and the steps fast); the LSVQ default is vqathinker.data.prompts.QUALITY_QUESTION. "
            "The demo's model records it: evaluate and predict ask it of videos whose labels carry no question."
        },
    )
    choice_questions: bool = field(
        default=False,
        metadata={
            "help": "Train multi-task: besides scoring, answer 'Which problem dominates this video?' (one option per "
            "defect of the ladder) about every degraded training video, and measure on the held-out scenes, before "
            "and after GRPO, the attribution accuracy and whether the reasoning names the true defect "
            "(vqathinker.demo.attribution). The warm start's reasoning is then drawn from the defect sentences."
        },
    )
    choice_weight: float = field(
        default=1.0,
        metadata={
            "help": "With choice_questions: the weight of the questions' source in the training mix (the scores' "
            "is 1): round(weight x questions) samples."
        },
    )
    eval_samples: int = field(
        default=8,
        metadata={
            "help": "Sampled answers whose interquartile mean is each held-out video's score (0: one greedy "
            "answer)."
        },
    )
    attribution_samples: int = field(
        default=0,
        metadata={
            "help": "With choice_questions: answers per held-out attribution question, each graded (0: one greedy "
            "answer, as `vqathinker evaluate` grades a multiple-choice benchmark; N: N answers sampled like "
            "the rollouts, which also grades how sure the model is)."
        },
    )
    eval_batch_size: int = field(default=16, metadata={"help": "Held-out videos per generate call."})
    num_threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (None: torch's default)."}
    )

    def __post_init__(self):
        if self.attribution_samples < 0:
            raise ValueError(f"attribution_samples must be >= 0, got {self.attribution_samples}")
        if not self.choice_weight > 0:
            raise ValueError(f"choice_weight must be > 0, got {self.choice_weight}")
        if self.choice_questions and len(set(self.defects)) < 2:
            raise ValueError(
                f"choice_questions needs two defects or more to choose from, got defects {self.defects}"
            )

    def trained_defects(self) -> list[str]:
        """The ladder's defects that GRPO trains on (``train_defects`` in the order of ``defects``)."""
        return [d for d in self.defects if self.train_defects is None or d in self.train_defects]

    def ladder_options(self) -> dict:
        """Keyword arguments of :func:`vqathinker.demo.ladder.build_ladder` (besides the question and seed)."""
        return {
            "num_contents": self.ladder_contents,
            "num_heldout": self.ladder_heldout,
            "num_levels": self.ladder_levels,
            "defects": self.defects,
            "train_defects": self.train_defects,  # checked there: a subset of defects
            "num_frames": self.ladder_frames,
            "size": self.ladder_size,
            "show_progress": True,
        }

    def sampling_options(self, temperature: float, max_new_tokens: int, samples: int | None = None) -> dict:
        """How the held-out answers are sampled, like the rollouts: keyword arguments of
        :func:`vqathinker.demo.scoring.sampled_answers`, ``samples`` answers per video (default
        ``eval_samples``)."""
        return {
            "samples": self.eval_samples if samples is None else samples,
            "temperature": temperature,
            "max_new_tokens": max_new_tokens,
            "batch_size": self.eval_batch_size,
        }

    def scoring_options(self, temperature: float, max_new_tokens: int) -> dict:
        """Keyword arguments of :func:`vqathinker.demo.scoring.heldout_metrics`, sampled like the rollouts."""
        return {
            "question": self.question,
            **self.sampling_options(temperature, max_new_tokens),
            "overall_defects": self.trained_defects(),
        }
