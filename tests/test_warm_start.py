"""The warm start of ``vqathinker train`` (``warm_start_steps``): a format-only supervised pass on the training
videos before GRPO, the start of the KL reference model, not run again on resume."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter

import numpy as np
import pytest
import torch
from test_train_cli import write_recipe

from vqathinker.commands.train import main, parse_args
from vqathinker.data.choices import format_question
from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation, choice_question
from vqathinker.data.video import load_frames
from vqathinker.model.loading import load_model_and_processor
from vqathinker.model.processor import tile_size
from vqathinker.rewards import format_reward, parse_choice
from vqathinker.training import warmstart
from vqathinker.training.callbacks import HEALTH_FILE
from vqathinker.training.configs import VQAModelConfig
from vqathinker.training.run import build_trainer, warm_start_model
from vqathinker.training.warmstart import (
    WARM_START_DIR,
    WARM_START_FILE,
    DecodedFrames,
    draw_targets,
    format_target,
    warm_start,
)

# enough for the tiny random model to answer in format (tests/grpo_helpers.py: teach_answer_format)
WARM = {"warm_start_steps": 60, "warm_start_batch_size": 4, "warm_start_learning_rate": 3e-3}


def test_warm_start_settings_are_validated(tmp_path):
    base = ["--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false"]
    for flag, value in (("--warm_start_steps", "-1"), ("--warm_start_batch_size", "0")):
        with pytest.raises(ValueError, match="warm_start_steps must be >= 0, warm_start_batch_size >= 1"):
            parse_args([*base, flag, value])
    _, args, _ = parse_args([*base, "--think_phrase", "Looks like"])  # the demo's former flag
    assert args.warm_start_phrase == "Looks like" and args.warm_start_steps == 0


def test_a_multiple_choice_row_gets_a_random_option_letter_as_its_target():
    options = ["sharp", "blurry", "noisy"]
    targets = [format_target(draw, "p", num_options=3) for draw in (1.0, 2.4, 3.0, 4.99, 5.0)]
    assert [parse_choice(t, options) for t in targets] == [0, 1, 1, 2, 2]
    assert targets[0] == "<think>p</think><answer>A</answer>"
    rewards = format_reward(targets, task=["choice"] * 5, options=[options] * 5)
    assert rewards == [1.0] * 5
    assert format_target(3.14159, "p") == "<think>p</think><answer>3.14</answer>"  # a score row


def test_warm_start_reasoning_is_drawn_at_random_and_independently_of_the_answer():
    sentences = ["The video is dark.", "The video is blurry.", "The video is noisy."]
    rows = [0, 3] * 1500  # score rows and three-option rows
    targets = draw_targets(np.random.default_rng(0), rows, "unused", sentences)
    pattern = re.compile(r"<think>(.*)</think><answer>(.*)</answer>")
    pairs = [pattern.fullmatch(t).groups() for t in targets]
    assert {think for think, _ in pairs} == set(sentences)
    counts = Counter(pairs[1::2])  # the multiple-choice rows: (reasoning, letter)
    assert set(counts) == {(s, letter) for s in sentences for letter in "ABC"}  # every pairing occurs
    assert max(counts.values()) / min(counts.values()) < 1.6  # about 1500 / 9 each: independent draws
    assert all(parse_choice(t, ["a", "b", "c"]) is not None for t in targets[1::2])
    assert format_reward(targets[::2]) == [1.0] * 1500
    # without reasoning: the fixed phrase, and the very draws of before (the scores come first)
    plain = draw_targets(np.random.default_rng(0), rows[:4], "Looks")
    assert [t[: t.index("<answer>")] for t in plain] == ["<think>Looks</think>"] * 4
    assert [t[t.index("<answer>") :] for t in plain] == [t[t.index("<answer>") :] for t in targets[:4]]


def test_warm_start_reasoning_only_for_the_chosen_tasks():
    sentences = ["The video is dark.", "The video is blurry."]
    rows = [0, 2] * 200
    both = draw_targets(np.random.default_rng(0), rows, "Looks", sentences)
    questions_only = draw_targets(np.random.default_rng(0), rows, "Looks", sentences, ["choice"])
    thinks = [t[: t.index("<answer>")] for t in questions_only]
    assert set(thinks[::2]) == {"<think>Looks</think>"}  # the score rows keep the phrase
    assert set(thinks[1::2]) == {f"<think>{s}</think>" for s in sentences}
    assert questions_only[1::2] == both[1::2]  # the same draws: the questions' targets are those of before
    assert [t[t.index("<answer>") :] for t in questions_only] == [t[t.index("<answer>") :] for t in both]
    scores_only = draw_targets(np.random.default_rng(0), rows, "Looks", sentences, ["score"])
    assert {t[: t.index("<answer>")] for t in scores_only[1::2]} == {"<think>Looks</think>"}


def test_warm_start_answers_can_follow_the_reasoning():
    sentences = ["The video is dark.", "The video is blurry.", "It looks fine."]
    rows = [0, 3] * 600
    named = [None, [2, 0, None]] * 600  # options (blurry, noisy, too dark): "fine" names none of them
    drawn = draw_targets(np.random.default_rng(0), rows, "Looks", sentences)
    following = draw_targets(np.random.default_rng(0), rows, "Looks", sentences, named=named)
    assert following[::2] == drawn[::2]  # the score rows: the same targets
    split = [t.split("</think>") for t in following[1::2]]
    assert [think for think, _ in split] == [
        t.split("</think>")[0] for t in drawn[1::2]
    ]  # the same reasoning
    answers = {think: Counter() for think, _ in split}
    for think, answer in split:
        answers[think][answer] += 1
    assert set(answers["<think>The video is dark."]) == {"<answer>C</answer>"}
    assert set(answers["<think>The video is blurry."]) == {"<answer>A</answer>"}
    fine = answers["<think>It looks fine."]
    assert set(fine) == {f"<answer>{letter}</answer>" for letter in "ABC"}  # still a random letter
    unchanged = [f for f, d in zip(following[1::2], drawn[1::2], strict=True) if "fine" in f]
    assert unchanged == [d for d in drawn[1::2] if "fine" in d]
    # without reasoning sentences there is nothing to follow
    assert draw_targets(np.random.default_rng(0), rows[:4], "Looks", named=named[:4]) == draw_targets(
        np.random.default_rng(0), rows[:4], "Looks"
    )


def test_warm_start_reads_which_option_each_sentence_names(tiny_model_dir, graded_videos, monkeypatch):
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(tiny_model_dir)).model_options()
    )
    options = ["Blurry", "noisy", "too dark"]
    keywords = {"too dark": ["dark"], "blurry": ["blurry", "blur"], "noisy": ["noisy"]}
    sentences = ["The video is dark.", "The video is blurry.", "It looks fine."]
    question = choice_question(format_question("Which problem dominates this video?", options), 3)
    conversations = [build_conversation(question, 2), build_conversation(QUALITY_QUESTION, 2)]
    frames = [load_frames(path, 2, size=tile_size(processor)) for path, _ in graded_videos[:2]]
    seen = []
    draw = warmstart.draw_targets
    monkeypatch.setattr(warmstart, "draw_targets", lambda *a, **k: seen.append((a[1], a[5])) or draw(*a, **k))
    losses = warm_start(
        model,
        processor,
        conversations,
        frames,
        steps=2,
        batch_size=4,
        learning_rate=1e-3,
        options=[options, []],
        reasoning=sentences,
        keywords=keywords,
    )
    assert len(losses) == 2 and np.isfinite(losses).all()
    rows = [(n, row) for num_options, named in seen for n, row in zip(num_options, named, strict=True)]
    assert len(rows) == 8 and {n for n, _ in rows} == {0, 3}  # both kinds of row were drawn
    assert all(row == ([2, 0, None] if n else None) for n, row in rows)
    with pytest.raises(ValueError, match="keywords .* need reasoning sentences and multiple-choice rows"):
        warm_start(model, processor, conversations, frames, steps=1, options=[options, []], keywords=keywords)


def test_answers_that_follow_the_reasoning_need_the_consistency_keywords(tmp_path):
    base = ["--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false"]
    flag = ["--warm_start_answers_follow_reasoning", "true"]
    with pytest.raises(ValueError, match="add consistency to reward_funcs"):
        parse_args([*base, *flag])
    choice = ["--reward_funcs", "format", "choice", "consistency", "--reward_weights", "1", "1", "0"]
    data_args, args, _ = parse_args([*base, *flag, *choice, "--warm_start_reasoning", "Too dark."])
    assert args.warm_start_answers_follow_reasoning
    with pytest.raises(
        ValueError, match="needs warm_start_reasoning sentences and the consistency reward's keywords"
    ):
        warm_start_model(None, None, None, data_args, args)  # refused before anything is trained


def test_warm_start_reasoning_is_validated(tmp_path):
    base = ["--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false"]
    _, args, _ = parse_args([*base, "--warm_start_reasoning", "Too dark.", "Too bright."])
    assert args.warm_start_reasoning == ["Too dark.", "Too bright."]
    assert parse_args(base)[1].warm_start_reasoning is None
    with pytest.raises(ValueError, match="warm_start_reasoning must list non-empty sentences"):
        parse_args([*base, "--warm_start_reasoning", "ok", " "])
    assert parse_args(base)[1].warm_start_reasoning_tasks == ["score", "choice"]
    assert parse_args([*base, "--warm_start_reasoning_tasks", "choice"])[1].warm_start_reasoning_tasks == [
        "choice"
    ]
    with pytest.raises(ValueError, match=r"warm_start_reasoning_tasks: unknown tasks \['caption'\]"):
        parse_args([*base, "--warm_start_reasoning_tasks", "choice", "caption"])


def test_decoded_frames_decode_once_and_give_black_frames_for_a_bad_video(graded_videos, tmp_path, caplog):
    videos = [graded_videos[0][0], str(tmp_path / "missing.mp4")]
    frames = DecodedFrames(videos, [3, 2], size=28, backend="pyav")
    first = frames[0]
    assert len(frames) == 2 and len(first) == 3 and first[0].size == (28, 28)
    assert frames[0] is first  # cached
    with caplog.at_level(logging.WARNING):
        black = frames[1]
    assert len(black) == 2 and black[0].getextrema() == ((0, 0), (0, 0), (0, 0))
    assert "warm start: black frames for" in caplog.text and "missing.mp4" in caplog.text


def test_the_kl_reference_is_the_warm_started_model(tiny_model_dir, graded_videos, tmp_path):
    recipe = write_recipe(tmp_path, tiny_model_dir, graded_videos, beta=0.04)
    data_args, args, model_args = parse_args(
        ["--config", str(recipe), "--warm_start_steps", "3", "--warm_start_learning_rate", "1e-2"]
    )
    trainer = build_trainer(data_args, args, model_args)
    policy = trainer.model.state_dict()
    reference = trainer.ref_model.state_dict()
    assert all(torch.equal(reference[name], value) for name, value in policy.items())
    original = load_model_and_processor(model_args.model_options())[0].state_dict()
    assert original.keys() == policy.keys()
    changed = [name for name, value in original.items() if not torch.equal(value, policy[name])]
    assert len(changed) > len(policy) // 2  # the warm start moved the weights, the reference moved with them
    saved = json.loads((tmp_path / "out" / WARM_START_DIR / WARM_START_FILE).read_text())
    assert saved["steps"] == 3 and len(saved["losses"]) == 3 and saved["learning_rate"] == 1e-2


@pytest.mark.slow
def test_a_warm_started_run_answers_in_format_and_a_resumed_one_starts_from_the_saved_warm_start(
    tiny_model_dir, graded_videos, tmp_path, caplog
):
    """The tiny random model never answers in format (tests/test_training_health.py); warm-started, it does."""
    recipe = write_recipe(
        tmp_path, tiny_model_dir, graded_videos, max_steps=2, max_completion_length=24, **WARM
    )
    with caplog.at_level(logging.INFO):
        assert main(["--config", str(recipe), "--save_strategy", "steps", "--save_steps", "2"]) == 0
    out = tmp_path / "out"
    saved = json.loads((out / WARM_START_DIR / WARM_START_FILE).read_text())
    assert len(saved["losses"]) == 60 and saved["losses"][-1] < saved["losses"][0] / 3
    assert (out / WARM_START_DIR / "model.safetensors").is_file()
    health = json.loads((out / HEALTH_FILE).read_text())
    assert health["parsed_fraction"] >= 0.25 and health["rewards"]["format"]["first"] > 0  # untrained: 0
    assert "no answer held a score" not in caplog.text
    assert "warm start: 60 steps" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO):
        argv = ["--config", str(recipe), "--resume_from_checkpoint", "last", "--max_steps", "3"]
        assert main(argv) == 0
    assert f"the model starts from the warm start saved in {out / WARM_START_DIR}" in caplog.text
    assert "warm start: 60 steps" not in caplog.text  # not run again
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3
