"""``vqathinker evaluate`` on multiple-choice benchmarks: the tiny InternVL on real mp4s, our choice records and
the Q-Bench-Video layout, mixed with a score benchmark, resumed; and the grading of known answers."""

import csv
import functools
import json
from pathlib import Path

import pytest
import yaml
from media import counter_frames, write_video

from vqathinker.commands import evaluate
from vqathinker.data.prompts import build_choice_conversation, build_conversation, choice_question
from vqathinker.data.video import load_frames
from vqathinker.evaluation.benchmarks import load_benchmarks
from vqathinker.evaluation.choice_metrics import picked_letters
from vqathinker.evaluation.choice_report import CHOICE_SUMMARY_KEYS
from vqathinker.evaluation.choice_runner import (
    CHOICE_FIELDS,
    choice_details,
    read_choice_items,
    run_choice_benchmark,
)
from vqathinker.evaluation.inference import Answer
from vqathinker.evaluation.predictions import part_files
from vqathinker.evaluation.report import SUMMARY_KEYS
from vqathinker.evaluation.runner import Process, ScoringJob

FAST = ["--num_frames", "2", "--max_new_tokens", "6", "--batch_size", "2"]
OPTIONS = [["Yes", "No"], ["blur", "noise", "flicker"], ["sharp", "soft"], ["none", "some", "a lot", "all"]]
# our choice records: (id, video, question, correct label as written)
RECORDS = [("q0", "v0.mp4", "Is this video sharp?", "A"), ("q1", "v0.mp4", "Which problem dominates?", "noise"),
           ("q2", "v1.mp4", "How does it look?", "B."), ("q3", "v2.mp4", "How much noise is there?", "(D)")]  # fmt: skip
ANSWERS = ["A", "B", "B", "D"]
# the Q-Bench-Video layout as published: questions without options, the options as "answers"
QBV = [
    {"video_name": "v0.mp4", "question": "Is this video sharp?", "answers": OPTIONS[0], "correct_choice": "A",
     "question_type": "yes-or-no", "concern": "Technical"},
    {"video_name": "v1.mp4", "question": "Which problem dominates?", "answers": OPTIONS[1],
     "correct_choice": "C", "question_type": "what/how", "concern": "Temporal"},
    {"video_name": "v2.mp4", "question": "Is it noisy?", "answers": OPTIONS[0], "correct_choice": "B",
     "question_type": "yes-or-no", "concern": "Technical"},
    {"video_name": "v0.mp4_cat_v1.mp4", "question": "Which one is sharper?", "answers": ["first", "second"],
     "correct_choice": "A", "question_type": "what/how"},
    {"video_name": "v1.mp4", "question": "Describe the noise.", "question_type": "open_ended"},
    {"video_name": "broken.mp4", "question": "Is it blurry?", "answers": OPTIONS[0], "correct_choice": "A",
     "question_type": "yes-or-no", "concern": "Technical"},
]  # fmt: skip


