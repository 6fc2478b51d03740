"""``VQAGRPOTrainer``: trl's ``GRPOTrainer`` for scoring video quality with InternVL.

How one step flows through it, and every trl method it overrides, is in docs/architecture.md.

What it adds to trl 1.16, and where:

- Frames, lazily (``_generate_and_score_completions``). Dataset rows carry a ``video`` path and a structured
  ``prompt`` with one ``{"type": "image"}`` block per frame. Each generation batch decodes every distinct
  video once (its G consecutive copies share the same frame list) and hands the frames to trl as the row's
  ``images``: trl fills the image blocks, and both the rollout generation and the log-prob / loss forward
  passes receive the ``pixel_values`` (trl has no video column; a ``{"type": "video"}`` block would train
  with no pixels in the loss and no error).
- Undecodable videos never stop a run: the video gets black frames for this step, every reward of its
  rollouts is NaN, so trl gives them a zero advantage and leaves them out of the reward statistics and of
  the rank reward's comparisons; each failure is logged with its file and counted in
  ``data/decode_failures``. Only a generation batch in which every video fails raises (a wrong
  ``video_root`` should fail fast, not train on black frames).
- Batch-wide rewards over the GLOBAL batch (``_calculate_rewards``): trl calls reward functions per process,
  then gathers. A reward whose registry entry has ``batch_rewards`` (:class:`vqathinker.rewards.RewardSpec`;
  the rank reward, which compares every video with every other one) is recomputed after the gather with
  that function over the scores of all processes' score rows.
- Rows of several tasks (the dataset's ``task`` column: score, choice) share a batch: a reward that does not
  apply to a row gives None, which trl turns into NaN and leaves out of the weighted sum and the logged
  means; the temporal bonus only reaches rewards that apply. ``data/<task>_rows`` counts the rows per task.
- Temporal consistency (``temporal_consistency``): the same rows are rolled out once more on temporally
  perturbed frames (:mod:`vqathinker.data.perturb`, one perturbation per video, seeded by seed, step and
  video), scored with the same reward functions, and :func:`vqathinker.rewards.temporal_consistency_bonus`
  adds ``temporal_bonus`` to each compared reward (by name) of the rollouts that earn it. The perturbed
  rollouts are only scored: they never enter the loss. Logged: ``temporal/seconds`` (the extra time),
  ``temporal/<reward>/bonus_rate`` and ``temporal/<reward>/perturbed_mean``.
- Reward functions come from ``args.reward_funcs`` (names of :data:`vqathinker.rewards.REWARDS`, with
  ``args.reward_kwargs``); metrics are logged under those names (``rewards/rank/mean``...).
- Resuming a full-model checkpoint loads it through ``from_pretrained`` (``_load_from_checkpoint``):
  transformers 5.24's Trainer reads the safetensors with a raw ``load_state_dict``, but ``save_pretrained``
  writes InternVL's original key names (``vision_tower.*`` for ``model.vision_tower.*``), so every weight is
  missed with only a warning and training silently restarts from the initial weights (transformers#43701).
  DeepSpeed checkpoints (their own format) and PEFT adapters keep trl's path. The prompt order of each
  epoch is drawn from (seed, epoch) (:class:`EpochSeededRepeatSampler`), so a run resumed in a later epoch
  sees the same videos as an uninterrupted one.
- A batch-geometry check at start: a generation batch of one video, where the rank reward could never compare
  two videos, is refused (:func:`vqathinker.training.checks.check_batch_geometry`).
- A context-length check at start: frames × tokens per frame + text + ``max_completion_length`` must fit the
  language model's ``max_position_embeddings`` (trl has no ``max_prompt_length`` and never truncates images),
  and ``vllm_max_model_length`` when it is set.
- One vision pass per video (``share_vision``, default on). trl gives the model all G copies of a prompt, so
  the vision tower would encode every frame G times in the rollout generation, the old-policy and reference
  log-prob passes and the loss, and the motion trunk every clip G times.
  :func:`vqathinker.model.shared_vision.share_encoders` hooks the encoders of the policy and of the reference
  model so that each distinct frame / clip of a forward pass is encoded once and copied to its rows (exact
  matches only; gradients of the copies add up in the one encoding, so losses and gradients are the
  unshared ones). For the copies to meet in one forward pass, the buffered generation batch is shuffled by
  whole groups before it is cut into gradient-accumulation micro-batches (``_prepare_inputs``; trl shuffles
  rows). Image preprocessing is shared too: the G copies hold the same frame objects, which
  :class:`~vqathinker.model.processor.VideoInternVLProcessor` resizes and normalises once per call.
- One language-model pass per prompt (``shared_prompt``, default on). The G rows of a prompt repeat it in
  every log-prob pass (old policy, reference, loss): :mod:`vqathinker.model.shared_prompt` packs each
  distinct prompt with its rows' completions into one sequence with a block attention mask, with trl's
  positions, fused log-prob head and wrappers (``_get_per_token_logps_and_entropies``); the same per-token
  log-probs, entropies, losses and gradients, the prompt read once. Where that would not be exact (flash
  attention, images inside completions) trl's path runs and the reason is logged once.
- vLLM rollouts (``use_vllm``, trl's colocate and server modes) get the frames as each prompt's images
  (``multi_modal_data``). Colocate mode cannot pass processor options, so vLLM tiles with InternVL's dynamic
  tiling; frames are decoded at exactly the tile size, and a square image of the tile size gets the 1 × 1 grid
  and no thumbnail, i.e. one tile and ``tokens_per_frame`` tokens per frame, the prompt trl tokenised. vLLM has
  no motion branch: ``use_vllm`` with a motion model is refused. vLLM may sample the image-context token,
  which trl only suppresses in transformers' generate: such a rollout ends there (``_generate_single_turn``).
- The image-context token is masked out of the policy's and the reference's vocabulary
  (:mod:`vqathinker.model.output_mask`): trl samples without it and would score with it, and the mass GRPO
  moves off sampled tokens would pile up on it until rollouts turn to garbage and the KL explodes.

Everything else is trl's: loss types, reward scaling, num_iterations, clipping, the KL to the reference
model (``beta``), reward weights, sampling, PEFT, vLLM, completion logging, checkpointing.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import trl.trainer.grpo_trainer as trl_grpo
from accelerate.utils import gather, is_peft_model
from PIL import Image
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME
from trl import GRPOTrainer
from trl.extras.profiling import profiling_decorator

from vqathinker.data.records import TASKS
from vqathinker.data.video import VideoDecodeError, load_frames
from vqathinker.model.loading import cache_on_for_saving
from vqathinker.model.output_mask import mask_output_tokens
from vqathinker.model.processor import count_image_blocks, tile_size
from vqathinker.model.shared_prefill import shared_prefill
from vqathinker.model.shared_vision import share_encoders
from vqathinker.rewards import (
    REWARDS,
    SCORE_PARSE_PARAMS,
    get_reward_funcs,
    parse_scores,
)
from vqathinker.training.checks import check_batch_geometry, check_context_length
from vqathinker.training.configs import VQADataArguments, VQAGRPOConfig
from vqathinker.training.sampler import EpochSeededRepeatSampler, shuffling_whole_groups
from vqathinker.training.shared_prompt import SharedPromptMixin
from vqathinker.training.temporal import TemporalConsistencyMixin

logger = logging.getLogger(__name__)

TRL_CHECKPOINTING_CALLS = (
    r"`(is_gradient_checkpointing|gradient_checkpointing_(enable|disable))` is deprecated"
)
"""transformers 5.24's FutureWarning for the old checkpointing names that trl 1.16 calls around every
generation (whether checkpointing is on or off). It is addressed to trl, not to a recipe, and would repeat at
every step: the trainer ignores it. Other uses of the old names (``gradient_checkpointing`` in a config) still
warn."""


class VQAGRPOTrainer(SharedPromptMixin, TemporalConsistencyMixin, GRPOTrainer):
    """GRPO for video quality scoring: lazy frames, one vision pass per video, global rank reward, temporal
    consistency, vLLM rollouts of frame prompts.

    Args:
        model: an InternVL model (``vqathinker.model.loading.load_model_and_processor``), possibly a
            ``peft.PeftModel``.
        args: the training configuration; its reward and temporal options pick the rewards.
        train_dataset: rows with ``prompt`` (structured, one image block per frame), ``video`` (a path) and
            ``mos``, e.g. from ``vqathinker.data.datasets.build_dataset``.
        processing_class: the model's ``VideoInternVLProcessor`` (one tile per frame).
        data_args: for the decoding backend (default: ``VQADataArguments()``).
        eval_dataset, callbacks, optimizers, peft_config: as in ``trl.GRPOTrainer``.
    """

    def __init__(
        self,
        model,
        args: VQAGRPOConfig,
        train_dataset,
        processing_class,
        data_args: VQADataArguments | None = None,
        eval_dataset=None,
        callbacks=None,
        optimizers=(None, None),
        peft_config=None,
    ):
        if not isinstance(args, VQAGRPOConfig):
            raise TypeError(f"args must be a VQAGRPOConfig, got {type(args).__name__}")
        self.data_args = data_args or VQADataArguments()
        self._tile = tile_size(processing_class)
        if args.use_vllm and getattr(model.config, "use_motion", False):
            raise ValueError(
                "use_vllm with the motion branch: vLLM has no implementation of it (its rollouts would ignore the "
                "motion token); generate with transformers (use_vllm: false) or load the model without motion"
            )
        check_batch_geometry(args)
        check_context_length(model, processing_class, train_dataset, args)
        reward_funcs = get_reward_funcs(
            args.reward_funcs, args.reward_kwargs, num_generations=args.num_generations
        )
        with reference_from_policy(model, args):
            super().__init__(
                model=model,
                reward_funcs=reward_funcs,
                args=args,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                callbacks=callbacks,
                optimizers=optimizers,
                peft_config=peft_config,
            )
        # trl samples without the image-context token; the policy and the reference score without it too.
        for scorer in (self.model, self.ref_model):
            if scorer is not None:
                mask_output_tokens(self.accelerator.unwrap_model(scorer), [processing_class.image_token_id])
        # Metrics and the temporal bonus go by the recipe's names (rewards/rank/mean, ...).
        self.reward_func_names = list(args.reward_funcs)
        # Rewards that compare videos with each other, recomputed over the global batch: column → (fn, params).
        self._batch_rewards = {
            i: (REWARDS[name].batch_rewards, REWARDS[name].batch_params(kwargs), _score_parsing(kwargs))
            for i, name in enumerate(args.reward_funcs)
            if REWARDS[name].batch_rewards is not None
            for kwargs in [args.reward_kwargs.get(name, {})]
        }
        self._failed_rows: list[bool] = []
        # One encoding per distinct frame / motion clip in every forward pass (generation, log-probs, loss).
        self.shared_encoders = share_encoders([self.model, self.ref_model]) if args.share_vision else []

    def train(self, *args, **kwargs):
        """trl's training loop, without transformers' per-step warning about the names trl calls
        (:data:`TRL_CHECKPOINTING_CALLS`); every other warning is shown."""
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", TRL_CHECKPOINTING_CALLS, FutureWarning, "transformers.modeling_utils"
            )
            return super().train(*args, **kwargs)

    @profiling_decorator
    def _prepare_inputs(self, generation_batch):
        """trl's buffering of a generation batch into micro-batches, shuffling whole groups (``share_vision``).

        trl shuffles the rows of the generation batch before cutting it into ``steps_per_generation``
        gradient-accumulation micro-batches, which scatters the G rollouts of a video over several of them:
        each would encode the video again. Here groups are shuffled, so a micro-batch holds whole groups (or
        part of one when G exceeds ``per_device_train_batch_size``). Which rows share a micro-batch does not
        change the step's gradient, except for ``bnpo`` (normalised by each micro-batch's own token count) and
        the entropy bonus, which weigh micro-batches as they do under trl's row shuffle.
        """
        if not (self.args.share_vision and self.model.training):
            return super()._prepare_inputs(generation_batch)
        with shuffling_whole_groups(self.num_generations):
            return super()._prepare_inputs(generation_batch)

    # ------------------------------------------------------------------------------------------- vLLM
    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        """trl's rollouts; a vLLM rollout that samples the image-context token ends there with EOS.

        With ``shared_prompt``, transformers' ``generate`` prefills each distinct prompt once and samples its
        G rollouts from that cache (:func:`vqathinker.model.shared_prefill.shared_prefill`).

        trl keeps transformers' ``generate`` from sampling ``<IMG_CONTEXT>`` (``suppress_tokens``), not vLLM.
        One such token in a completion leaves the loss forward with more image tokens than frame features
        ("Image features and image tokens do not match"): the run would stop. The completion is cut before
        it and closed with EOS, whose sampling log-prob is unknown (None: trl skips the importance-sampling
        correction for that token).
        """
        prefill = contextlib.nullcontext()
        if self.args.shared_prompt and not (self.use_vllm or self.use_transformers_continuous_batching):
            prefill = shared_prefill(
                self.accelerator.unwrap_model(self.model),
                image_token_id=self.processing_class.image_token_id,
                tokens_per_tile=self.processing_class.image_seq_length,
                motion_token_id=getattr(self.model.config, "motion_token_id", None),
            )
        with prefill:
            completion_ids, logprobs = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        if not self.use_vllm:
            return completion_ids, logprobs
        image_token, eos = self.processing_class.image_token_id, self.eos_token_ids[0]
        cut = 0
        for i, ids in enumerate(completion_ids):
            ids = list(ids)
            if image_token in ids:
                end = ids.index(image_token)
                completion_ids[i] = ids[:end] + [eos]
                if logprobs is not None:
                    logprobs[i] = list(logprobs[i][:end]) + [None]
                cut += 1
        if cut:
            logger.warning("%d vLLM rollouts sampled the image-context token: ended there with EOS", cut)
        return completion_ids, logprobs

    # ----------------------------------------------------------------------------------------- frames
    def _generate_and_score_completions(self, inputs: list[dict]) -> dict:
        inputs = self._attach_frames(inputs)
        return super()._generate_and_score_completions(inputs)

    def _attach_frames(self, inputs: list[dict]) -> list[dict]:
        """Rows with their frames as ``images``, each distinct video decoded once for all its copies."""
        mode = "train" if self.model.training else "eval"
        start = time.perf_counter()
        frames_of: dict[str, list[Image.Image]] = {}
        failed: set[str] = set()
        for row in inputs:
            video = row["video"]
            if video in frames_of:
                continue
            num_frames = count_image_blocks(row["prompt"])
            try:
                frames_of[video] = load_frames(
                    video,
                    num_frames,
                    size=self._tile,
                    backend=self.data_args.decode_backend,
                    sampling=self.data_args.frame_sampling,
                )
            except VideoDecodeError as error:
                logger.warning("video skipped this step (rewards NaN, advantage 0): %s", error)
                frames_of[video] = [Image.new("RGB", (self._tile, self._tile))] * num_frames
                failed.add(video)
        self._failed_rows = [row["video"] in failed for row in inputs]
        device = self.accelerator.device
        num_failed = gather(torch.tensor([len(failed), len(frames_of)], device=device).view(1, 2)).sum(dim=0)
        if num_failed[0] == num_failed[1]:
            raise RuntimeError(
                f"none of the {int(num_failed[1])} videos of this generation batch could be decoded (see the "
                "warnings above): check video_root and the video files, e.g. with `vqathinker check-data`"
            )
        self._metrics[mode]["data/decode_failures"].append(float(num_failed[0]))
        self._metrics[mode]["data/decode_seconds"].append(time.perf_counter() - start)
        tasks = [row.get("task", "score") for row in inputs]  # rows per task (score, choice), all processes
        counts = gather(torch.tensor([[tasks.count(t) for t in TASKS]], device=device)).sum(dim=0)
        for task, count in zip(TASKS, counts.tolist(), strict=True):
            self._metrics[mode][f"data/{task}_rows"].append(float(count))
        return [{**row, "images": frames_of[row["video"]]} for row in inputs]

    # ------------------------------------------------------------------------------------- checkpoints
    def _get_train_sampler(self, dataset=None) -> EpochSeededRepeatSampler:
        return EpochSeededRepeatSampler(
            data_source=self.train_dataset if dataset is None else dataset,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=self.args.seed,
        )

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """trl's save (checkpoints included) with ``use_cache`` on in the saved config: gradient checkpointing
        turns it off for training only (:func:`vqathinker.model.loading.cache_on_for_saving`)."""
        with cache_on_for_saving(self.accelerator.unwrap_model(self.model)):
            super().save_model(output_dir, _internal_call)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Load a full-model checkpoint the way ``from_pretrained`` does (key renaming included), strictly."""
        model = self.accelerator.unwrap_model(self.model if model is None else model)
        folder = Path(resume_from_checkpoint)
        full_weights = (folder / SAFE_WEIGHTS_NAME).is_file() or (folder / SAFE_WEIGHTS_INDEX_NAME).is_file()
        if is_peft_model(model) or self.is_fsdp_enabled or not full_weights:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        logger.info("loading the weights of %s", folder)
        saved = type(model).from_pretrained(folder, dtype=model.dtype, device_map=None)
        model.load_state_dict(saved.state_dict(), strict=True)

    # ---------------------------------------------------------------------------------------- rewards
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        """trl's gathered rewards [all rollouts of all processes, reward funcs], plus our global terms."""
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        failed = self._gather_flags(self._failed_rows)
        rewards = self._batch_wide_rewards(rewards, inputs, completions, failed)
        rewards[failed] = torch.nan
        if self.args.temporal_consistency and self.model.training:
            rewards = self._add_temporal_bonus(rewards, inputs, failed)
        return rewards

    def _num_generations(self) -> int:
        return self.num_generations if self.model.training else self.num_generations_eval

    def _gather_flags(self, flags: list[bool]) -> torch.Tensor:
        return gather(torch.tensor(flags, dtype=torch.bool, device=self.accelerator.device))

    def _batch_wide_rewards(
        self, rewards: torch.Tensor, inputs, completions, failed: torch.Tensor
    ) -> torch.Tensor:
        """Recompute the batch-wide reward columns over the score rows of every process (failed videos and
        multiple-choice rows left out, with NaN)."""
        if not self._batch_rewards:
            return rewards
        device = self.accelerator.device
        is_score = [row.get("task", "score") == "score" for row in inputs]
        mos = [float(row["mos"]) if score else np.nan for row, score in zip(inputs, is_score, strict=True)]
        mos = torch.tensor(mos, dtype=torch.float64, device=device)
        group = self._num_generations()
        mos = gather(mos).view(-1, group)[:, 0].cpu().numpy()
        skip = failed | ~self._gather_flags(is_score)
        keep = ~skip.view(-1, group)[:, 0].cpu().numpy()
        for column, (batch_rewards, params, parsing) in self._batch_rewards.items():
            scores = [np.nan if p is None else p[0] for p in parse_scores(completions, **parsing)]
            preds = torch.tensor(scores, dtype=torch.float64, device=device)
            preds = gather(preds).view(-1, group).cpu().numpy()
            values = np.full(preds.shape, np.nan)
            if keep.any():
                values[keep] = batch_rewards(preds[keep], mos[keep], **params)
            rewards[:, column] = torch.as_tensor(
                values.reshape(-1), dtype=rewards.dtype, device=rewards.device
            )
        return rewards


