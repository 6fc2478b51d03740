"""jsonl validation: every bad line gives FILE:LINE or a counted skip; MOS mapping."""

from __future__ import annotations

import json
import logging
import math
import os

import pytest

from vqathinker.data.records import RecordError, VideoRecord, map_mos, read_records, resolve_video_path


def record(i=0, video="batch1/a.mp4", mos=3.5, question="How good?", **overrides) -> dict:
    obj = {
        "id": i,
        "dataset_name": "LSVQ",
        "image": [video],
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": mos}],
    }
    obj.update(overrides)
    return obj


def write_jsonl(path, lines) -> str:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def test_reads_the_seed_format(tmp_path):
    jsonl = write_jsonl(tmp_path / "train.jsonl", [record(0), "", record(7, "b/c.mp4", 1.25)])
    result = read_records(jsonl, tmp_path / "videos")
    root = os.path.abspath(tmp_path / "videos")
    assert result.records == [
        VideoRecord(
            "0", "LSVQ", "batch1/a.mp4", os.path.join(root, "batch1/a.mp4"), "How good?", 3.5, jsonl, 1
        ),
        VideoRecord("7", "LSVQ", "b/c.mp4", os.path.join(root, "b/c.mp4"), "How good?", 1.25, jsonl, 3),
    ]
    assert not result.skipped


def test_image_may_be_a_plain_string_and_dataset_name_defaults_to_the_file(tmp_path):
    obj = record(image="x.mp4")
    del obj["dataset_name"]
    (rec,) = read_records(write_jsonl(tmp_path / "konvid.jsonl", [obj]), tmp_path).records
    assert rec.video == "x.mp4" and rec.dataset_name == "konvid"


def test_absolute_path_inside_the_root_is_fine(tmp_path):
    inside = str(tmp_path / "videos" / "a.mp4")
    (rec,) = read_records(
        write_jsonl(tmp_path / "t.jsonl", [record(video=inside)]), tmp_path / "videos"
    ).records
    assert rec.video_path == inside


BAD_LINES = {
    "malformed_json": ['{"id": 1, "image": ', "[1, 2]"],
    "missing_key": [
        {"id": 1, "image": ["a.mp4"]},
        {"image": ["a.mp4"], "conversations": []},
        record(conversations=[{"from": "human", "value": "Q"}]),
        record(conversations=[{"from": "gpt", "value": 3.0}]),
        record(conversations="not a list"),
        record(question=""),
    ],
    "bad_path": [record(image=[]), record(image=["a.mp4", "b.mp4"]), record(image=[3])],
    "bad_mos": [record(mos="good"), record(mos=None), record(mos=True), record(mos=[3.0])],
    "mos_out_of_range": [record(mos=5.5), record(mos=0.0), record(mos=-1)],
    "path_escape": [
        record(video="../outside.mp4"),
        record(video="a/../../x.mp4"),
        record(video="/etc/passwd"),
    ],
}


@pytest.mark.parametrize(
    ("kind", "line"), [(kind, line) for kind, lines in BAD_LINES.items() for line in lines]
)
def test_each_bad_line_raises_file_and_line(tmp_path, kind, line):
    jsonl = write_jsonl(tmp_path / "bad.jsonl", [record(0), line])
    with pytest.raises(RecordError) as info:
        read_records(jsonl, tmp_path / "videos")
    assert str(info.value).startswith(f"{jsonl}:2: ")
    assert info.value.kind == kind and info.value.line == 2


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_mos_raises(tmp_path, value):
    line = json.dumps(record()).replace("3.5", value)  # json.loads accepts NaN / Infinity literals
    jsonl = write_jsonl(tmp_path / "nan.jsonl", [line])
    with pytest.raises(RecordError, match=r"nan.jsonl:1: MOS must be finite") as info:
        read_records(jsonl, tmp_path)
    assert info.value.kind == "bad_mos"


def test_numeric_string_mos_is_accepted(tmp_path):
    (rec,) = read_records(write_jsonl(tmp_path / "s.jsonl", [record(mos="4.25")]), tmp_path).records
    assert rec.mos == 4.25


def test_skip_counts_each_kind_and_warns_once_per_kind(tmp_path, caplog):
    lines = [record(0), *(line for bad in BAD_LINES.values() for line in bad), record(99, mos=2.0)]
    jsonl = write_jsonl(tmp_path / "mixed.jsonl", lines)
    with caplog.at_level(logging.WARNING, logger="vqathinker.data.records"):
        result = read_records(jsonl, tmp_path / "videos", on_error="skip")
    assert [r.id for r in result.records] == ["0", "99"]
    assert result.skipped == {kind: len(bad) for kind, bad in BAD_LINES.items()}
    assert result.examples["path_escape"][0].startswith(f"{jsonl}:")
    assert all(len(v) <= 5 for v in result.examples.values())
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == len(BAD_LINES) + 1  # one per kind, plus the summary
    assert f"skipped {sum(len(b) for b in BAD_LINES.values())} bad record(s)" in messages[-1]
    assert "kept 2" in messages[-1]


def test_mos_range_0_100(tmp_path):
    jsonl = write_jsonl(tmp_path / "k.jsonl", [record(mos=87.5)])
    (rec,) = read_records(jsonl, tmp_path, mos_range=(0, 100)).records
    assert rec.mos == 87.5
    with pytest.raises(RecordError, match="outside mos_range"):
        read_records(write_jsonl(tmp_path / "k2.jsonl", [record(mos=101)]), tmp_path, mos_range=(0, 100))


def test_map_mos():
    assert map_mos(0, (0, 100)) == 1.0
    assert map_mos(100, (0, 100)) == 5.0
    assert map_mos(50, (0, 100)) == 3.0
    assert map_mos(3.418571, (1, 5)) == pytest.approx(3.418571)
    assert map_mos(3, [1, 5]) == 3.0
    assert math.isclose(map_mos(25, (0, 100)), 2.0)
    with pytest.raises(ValueError):
        map_mos(3, (5, 1))


def test_resolve_video_path_is_lexical(tmp_path):
    root = str(tmp_path / "root")
    assert resolve_video_path("a/b.mp4", root) == os.path.join(root, "a", "b.mp4")
    assert resolve_video_path("a/../b.mp4", root) == os.path.join(root, "b.mp4")
    assert resolve_video_path("../root2/x.mp4", root) is None  # a sibling sharing the prefix is outside
    assert resolve_video_path(".", root) is None
    assert resolve_video_path(str(tmp_path / "elsewhere.mp4"), root) is None


def test_bad_arguments(tmp_path):
    jsonl = write_jsonl(tmp_path / "a.jsonl", [record()])
    with pytest.raises(ValueError):
        read_records(jsonl, tmp_path, on_error="ignore")
    with pytest.raises(ValueError):
        read_records(jsonl, tmp_path, mos_range=(5, 5))
