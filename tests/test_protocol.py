"""Evaluation protocols: the release's reading of answers, its 3.00 fill, and `evaluate --protocol release`."""

from __future__ import annotations

import csv
import json

import pytest

from tests.media import counter_frames, write_video
from vqathinker.commands import evaluate
from vqathinker.evaluation import inference
from vqathinker.evaluation.protocol import PROTOCOLS, first_answer_score, release_table


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>x</think><answer>3.75</answer>", 3.75),
        ("<answer> 2.5 </answer><answer>4.0</answer>", 2.5),  # the FIRST block
        ("<answer>\n4\n</answer>", 4.0),
        ("<answer>3,5</answer>", 35.0),  # commas dropped, as the release does
        ("<answer>Score: 3.5</answer>", None),  # the whole block must be a number
        ("no block 3.5", None),
        ("<answer>nan</answer>", None),
        ("<answer>1e1</answer>", 10.0),
    ],
)
def test_first_answer_score(text, expected):
    assert first_answer_score(text) == expected


def test_release_fills_unparsed_answers_and_counts_them():
    preds, mos = [4.0, None, 2.0, 3.5, None], [80.0, 50.0, 20.0, 60.0, 40.0]
    release, default = PROTOCOLS["release"], PROTOCOLS["default"]
    assert release.scored(preds, mos) == ([4.0, 3.0, 2.0, 3.5, 3.0], mos)
    assert default.scored(preds, mos) == ([4.0, 2.0, 3.5], [80.0, 20.0, 60.0])
    filled, left_out = release.metrics(preds, mos), default.metrics(preds, mos)
    assert (filled["n"], filled["unparsed"], filled["filled"]) == (5, 2, 2)
    assert (left_out["n"], left_out["unparsed"], left_out["filled"]) == (3, 2, 0)
    assert filled["plcc"] != pytest.approx(left_out["plcc"])


def test_release_table_puts_raw_plcc_first():
    summary = {"plcc": 0.81234, "srcc": 0.7, "plcc_logistic": 0.8, "krcc": 0.5, "n": 10, "unparsed": 2}
    table = release_table({"konvid": {**summary, "failed_videos": 1}})
    header, _, row = table.splitlines()[:3]
    assert header.startswith("| Benchmark | PLCC (raw) | SRCC |")
    assert row == "| konvid | 0.8123 | 0.7000 | 0.8000 | 0.5000 | 10 | 2 | 1 |"


def test_evaluate_with_the_release_protocol(answering_model_dir, tmp_path, monkeypatch, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    scores = [20.0, 45.0, 70.0, 90.0]
    for i in range(len(scores)):
        write_video(clips / f"v{i}.mp4", counter_frames(30, width=32, height=32, step=3 + 2 * i), fps=10)
    annotations = [
        {"image_id": f"v{i}.mp4", "ann_type": "score", "score": str(s)} for i, s in enumerate(scores)
    ]
    labels = tmp_path / "test.json"
    labels.write_text(json.dumps({"annotations": annotations}))
    styles, frame_counts = [], []
    build = inference.build_conversation
    monkeypatch.setattr(
        inference,
        "build_conversation",
        lambda q, n, style="default": styles.append(style) or frame_counts.append(n) or build(q, n, style),
    )
    out = tmp_path / "eval"
    argv = [
        "--model_name_or_path",
        str(answering_model_dir),
        "--json",
        str(labels),
        "--video_root",
        str(clips),
    ]
    argv += ["--output_dir", str(out), "--protocol", "release", "--max_new_tokens", "24", "--device", "cpu"]
    argv += ["--frame_size", "112"]  # the tiny model at twice its tile (the release's 560 px: see below)
    assert evaluate.main(argv) == 0

    assert set(styles) == {"release_test"} and set(frame_counts) == {12}
    details = json.loads((out / "test.json").read_text())
    assert details["settings"]["protocol"] == "release" and details["settings"]["num_frames"] == 12
    assert details["settings"]["frame_size"] == 112
    assert details["n"] == len(scores)  # every video enters the metrics, unparsed ones as 3.00
    with (out / "predictions" / "test.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    parsed = [float(row["pred"]) for row in rows if row["parse_ok"] == "True"]
    assert parsed and len(parsed) + details["unparsed"] == len(scores)  # the answering model answers
    assert all(row["pred"] == "" for row in rows if row["parse_ok"] == "False")  # 3.00 only in the metrics
    printed = capsys.readouterr().out
    assert "| Benchmark | PLCC (raw) | SRCC |" in printed
    assert (out / "metrics.md").read_text().startswith("| Benchmark | PLCC (raw)")


def test_the_release_protocol_scores_at_560_px_unless_told_otherwise(tmp_path, monkeypatch):
    assert PROTOCOLS["release"].frame_size == 560 and PROTOCOLS["default"].frame_size is None
    asked = []

    class Stop(Exception):
        pass

    def load_scorer(model_options, generation, num_frames, frame_size, backend):
        asked.append((num_frames, frame_size))
        raise Stop

    monkeypatch.setattr(evaluate, "load_scorer", load_scorer)
    labels = tmp_path / "test.json"
    labels.write_text(
        json.dumps({"annotations": [{"image_id": "v.mp4", "ann_type": "score", "score": "50"}]})
    )
    argv = ["--model_name_or_path", str(tmp_path), "--json", str(labels), "--video_root", str(tmp_path)]
    for extra in ([], ["--frame_size", "448", "--num_frames", "8"]):
        with pytest.raises(Stop):
            evaluate.main([*argv, "--protocol", "release", "--output_dir", str(tmp_path / "out"), *extra])
    assert asked == [(12, 560), (8, 448)]