def _score_parsing(reward_kwargs: dict) -> dict:
    """The entries of a reward's parameters that choose how its scores are read (``parse``, ``seed``)."""
    return {key: value for key, value in reward_kwargs.items() if key in SCORE_PARSE_PARAMS}


@contextlib.contextmanager
def reference_from_policy(model, args: VQAGRPOConfig):
    """Within it, trl's KL reference model is a copy of ``model`` when trl could not rebuild it from disk.

    trl 1.16 builds the reference (``beta`` != 0, no PEFT) by loading ``config._name_or_path`` again. For a
    remote-code checkpoint that loses what ``load_model_and_processor`` set up (vqathinker's chat model, the
    image token id), and a fresh motion branch would be drawn anew: the initial policy itself is the exact
    reference. Under ZeRO-3 the parameters are already partitioned and cannot be copied.
    """
    config = model.config
    rebuildable = config.model_type != "internvl_chat" and not getattr(config, "use_motion", False)
    if args.beta == 0.0 or is_peft_model(model) or rebuildable:
        yield
        return
    if is_deepspeed_zero3_enabled():
        raise ValueError(
            "beta != 0 needs a reference model, which trl rebuilds from disk under ZeRO-3; that cannot rebuild "
            "a remote-code InternVL or a model with the motion branch: use ZeRO-2 or beta 0"
        )
    create = trl_grpo.create_model_from_path
    trl_grpo.create_model_from_path = lambda *args, **kwargs: copy.deepcopy(model)
    try:
        yield
    finally:
        trl_grpo.create_model_from_path = create
