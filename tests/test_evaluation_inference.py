"""Label readers (vqathinker.evaluation.items) and the predictions CSV (.predictions), no model needed."""

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from vqathinker.evaluation.benchmarks import load_benchmarks
from vqathinker.evaluation.items import read_annotation_json, read_benchmark_items, with_question
from vqathinker.evaluation.predictions import CSV_FIELDS, PredictionRow, ResumeError, read_predictions_csv

BENCHMARKS_YAML = Path(__file__).resolve().parents[1] / "configs" / "benchmarks.yaml"


def write_json(path, annotations):
    path.write_text(json.dumps({"annotations": annotations}))
    return path


def test_read_annotation_json(tmp_path):
    path = write_json(
        tmp_path / "set.json",
        [
            {"image_id": "a/1.mp4", "ann_type": "score", "score": "43.92"},
            {"image_id": "2.mp4", "score": 3},
        ],
    )
    items = read_annotation_json(path, tmp_path / "videos")
    assert [(i.video, i.mos) for i in items] == [("a/1.mp4", 43.92), ("2.mp4", 3.0)]
    assert items[0].video_path == str(tmp_path / "videos" / "a" / "1.mp4")
    assert items[0].question is None  # no question in the labels: evaluate asks the model's
    asked = with_question([*items, dataclasses.replace(items[0], question="Own?")], "Trained?")
    assert [i.question for i in asked] == ["Trained?", "Trained?", "Own?"]


@pytest.mark.parametrize(
    "annotations, message",
    [
        ([{"image_id": "1.mp4", "ann_type": "caption", "score": "3"}], "annotations[0]: ann_type 'caption'"),
        ([{"image_id": "1.mp4", "score": "good"}], "annotations[0]: score must be a finite number"),
        ([{"image_id": "1.mp4", "score": "nan"}], "finite"),
        (
            [{"image_id": "1.mp4", "score": 3}, {"score": 3}],
            "annotations[1]: expected an object with an 'image_id'",
        ),
        ([{"image_id": "../../etc/passwd", "score": 3}], "escapes the video root"),
    ],
)
def test_read_annotation_json_errors(tmp_path, annotations, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_annotation_json(write_json(tmp_path / "set.json", annotations), tmp_path)


def test_duplicate_videos_are_an_error(tmp_path):
    path = write_json(
        tmp_path / "set.json", [{"image_id": "1.mp4", "score": 3}, {"image_id": "1.mp4", "score": 4}]
    )
    with pytest.raises(ValueError, match="listed more than once"):
        read_benchmark_items(path, tmp_path, "json")
    with pytest.raises(ValueError, match="unknown annotation format"):
        read_benchmark_items(path, tmp_path, "csv")


def test_jsonl_items_keep_the_raw_mos_and_question(tmp_path):
    record = {"id": 7, "image": ["x.mp4"], "conversations": [{"from": "human", "value": "Rate it."},
                                                            {"from": "gpt", "value": 71.5}]}  # fmt: skip
    (tmp_path / "set.jsonl").write_text(json.dumps(record) + "\n")
    [item] = read_benchmark_items(tmp_path / "set.jsonl", tmp_path, "jsonl", (0, 100))
    assert (item.video, item.mos, item.question) == ("x.mp4", 71.5, "Rate it.")
    with pytest.raises(ValueError, match="outside mos_range"):
        read_benchmark_items(tmp_path / "set.jsonl", tmp_path, "jsonl")  # default 1..5


ROWS = [
    PredictionRow("a.mp4", 3.5, 4.25, 4.25, (4.25,), "<think>x</think><answer>4.25</answer>"),
    PredictionRow("b.mp4", 61.0, None, None, (None, None), 'no score, "quoted"\nover two lines'),
    PredictionRow("c.mp4", 40.0, 2.5, 37.5, (2.0, None, 3.0), "<answer>2</answer>"),
]


def write_csv(path, rows, tail=""):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        writer.writerows(row.to_csv() for row in rows)
        handle.write(tail)
    return path


def test_predictions_csv_round_trip(tmp_path):
    assert read_predictions_csv(tmp_path / "missing.csv") == []
    assert read_predictions_csv(write_csv(tmp_path / "p.csv", ROWS)) == ROWS


@pytest.mark.parametrize(
    "tail",
    [
        "d.mp4,2.0,3",
        'd.mp4,2.0,3.0,3.0,True,"[3.0]","cut inside',
        'd.mp4,2.0,3.0,3.0,True,"[3.0]","cut after a newline\n',
        'd.mp4,2.0,3.0,3.0,True,"[3.0]",x\r',
    ],
)
def test_truncated_last_row_is_dropped(tmp_path, tail):
    path = write_csv(tmp_path / "p.csv", ROWS, tail)
    assert read_predictions_csv(path, repair=False) == ROWS
    assert path.read_bytes().endswith(tail.encode())  # only the file's writer repairs it
    assert read_predictions_csv(path) == ROWS
    assert path.read_text() == write_csv(tmp_path / "clean.csv", ROWS).read_text()  # rewritten without it
    assert read_predictions_csv(write_csv(tmp_path / "q.csv", [], "vid")) == []  # cut inside the header


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,score\nx,1\n", "not a predictions CSV"),
        (
            "video,mos,pred,parse_ok,completion\r\nx,1.0,2.0,True,c\r\n",
            "not a predictions CSV of this version",
        ),
        (
            "video,mos,pred,pred_mos,parse_ok,samples,completion\r\nx,1.0,,,True,[],c\r\n",
            r"malformed row\(s\) at CSV record\(s\) \[2\]",
        ),
        (
            "video,mos,pred,pred_mos,parse_ok,samples,completion\r\nx,1.0,2.0,2.0,True,[2.0],c\r\n"
            "y,1.0,2.0,,True,[2.0],c\r\nz,1.0,,,False,[true],c\r\n",
            r"malformed row\(s\) at CSV record\(s\) \[3, 4\]",
        ),
    ],
)
def test_foreign_or_edited_csv_is_refused(tmp_path, content, message):
    path = tmp_path / "p.csv"
    path.write_bytes(content.encode())
    with pytest.raises(ResumeError, match=message):
        read_predictions_csv(path)


def test_load_benchmarks_shipped_config(tmp_path, monkeypatch):
    monkeypatch.setenv("VQA_DATA_ROOT", str(tmp_path))
    benchmarks = load_benchmarks(BENCHMARKS_YAML)
    assert len(benchmarks) == 10
    assert {b.format for b in benchmarks} == {"json"}
    assert all(
        b.annotations.is_relative_to(tmp_path) and b.video_root.is_relative_to(tmp_path) for b in benchmarks
    )
    assert (
        sum(b.num_videos for b in benchmarks)
        == 7182 + 3573 + 1200 + 585 + 1020 + 600 + 357 + 1200 + 480 + 839
    )
    picked = load_benchmarks(
        "configs/benchmarks.yaml", data_root=tmp_path / "other", only=["livevqc", "konvid"]
    )
    assert [(b.key, b.name, b.mos_range) for b in picked] == [("livevqc", "LIVE-VQC", (0.0, 100.0)),
                                                             ("konvid", "KoNViD-1k", (0.0, 100.0))]  # fmt: skip
    assert picked[0].video_root == tmp_path / "other" / "LIVE_VQC" / "Video"
