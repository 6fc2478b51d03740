"""GRPO on a batch mixing score rows and multiple-choice rows (tiny InternVL, real mp4s): every reward scores
its own rows only, the rank reward compares the score rows of the global batch, no reward fails on the other
kind, and two training steps (with the temporal bonus on rank and choice) run."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from tests.grpo_helpers import NUM_FRAMES, TWO_STEPS, cpu_grpo_args
from vqathinker.data.choices import format_question
from vqathinker.data.prompts import QUALITY_QUESTION, build_choice_conversation, build_conversation
from vqathinker.model.loading import load_model_and_processor
from vqathinker.rewards import (
    choice_reward,
    completion_text,
    fidelity_rank_rewards,
    format_reward,
    parse_score,
)
from vqathinker.training.configs import VQAModelConfig
from vqathinker.training.trainer import VQAGRPOTrainer

OPTIONS = ["too dark", "too bright", "well exposed"]
REWARD_FUNCS = ["rank", "reg", "choice", "format"]


def mixed_dataset(videos) -> Dataset:
    """Two score rows (the darkest and brightest clip) and two multiple-choice rows (the middle clips)."""
    question = format_question("How is the exposure of this video?", OPTIONS)
    score = {"prompt": build_conversation(QUALITY_QUESTION, NUM_FRAMES), "task": "score", "answer": None}
    choice = {"prompt": build_choice_conversation(question, len(OPTIONS), NUM_FRAMES), "task": "choice"}
    rows = [
        {**score, "video": videos[0][0], "mos": videos[0][1], "options": []},
        {**choice, "video": videos[1][0], "mos": None, "answer": "A", "options": OPTIONS},
        {**choice, "video": videos[2][0], "mos": None, "answer": "C", "options": OPTIONS},
        {**score, "video": videos[3][0], "mos": videos[3][1], "options": []},
    ]
    return Dataset.from_list([{**row, "id": str(i)} for i, row in enumerate(rows)])


def make_trainer(model_dir, videos, tmp_path, **overrides) -> VQAGRPOTrainer:
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(model_dir)).model_options()
    )
    # one generation batch of the 4 rows (G = 2), trained on in 2 micro-batches
    settings = {
        "reward_funcs": REWARD_FUNCS,
        "gradient_accumulation_steps": 2,
        "activation_checkpointing": False,
    }
    args = cpu_grpo_args(tmp_path / "out", **{**TWO_STEPS, **settings, **overrides})
    return VQAGRPOTrainer(
        model=model, args=args, train_dataset=mixed_dataset(videos), processing_class=processor
    )


def test_rewards_of_a_mixed_generation_batch(answering_model_dir, graded_videos, tmp_path):
    trainer = make_trainer(answering_model_dir, graded_videos, tmp_path)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    assert sorted(row["task"] for row in batch) == ["choice"] * 4 + ["score"] * 4
    trainer._generate_and_score_completions(batch)
    logged = {name: np.array(values) for name, values in trainer._logs["rewards"].items()}
    texts = [completion_text(c) for c in trainer._logs["completion"]]
    is_score = np.array([row["task"] == "score" for row in batch])

    # the rank reward compares the two score videos with each other only
    scores = np.array([np.nan if s is None else s for s in map(parse_score, texts)]).reshape(4, 2)
    mos = np.array([np.nan if row["mos"] is None else row["mos"] for row in batch[::2]])
    score_videos = is_score[::2]
    expected = np.full((4, 2), np.nan)
    expected[score_videos] = fidelity_rank_rewards(scores[score_videos], mos[score_videos])
    np.testing.assert_allclose(logged["rank"].reshape(4, 2), expected, rtol=1e-6)
    assert np.isfinite(logged["rank"][is_score]).all()  # the warm-started model answers scores
    # reg pays score rows, choice pays choice rows, format both (NaN: trl's None)
    assert np.isfinite(logged["reg"][is_score]).all() and np.isnan(logged["reg"][~is_score]).all()
    assert np.isnan(logged["choice"][is_score]).all() and np.isfinite(logged["choice"][~is_score]).all()
    columns = {key: [row[key] for row in batch] for key in ("task", "answer", "options")}
    np.testing.assert_array_equal(
        logged["choice"][~is_score], np.array(choice_reward(texts, **columns))[~is_score]
    )
    np.testing.assert_array_equal(logged["format"], format_reward(texts, **columns))
    assert np.isfinite(np.array(trainer._logs["advantages"])).all()
    metrics = trainer._metrics["train"]
    assert metrics["data/score_rows"] == [4.0] and metrics["data/choice_rows"] == [4.0]
    assert np.isnan(metrics["rewards/choice/mean"][0]) or 0 <= metrics["rewards/choice/mean"][0] <= 1


@pytest.mark.parametrize("temporal", [False, True], ids=["plain", "temporal"])
def test_two_steps_on_mixed_batches(answering_model_dir, graded_videos, tmp_path, temporal):
    overrides = (
        {"temporal_consistency": True, "temporal_reward_names": ["rank", "choice"]} if temporal else {}
    )
    trainer = make_trainer(answering_model_dir, graded_videos, tmp_path, **overrides)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert np.isfinite(entry["loss"]) and entry["data/decode_failures"] == 0
        assert entry["data/score_rows"] == 4 and entry["data/choice_rows"] == 4
        assert np.isfinite(entry["rewards/rank/mean"]) and np.isfinite(entry["rewards/reg/mean"])
        assert np.isfinite(entry["rewards/format/mean"]) and 0 <= entry["rewards/choice/mean"] <= 1
        if temporal:
            assert (
                0 <= entry["temporal/rank/bonus_rate"] <= 1 and 0 <= entry["temporal/choice/bonus_rate"] <= 1
            )