def record_line(key, video, question, label, options):
    human = "\n".join([question, *(f"{'ABCD'[i]}. {text}" for i, text in enumerate(options))])
    conversations = [{"from": "human", "value": human}, {"from": "gpt", "value": label}]
    return json.dumps({"id": key, "image": [video], "conversations": conversations}) + "\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three real mp4s and a corrupt file; choice records, a Q-Bench-Video file and a score file about them."""
    root = tmp_path_factory.mktemp("choice_data")
    (root / "clips").mkdir()
    for i in range(3):
        write_video(root / "clips" / f"v{i}.mp4", counter_frames(8, width=32, height=32, step=4 + 8 * i))
    (root / "clips" / "broken.mp4").write_bytes(b"not a video")
    lines = [record_line(*record, options) for record, options in zip(RECORDS, OPTIONS, strict=True)]
    (root / "questions.jsonl").write_text("".join(lines))
    (root / "Q_Bench_Video_dev.json").write_text(json.dumps(QBV, indent=1))
    scores = [{"image_id": f"v{i}.mp4", "ann_type": "score", "score": str(20.0 + 30 * i)} for i in range(3)]
    (root / "scores.json").write_text(json.dumps({"annotations": scores}))
    config = {"benchmarks": {
        "scores": {"annotations": "scores.json", "format": "json", "video_root": "clips", "mos_range": [0, 100]},
        "qbv": {"name": "Q-Bench-Video dev", "annotations": "Q_Bench_Video_dev.json", "format": "qbench",
                "video_root": "clips"},
    }}  # fmt: skip
    (root / "benchmarks.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def csv_rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def hand_count(rows) -> dict:
    """Accuracy and counts of CSV rows, overall and per category, counted by hand."""
    figures = {}
    for row in rows:
        for key in (None, *json.loads(row["categories"])):
            n, correct, unparsed = figures.get(key, (0, 0, 0))
            figures[key] = (
                n + 1,
                correct + (row["picked"] == row["answer"]),
                unparsed + (row["picked"] == ""),
            )
    return figures


def assert_metrics_match_csv(out, key, summary, items):
    """The summary's figures are those counted by hand from the CSV, whose picks are read from its answers."""
    rows = csv_rows(out / "predictions" / f"{key}.csv")
    figures = hand_count(rows)
    n, correct, unparsed = figures.pop(None)
    assert (summary["n"], summary["correct"], summary["unparsed"]) == (n, correct, unparsed)
    assert n == len(rows) and summary["accuracy"] == pytest.approx(correct / n)
    assert {c: (f["n"], f["correct"], f["unparsed"]) for c, f in summary["per_category"].items()} == figures
    by_id = {item.key: item for item in items}
    questions = [by_id[row["id"]] for row in rows]
    assert [row["answer"] for row in rows] == [q.answer for q in questions]
    picked = picked_letters([row["completion"] for row in rows], questions)
    assert [row["picked"] for row in rows] == [p or "" for p in picked]
    return rows


def test_mixed_benchmarks_yaml_reports_both_sections(tiny_model_dir, data, tmp_path, capsys):
    """A Q-Bench-Video file listed beside a score benchmark: its CSV, its accuracy (counted by hand from the
    CSV), no plot, and its own section of metrics.md."""
    out = tmp_path / "eval"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--benchmarks", str(data / "benchmarks.yaml")]
    assert evaluate.main([*argv, "--data_root", str(data), "--output_dir", str(out), *FAST]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["scores", "qbv"] and set(metrics["scores"]) == set(SUMMARY_KEYS)
    summary = metrics["qbv"]
    assert set(summary) == set(CHOICE_SUMMARY_KEYS) and summary["task"] == "choice"
    items, _ = read_choice_items(data / "Q_Bench_Video_dev.json", data / "clips", "qbench")
    rows = assert_metrics_match_csv(out, "qbv", summary, items)
    assert list(rows[0]) == list(CHOICE_FIELDS)
    # the video pair and the open-ended question are left out; the question about the corrupt video fails
    assert [row["id"] for row in rows] == [f"Q_Bench_Video_dev-{i}" for i in (1, 2, 3)]
    assert [row["video"] for row in rows] == ["v0.mp4", "v1.mp4", "v2.mp4"]
    assert [row["answer"] for row in rows] == ["A", "C", "B"]
    assert json.loads(rows[1]["categories"]) == ["question_type: what/how", "concern: Temporal"]
    assert summary["failed_questions"] == 1 and summary["per_category"]["question_type: yes-or-no"]["n"] == 2
    assert summary["chance"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    details = json.loads((out / "qbv.json").read_text())
    annotations = data / "Q_Bench_Video_dev.json"
    assert details["warnings"] == [f"2 item(s) of {annotations} left out (open_ended: 1, video_pair: 1)"]
    assert details["failed"][0]["video"] == "broken.mp4"
    assert (details["generated"], details["resumed"], details["num_questions"]) == (3, 0, 4)
    assert len(details["unparsed_questions"]) == summary["unparsed"]
    assert not (out / "qbv.png").exists() and (out / "scores.png").exists()
    settings = json.loads((out / "predictions" / "qbv.settings.json").read_text())
    assert settings["task"] == "choice" and settings["num_frames"] == 2

    table = (out / "metrics.md").read_text()
    scores, section = table.split("**Multiple-choice benchmarks**")
    assert "| scores |" in scores and "| qbv |" not in scores and "| scores |" not in section
    row = (
        f"| qbv | {summary['accuracy']:.4f} | {summary['correct']} | 3 | {summary['unparsed']} | 0.4444 | 1 |"
    )
    assert row in section and "| qbv | concern: Temporal |" in section
    assert table in capsys.readouterr().out


def test_dataset_config_with_choice_sources(tiny_model_dir, data, tmp_path):
    """Each source of a dataset config is a benchmark: our choice records (task: choice) and a Q-Bench-Video
    file (layout: qbench)."""
    config = {"datasets": [
        {"jsonl": str(data / "questions.jsonl"), "video_root": str(data / "clips"), "task": "choice",
         "name": "mine", "weight": 2.0},
        {"jsonl": str(data / "Q_Bench_Video_dev.json"), "video_root": str(data / "clips"), "layout": "qbench"},
    ]}  # fmt: skip
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "eval"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--dataset_config", str(tmp_path / "data.yaml")]
    assert evaluate.main([*argv, "--output_dir", str(out), *FAST]) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["mine", "Q_Bench_Video_dev"]
    items, _ = read_choice_items(data / "questions.jsonl", data / "clips", "jsonl")
    rows = assert_metrics_match_csv(out, "mine", metrics["mine"], items)
    assert [row["id"] for row in rows] == ["q0", "q1", "q2", "q3"]  # once each, whatever the weight
    assert [row["answer"] for row in rows] == ANSWERS and metrics["mine"]["per_category"] == {}
    assert metrics["Q_Bench_Video_dev"]["n"] == 3
    table = (out / "metrics.md").read_text()
    assert "SRCC" not in table and "Answered with: backend transformers, num_frames 2" in table


def test_resume_keeps_answered_questions(tiny_model_dir, data, tmp_path):
    """One ad-hoc file of choice records: a killed run's part file is resumed (its rows kept, a cut row
    answered again), and a finished CSV answers nothing more."""
    out = tmp_path / "eval"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--jsonl", str(data / "questions.jsonl")]
    argv += ["--task", "choice", "--video_root", str(data / "clips"), "--output_dir", str(out), *FAST]
    part = out / "predictions" / "questions.part-0.csv"
    part.parent.mkdir(parents=True)
    done = [["q0", "v0.mp4", "[]", "A", "A", "DONE <answer>A</answer>"],
            ["q1", "v0.mp4", "[]", "B", "C", 'DONE, "quoted"\n<answer>C. flicker</answer>']]  # fmt: skip
    with part.open("w", newline="") as handle:
        csv.writer(handle).writerows([CHOICE_FIELDS, *done])
        handle.write('q2,v1.mp4,[],B,,"half an ans')

    assert evaluate.main(argv) == 0
    rows = csv_rows(out / "predictions" / "questions.csv")
    assert [row["id"] for row in rows] == ["q0", "q1", "q2", "q3"] and not part.exists()
    assert [list(row.values()) for row in rows[:2]] == done  # kept as they were
    assert not any(row["completion"].startswith(("DONE", "half")) for row in rows[2:])
    details = json.loads((out / "questions.json").read_text())
    assert (details["resumed"], details["generated"]) == (2, 2)
    items, _ = read_choice_items(data / "questions.jsonl", data / "clips", "jsonl")
    summary = json.loads((out / "metrics.json").read_text())["questions"]
    assert_metrics_match_csv(out, "questions", summary, items)
    assert summary["correct"] >= 1  # q0's kept answer

    assert evaluate.main(argv) == 0
    again = json.loads((out / "questions.json").read_text())
    assert (again["resumed"], again["generated"]) == (4, 0) and again["accuracy"] == details["accuracy"]


def test_known_answers_are_graded_and_parts_merged(data, tmp_path):
    """Known answers through the runner, in two data-parallel processes (run one after the other): each
    question answered once, the prompt's question, the picked letters and the accuracy."""
    items, warnings = read_choice_items(data / "questions.jsonl", data / "clips", "jsonl")
    assert warnings == [] and [item.answer for item in items] == ANSWERS
    replies = [
        "<think>x</think><answer>A</answer>",
        "<answer>flicker</answer>",
        "<answer>(B)</answer>",
        "no idea",
    ]
    reply = {item.question: text for item, text in zip(items, replies, strict=True)}
    asked = []

    def answer(frames, questions):
        assert all(len(video) == 2 for video in frames)
        asked.extend(questions)
        return [[Answer(reply[question], None)] for question in questions]

    load = functools.partial(load_frames, num_frames=2, size=32)
    csv_path = tmp_path / "predictions" / "mine.csv"

    def job(rank):
        return ScoringJob(answer, load, {"model": "stand-in"}, batch_size=2, process=Process(rank, 2))

    assert run_choice_benchmark(job(1), items, csv_path) is None  # rank 1: items[1::2] into its part file
    result = run_choice_benchmark(job(0), items, csv_path)  # rank 0: the others, then merges
    assert sorted(asked) == sorted(item.question for item in items)
    assert [row.key for row in result.rows] == ["q0", "q1", "q2", "q3"] and not part_files(csv_path)
    assert [row.picked for row in result.rows] == ["A", "C", "B", None]
    details = choice_details(result, items)
    assert (details["correct"], details["unparsed"], details["accuracy"]) == (2, 1, 0.5)
    assert details["unparsed_questions"] == ["q3"] and details["chance"] == pytest.approx(
        (1 / 2 + 1 / 3 + 1 / 2 + 1 / 4) / 4
    )

    question = "Which problem dominates?\nA. blur\nB. noise\nC. flicker"
    assert items[1].question == choice_question(question, 3)
    assert build_conversation(items[1].question, 2) == build_choice_conversation(question, 3, 2)


def test_bad_choice_input_and_score_options_are_refused(data, tmp_path, capsys):
    """Before any model is loaded: a bad record or a repeated id names its file and line; score-only options
    and fields are refused for a multiple-choice benchmark."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        record_line("a", "v0.mp4", "Q?", "A", OPTIONS[0]) + record_line("b", "v1.mp4", "Q?", "E", OPTIONS[0])
    )
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text(record_line("a", "v0.mp4", "Q?", "A", OPTIONS[0]) * 2)
    bad_qbv = tmp_path / "bad_qbv.json"
    bad_qbv.write_text(f"[\n{json.dumps(QBV[0])},\n{json.dumps({**QBV[1], 'correct_choice': 'D'})}\n]")
    choice_yaml = tmp_path / "choice.yaml"
    entry = {"annotations": str(data / "questions.jsonl"), "format": "jsonl", "task": "choice",
             "video_root": str(data / "clips"), "mos_range": [0, 100]}  # fmt: skip
    choice_yaml.write_text(yaml.safe_dump({"benchmarks": {"mine": entry}}))
    clips = ["--video_root", str(data / "clips")]
    questions = ["--jsonl", str(data / "questions.jsonl"), "--task", "choice", *clips]
    cases = [
        (
            ["--jsonl", str(bad), "--task", "choice", *clips],
            f"{bad}:2: the answer 'E' names none of the options A-B",
        ),
        (
            ["--jsonl", str(repeated), "--task", "choice", *clips],
            f"{repeated}:2: id 'a' was already given on line 1",
        ),
        (
            ["--qbench", str(bad_qbv), *clips],
            f"{bad_qbv}:3: the correct answer 'D' names none of the options",
        ),
        ([*questions, "--score_mode", "expected"], "--score_mode expected reads a score"),
        ([*questions, "--num_samples", "3"], "--num_samples 3 averages the scores of several answers"),
        (
            ["--benchmarks", str(choice_yaml)],
            "benchmark 'mine': a multiple-choice benchmark has no mos_range",
        ),
        (
            ["--json", str(data / "scores.json"), "--task", "choice", *clips],
            "--json: task must be one of ['score']",
        ),
        (
            ["--benchmarks", str(data / "benchmarks.yaml"), "--task", "choice"],
            "--task is for --jsonl, --json or",
        ),
        (["--qbench", str(data / "Q_Bench_Video_dev.json")], "--qbench needs --video_root"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            evaluate.main(["--model_name_or_path", str(tmp_path / "no_model"), *extra])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err, extra


def test_the_shipped_example_of_a_choice_benchmark(tmp_path):
    """The commented Q-Bench-Video entry of configs/benchmarks.yaml, uncommented, is a choice benchmark."""
    text = (Path(__file__).resolve().parents[1] / "configs" / "benchmarks.yaml").read_text()
    lines = text[text.index("  # qbench_video_dev:") :].splitlines()
    entry = [line.replace("  # ", "  ", 1) for line in lines]
    (tmp_path / "choice.yaml").write_text("benchmarks:\n" + "\n".join(entry) + "\n")
    (benchmark,) = load_benchmarks(tmp_path / "choice.yaml", data_root=tmp_path)
    assert (benchmark.key, benchmark.task, benchmark.format, benchmark.mos_range) == (
        "qbench_video_dev", "choice", "qbench", None,
    )  # fmt: skip
    assert benchmark.annotations == tmp_path / "Q-Bench-Video" / "Q_Bench_Video_dev.json"
