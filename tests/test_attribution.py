"""The multi-task demo: its attribution question and defect words, the figures read from answers, the question
files written from a ladder, and (smoke-sized) a multi-task demo run with attribution before and after GRPO."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from vqathinker.data.choices import parse_options
from vqathinker.data.datasets import build_dataset, load_dataset_config
from vqathinker.data.records import read_records
from vqathinker.demo.attribution import (
    KEYWORDS,
    OPTIONS,
    QUESTION,
    REASONING,
    attribution_metrics,
    attribution_question,
    attribution_report,
    named_defects,
    option_keywords,
    reasoning_phrases,
)
from vqathinker.demo.ladder import DEFECTS, PRISTINE, build_ladder
from vqathinker.demo.questions import write_choice_questions
from vqathinker.demo.report import attribution_lines, reward_trend
from vqathinker.rewards import consistency_reward
from vqathinker.training.configs import VQADataArguments

REPO = Path(__file__).resolve().parents[1]


def answer(think: str | None, text: str) -> str:
    return ("" if think is None else f"<think>{think}</think>") + f"<answer>{text}</answer>"


# ---------------------------------------------------------------- the question and its words


def test_one_option_one_sentence_and_one_word_list_per_defect_each_naming_only_its_defect():
    assert list(OPTIONS) == list(KEYWORDS) == list(REASONING) == list(DEFECTS)
    for defect in DEFECTS:
        assert named_defects(OPTIONS[defect]) == {defect}, OPTIONS[defect]
        assert named_defects(REASONING[defect]) == {defect}, REASONING[defect]
        for word in KEYWORDS[defect]:
            assert named_defects(f"It is {word}.") == {defect}, word  # no word is another defect's
    assert named_defects(QUESTION) == set()
    assert named_defects("The video quality is") == set()  # the score-only warm start's phrase


@pytest.mark.parametrize(
    ("think", "named"),
    [
        ("Underexposed and a little grainy.", {"dark", "noise"}),
        ("The highlights are blown-out", {"bright"}),
        ("OUT OF FOCUS", {"blur"}),
        ("Macroblocks everywhere, a low-res upload.", {"compression", "low_resolution"}),
        ("Washed out colours", {"bright"}),  # "washed out" is over-exposure's, not fade's
        ("The colours look desaturated, greyish.", {"fade"}),
        ("darkness, brightness", set()),  # whole words only
        ("Sharp and clean.", set()),
        ("", set()),
    ],
)
def test_named_defects_of_hand_written_reasoning(think, named):
    assert named_defects(think) == named


def test_named_defects_counts_only_the_given_defects_and_the_question_keeps_ladder_order():
    assert named_defects("Dark and noisy.", ["blur", "dark"]) == {"dark"}
    assert parse_options(attribution_question(["blur", "dark"])) == ["too dark", "blurry"]
    assert attribution_question(["blur", "dark"]).splitlines()[0] == QUESTION
    assert option_keywords(["blur", "dark"]) == {
        "too dark": list(KEYWORDS["dark"]),
        "blurry": list(KEYWORDS["blur"]),
    }
    assert reasoning_phrases(["noise", "dark"]) == [REASONING["dark"], REASONING["noise"]]
    with pytest.raises(ValueError, match="unknown defects"):
        attribution_question(["dark", "flicker"])


# ---------------------------------------------------------------- the figures


def test_attribution_metrics_of_hand_written_answers():
    defects = ["dark", "bright", "blur"]  # A too dark, B too bright, C blurry
    dark = [
        answer("The video is dark.", "A"),  # right, faithful, consistent
        answer("Too bright.", "A"),  # right, unfaithful, inconsistent
        answer("Dark and blurry.", "C"),  # wrong, names two, inconsistent
        answer("dark", "maybe"),  # unparsed, faithful, inconsistent
    ]
    blur = [
        answer("Blurry, soft.", "blurry"),  # right, faithful, consistent
        answer("It is too bright.", "B"),  # wrong, unfaithful, consistent
        answer(None, "C"),  # right, no reasoning: unfaithful, inconsistent
    ]
    metrics = attribution_metrics(["dark", "blur"], [dark, blur], defects)
    assert metrics["n"] == 7 and metrics["questions"] == 2
    assert metrics["accuracy"] == pytest.approx(4 / 7)
    assert metrics["faithfulness"] == pytest.approx(3 / 7)
    assert metrics["consistency"] == pytest.approx(3 / 7)
    assert metrics["unparsed"] == 1 and metrics["chance"] == pytest.approx(1 / 3)
    assert set(metrics["per_defect"]) == {"dark", "blur"}  # no bright question
    assert metrics["per_defect"]["dark"] == {
        "n": 4,
        "accuracy": 0.5,
        "faithfulness": 0.5,
        "consistency": 0.25,
        "unparsed": 1,
        "chance": pytest.approx(1 / 3),
    }
    by_blur = metrics["per_defect"]["blur"]
    assert (by_blur["accuracy"], by_blur["faithfulness"], by_blur["consistency"]) == pytest.approx(
        (2 / 3, 1 / 3, 2 / 3)
    )
    # consistency is the consistency reward's mean over the same answers
    question = attribution_question(defects)
    texts = dark + blur
    rewards = consistency_reward(
        texts, options=[parse_options(question)] * 7, keywords=option_keywords(defects)
    )
    assert np.mean(rewards) == pytest.approx(metrics["consistency"])

    empty = attribution_metrics([], [], defects)
    assert empty["n"] == 0 and math.isnan(empty["accuracy"]) and empty["per_defect"] == {}
    with pytest.raises(ValueError, match="none of the options"):
        attribution_metrics(["noise"], [[answer("x", "A")]], defects)
    with pytest.raises(ValueError, match="answer lists"):
        attribution_metrics(["dark"], [], defects)


def test_the_report_entry_and_its_printout():
    defects = ["dark", "blur"]
    before = attribution_metrics(["dark", "blur"], [[answer("blurry", "B")], [answer("dark", "A")]], defects)
    after = attribution_metrics(["dark", "blur"], [[answer("dark", "A")], [answer("blurry", "B")]], defects)
    entry = attribution_report(before, after)
    assert (entry["accuracy_before"], entry["accuracy_after"]) == (0.0, 1.0)
    assert (entry["faithfulness_before"], entry["faithfulness_after"]) == (0.0, 1.0)
    assert (entry["consistency_before"], entry["consistency_after"]) == (1.0, 1.0)
    assert (entry["unparsed_before"], entry["unparsed_after"], entry["chance"]) == (0, 0, 0.5)
    assert entry["per_defect"]["blur"] == {
        **{f"{k}_{w}": v for k in ("accuracy", "faithfulness") for w, v in (("before", 0.0), ("after", 1.0))},
        "consistency_before": 1.0,
        "consistency_after": 1.0,
        "unparsed_before": 0,
        "unparsed_after": 0,
        "n": 1,
    }
    lines = "\n".join(attribution_lines(entry))
    assert "accuracy     0.000 -> 1.000" in lines and "chance 0.500" in lines
    assert "(2 questions, one greedy answer each: 2 answers;" in lines
    assert "(2 questions, 3 sampled answers each: 2 answers;" in "\n".join(
        attribution_lines({**entry, "samples": 3})
    )
    assert re.search(r"blur +accuracy 0\.00 -> 1\.00, faithfulness 0\.00 -> 1\.00", lines)


def test_reward_trend_skips_steps_without_the_reward():
    history = [{"step": 1, "rewards/choice/mean": None}, {"step": 2, "rewards/choice/mean": 0.5}]
    history += [{"step": 3, "rewards/choice/mean": math.nan}, {"step": 4, "rewards/choice/mean": 1.0}]
    assert reward_trend(history, "rewards/choice/mean") == {"first": 0.5, "last": 1.0, "points": 2}
    assert math.isnan(reward_trend(history[:1], "rewards/choice/mean")["first"])


# ---------------------------------------------------------------- the question files of a ladder


@pytest.fixture(scope="module")
def question_ladder(tmp_path_factory):
    """Two training scenes with dark and blur, one held-out scene with noise too; one level."""
    return build_ladder(
        tmp_path_factory.mktemp("ladder"),
        "How good?",
        num_contents=3,
        num_heldout=1,
        num_levels=1,
        defects=["noise", "dark", "blur"],
        train_defects=["dark", "blur"],
        num_frames=4,
        size=32,
    )


def test_questions_are_written_for_the_degraded_videos_of_each_split(question_ladder):
    questions = write_choice_questions(question_ladder.root, choice_weight=2.0)
    assert questions.defects == ["dark", "blur", "noise"]  # ladder order
    options = ("too dark", "blurry", "noisy")
    for path, split in ((questions.train_jsonl, "train"), (questions.heldout_jsonl, "heldout")):
        records = read_records(path, question_ladder.video_root, task="choice").records
        videos = {v.video: v for v in question_ladder.split(split) if v.defect != PRISTINE}
        assert sorted(r.video for r in records) == sorted(videos)  # pristine videos get no question
        for record in records:
            assert record.options == options and record.question == attribution_question(
                ["dark", "blur", "noise"]
            )
            assert options["ABC".index(record.answer)] == OPTIONS[videos[record.video].defect]
            assert Path(record.video_path).is_file()
    train = read_records(questions.train_jsonl, question_ladder.video_root, task="choice").records
    assert {r.answer for r in train} == {"A", "B"}  # training scenes: the trained defects only
    held = questions.heldout_records()
    assert len(held) == 3 and {r.answer for r in held} == {"A", "B", "C"}


def test_the_dataset_config_mixes_scores_and_weighted_questions(question_ladder):
    questions = write_choice_questions(question_ladder.root, choice_weight=2.0)
    sources = load_dataset_config(questions.dataset_config)
    assert [(s.task, s.weight) for s in sources] == [("score", 1.0), ("choice", 2.0)]
    assert Path(sources[0].jsonl) == question_ladder.train_jsonl
    dataset = build_dataset(VQADataArguments(dataset_config=str(questions.dataset_config), num_frames=4))
    tasks = list(dataset["task"])
    assert tasks.count("score") == 2 * 3 and tasks.count("choice") == 2 * 2 * 2  # each question twice
    choice = tasks.index("choice")
    assert dataset["options"][choice] == ["too dark", "blurry", "noisy"]
    assert QUESTION in dataset["prompt"][choice][0]["content"][-1]["text"]


def test_questions_need_two_defects_and_a_positive_weight(tmp_path, question_ladder):
    with pytest.raises(ValueError, match="choice_weight"):
        write_choice_questions(question_ladder.root, choice_weight=0)
    single = build_ladder(
        tmp_path, "q", num_contents=2, num_heldout=1, num_levels=1, defects=["dark"], num_frames=2, size=32
    )
    with pytest.raises(ValueError, match="two defects or more"):
        write_choice_questions(single.root)


# ---------------------------------------------------------------- the multi-task demo, smoke-sized


def test_the_multitask_recipe_and_its_checks():
    from vqathinker.commands.demo import attribution_settings, parse_args

    config = ["--config", str(REPO / "configs/demo_multitask.yaml")]
    demo_args, _, training_args, _ = parse_args(config)
    assert demo_args.choice_questions and demo_args.choice_weight == 1.5
    six = ["dark", "bright", "contrast", "fade", "noise", "compression"]  # chance 1/6
    assert demo_args.defects == demo_args.train_defects == six
    assert training_args.warm_start_answers_follow_reasoning
    assert training_args.reward_funcs == ["format", "reg", "rank", "choice", "consistency"]
    assert training_args.warm_start_reasoning is None and "consistency" not in training_args.reward_kwargs
    attribution_settings(demo_args, training_args)  # what the demo fills in
    assert training_args.reward_kwargs["consistency"] == {"keywords": option_keywords(six)}
    assert training_args.warm_start_reasoning == reasoning_phrases(six)
    _, _, own, _ = parse_args([*config, "--warm_start_reasoning", "Bad."])
    attribution_settings(demo_args, own)
    assert own.warm_start_reasoning == ["Bad."]  # a recipe's own sentences are kept
    with pytest.raises(ValueError, match="choice_weight must be > 0"):
        parse_args([*config, "--choice_weight", "0"])
    with pytest.raises(ValueError, match="two defects or more"):
        parse_args([*config, "--defects", "dark", "--train_defects", "dark"])
    with pytest.raises(ValueError, match="attribution_samples must be >= 0"):
        parse_args([*config, "--attribution_samples", "-1"])
    # the held-out questions: one greedy answer each unless told, the scores their own eval_samples
    assert demo_args.attribution_samples == 0
    assert demo_args.sampling_options(1.0, 24, demo_args.attribution_samples)["samples"] == 0
    assert demo_args.sampling_options(1.0, 24)["samples"] == demo_args.eval_samples > 0
    default, _, plain, _ = parse_args(["--config", str(REPO / "configs/demo.yaml")])
    attribution_settings(default, plain)  # the score-only demo: nothing filled in
    assert not default.choice_questions and plain.warm_start_reasoning is None
    assert "consistency" not in plain.reward_kwargs


def test_multitask_demo_reports_attribution_before_and_after(tmp_path, capsys):
    from vqathinker.commands.demo import main

    out = tmp_path / "demo"
    smoke = {
        "ladder_contents": 3,
        "ladder_heldout": 1,
        "ladder_levels": 1,
        "ladder_frames": 4,
        "ladder_size": 32,
        "warm_start_steps": 3,
        "warm_start_batch_size": 4,
        "eval_samples": 2,
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 16,
        "logging_steps": 1,
        "num_threads": 1,
        "report_to": "none",
        "output_dir": str(out),
    }
    argv = ["--config", str(REPO / "configs/demo_multitask.yaml"), *(f"--{k}={v}" for k, v in smoke.items())]
    argv += ["--defects", "dark", "blur", "--train_defects", "dark", "blur"]
    argv += ["--warm_start_answers_follow_reasoning", "true"]  # the demo gives it the consistency words
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"held-out SRCC before=-?\d+\.\d{3} after=-?\d+\.\d{3}\s*$", printed)
    assert (
        "attribution, held-out scenes (2 questions, one greedy answer each: 2 answers; chance 0.500)"
        in printed
    )
    report = json.loads((out / "demo_report.json").read_text())
    attribution = report["attribution"]
    for figure in ("accuracy", "faithfulness", "consistency"):
        for when in ("before", "after"):
            assert 0.0 <= attribution[f"{figure}_{when}"] <= 1.0, (figure, when)
    assert attribution["chance"] == 0.5 and attribution["defects"] == ["dark", "blur"]
    assert attribution["samples"] == 0 and attribution["answers"] == attribution["questions"] == 2
    assert set(attribution["per_defect"]) == {"dark", "blur"}
    assert report["demo_args"]["choice_questions"] is True
    assert {"choice", "consistency"} <= set(report["reward_trend"])
    # the warm start's reasoning: the defect sentences, drawn at random
    warm = json.loads((out / "warm_start" / "warm_start.json").read_text())
    assert warm["reasoning"] == [REASONING["dark"], REASONING["blur"]]
    assert warm["reasoning_tasks"] == ["choice"]  # the recipe's: the score rows keep the fixed phrase
    assert warm["keywords"] == option_keywords(["dark", "blur"])  # a sentence's letter: the option it names
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("rewards/consistency/mean" in entry for entry in state["log_history"])


def test_docstring_examples_hold():
    import doctest

    from vqathinker.demo import attribution

    result = doctest.testmod(attribution, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0
