"""Temporal consistency: the rows rolled out again on temporally perturbed frames, and a bonus to the rollouts
whose video scored at least as well on its true frames (``temporal_consistency`` in the config).

A mixin of :class:`~vqathinker.training.trainer.VQAGRPOTrainer`, before ``trl.GRPOTrainer`` in its bases: here
``super()._calculate_rewards`` is trl's own. The perturbed rollouts are only scored: they never enter the loss.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import torch
from PIL import Image
from trl.data_utils import prepare_multimodal_messages

from vqathinker.data.perturb import perturb_frames
from vqathinker.rewards import temporal_consistency_bonus


class TemporalConsistencyMixin:
    """``_add_temporal_bonus``: re-roll on perturbed frames, score, add ``temporal_bonus`` where earned."""

    def _perturbed_rows(self, inputs: list[dict]) -> list[dict]:
        """The rows with their frames temporally perturbed: one draw per video, shared by its copies."""
        frames_of: dict[str, list[Image.Image]] = {}
        for row in inputs:
            video = row["video"]
            if video not in frames_of:
                seed = random.Random(f"{self.args.seed}:{self.state.global_step}:{video}")
                frames_of[video] = perturb_frames(row["images"], self.args.temporal_perturbations, seed)[1]
        return [{**row, "images": frames_of[row["video"]]} for row in inputs]

    def _add_temporal_bonus(
        self, rewards: torch.Tensor, inputs: list[dict], failed: torch.Tensor
    ) -> torch.Tensor:
        start = time.perf_counter()
        rows = self._perturbed_rows(inputs)
        prompts = [prepare_multimodal_messages(row["prompt"], images=row["images"]) for row in rows]
        # Every process generates here (collectives inside generation under ZeRO-3 / vLLM need all ranks).
        prompt_ids, images, multimodal_fields = self._tokenize_prompts(prompts)
        completion_ids, _ = self._generate_single_turn(
            prompt_ids, images, multimodal_fields, self.num_generations
        )
        texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        completions = [[{"role": "assistant", "content": text}] for text in texts]
        # Reward functions may log columns / metrics: keep the perturbed pass out of the true rollouts' logs.
        pending = self._pending_extra_logs, self._pending_metrics
        self._pending_extra_logs, self._pending_metrics = defaultdict(list), defaultdict(list)
        try:
            perturbed = super()._calculate_rewards(rows, prompts, completions, completion_ids)
        finally:
            self._pending_extra_logs, self._pending_metrics = pending
        perturbed = self._batch_wide_rewards(perturbed, rows, completions, failed)
        perturbed[failed] = torch.nan

        metrics = self._metrics["train"]
        for name, threshold in zip(
            self.args.temporal_reward_names, self.args.temporal_thresholds, strict=True
        ):
            column = self.reward_func_names.index(name)
            bonus = temporal_consistency_bonus(
                {name: rewards[:, column].cpu().numpy()},
                {name: perturbed[:, column].cpu().numpy()},
                num_generations=self.num_generations,
                compare=name,
                rollout_threshold=threshold,
                bonus=self.args.temporal_bonus,
            )
            rewards[:, column] += torch.as_tensor(bonus, dtype=rewards.dtype, device=rewards.device)
            applies = torch.isfinite(rewards[:, column]).cpu().numpy()  # rows the reward applies to
            if applies.any():
                metrics[f"temporal/{name}/bonus_rate"].append(float((bonus[applies] > 0).mean()))
            metrics[f"temporal/{name}/perturbed_mean"].append(torch.nanmean(perturbed[:, column]).item())
        metrics["temporal/seconds"].append(time.perf_counter() - start)
        return rewards
