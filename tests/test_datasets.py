"""YAML dataset configs: path resolution, MOS mapping, caps, mixing weights, a 28k-line index."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from vqathinker.data.datasets import DatasetSource, build_dataset, load_dataset_config
from vqathinker.data.prompts import QUALITY_QUESTION, build_choice_conversation, build_conversation
from vqathinker.data.records import RecordError
from vqathinker.training.configs import VQADataArguments

REPO = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, moses, prefix="v", question=QUALITY_QUESTION, extra_lines=()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for i, mos in enumerate(moses):
            human = {"from": "human", "value": question}
            obj = {"id": f"{prefix}{i}", "dataset_name": prefix, "image": [f"{prefix}/{i}.mp4"]}
            handle.write(json.dumps({**obj, "conversations": [human, {"from": "gpt", "value": mos}]}) + "\n")
        for line in extra_lines:
            handle.write(line + "\n")
    return path


def write_yaml(path: Path, entries: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"datasets": entries}))  # JSON is YAML
    return path


@pytest.fixture
def two_sources(tmp_path) -> Path:
    write_jsonl(tmp_path / "data/a/train.jsonl", [1.0, 3.0, 5.0, 2.0], prefix="a")
    write_jsonl(tmp_path / "data/b/train.jsonl", [0, 25, 50, 75, 100, 60], prefix="b", question="Rate it.")
    return write_yaml(
        tmp_path / "configs/mix.yaml",
        [
            {"jsonl": "../data/a/train.jsonl", "video_root": "../data/a/videos"},
            {"jsonl": "../data/b/train.jsonl", "video_root": "../data/b", "mos_range": [0, 100], "name": "B"},
        ],
    )


def test_paths_are_relative_to_the_yaml_file(two_sources, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "data")  # the working directory must not matter
    a, b = load_dataset_config(two_sources)
    assert a == DatasetSource(
        jsonl=str(tmp_path / "data/a/train.jsonl"), video_root=str(tmp_path / "data/a/videos"), name="train"
    )
    assert b.video_root == str(tmp_path / "data/b") and b.mos_range == (0.0, 100.0) and b.name == "B"


def test_absolute_paths_and_env_vars(tmp_path, monkeypatch):
    monkeypatch.setenv("VQA_TEST_ROOT", str(tmp_path / "elsewhere"))
    config = write_yaml(
        tmp_path / "c.yaml",
        [{"jsonl": str(tmp_path / "abs.jsonl"), "video_root": "$VQA_TEST_ROOT/videos"}],
    )
    (source,) = load_dataset_config(config)
    assert source.jsonl == str(tmp_path / "abs.jsonl")
    assert source.video_root == str(tmp_path / "elsewhere/videos")


def test_build_maps_mos_and_builds_prompts(two_sources, tmp_path):
    ds = build_dataset(VQADataArguments(dataset_config=str(two_sources), num_frames=4))
    assert ds.column_names == [
        *("prompt", "mos", "video", "id", "dataset_name", "question"),
        *("task", "answer", "options"),
    ]
    assert set(ds["task"]) == {"score"} and set(ds["answer"]) == {None} and ds["options"] == [[]] * 10
    assert ds["id"] == ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3", "b4", "b5"]
    assert ds["mos"] == pytest.approx([1.0, 3.0, 5.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 3.4])
    assert ds["video"][0] == str(tmp_path / "data/a/videos/a/0.mp4")
    assert ds["video"][4] == str(tmp_path / "data/b/b/0.mp4")
    assert ds["question"][4] == "Rate it."
    # Arrow adds "text": None to image blocks; otherwise the conversation is build_conversation's
    for row in (ds[0], ds[4]):
        expected = build_conversation(row["question"], 4)
        got = [{k: v for k, v in block.items() if v is not None} for block in row["prompt"][0]["content"]]
        assert got == expected[0]["content"] and row["prompt"][0]["role"] == "user"


def test_max_samples_is_a_seeded_subset_in_file_order(tmp_path):
    write_jsonl(tmp_path / "big.jsonl", [1 + 4 * i / 99 for i in range(100)], prefix="x")
    config = write_yaml(tmp_path / "c.yaml", [{"jsonl": "big.jsonl", "video_root": ".", "max_samples": 10}])
    args = VQADataArguments(dataset_config=str(config))
    ids = build_dataset(args, seed=0)["id"]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert ids == sorted(ids, key=lambda s: int(s[1:]))
    assert build_dataset(args, seed=0)["id"] == ids
    assert build_dataset(args, seed=1)["id"] != ids


@pytest.mark.parametrize(("weight", "count"), [(1.0, 20), (0.5, 10), (2, 40), (1.5, 30), (0.01, 0)])
def test_weight_resamples(tmp_path, weight, count):
    write_jsonl(tmp_path / "a.jsonl", [3.0] * 20, prefix="a")
    write_jsonl(tmp_path / "b.jsonl", [3.0] * 7, prefix="b")
    config = write_yaml(
        tmp_path / "c.yaml",
        [{"jsonl": "a.jsonl", "video_root": ".", "weight": weight}, {"jsonl": "b.jsonl", "video_root": "."}],
    )
    ds = build_dataset(VQADataArguments(dataset_config=str(config)), seed=3)
    assert Counter(ds["dataset_name"]) == Counter({"a": count, "b": 7}) - Counter()
    ids = Counter(i for i in ds["id"] if i.startswith("a"))
    # every record appears floor(weight) or floor(weight) + 1 times
    assert set(ids.values()) <= {int(weight), int(weight) + 1}
    if weight >= 1:
        assert len(ids) == 20


def test_single_jsonl_from_the_arguments(tmp_path):
    write_jsonl(tmp_path / "k/train.jsonl", [10, 90], prefix="k")
    args = VQADataArguments(data_jsonl=str(tmp_path / "k/train.jsonl"), mos_range=[0, 100])
    ds = build_dataset(args)
    assert ds["mos"] == pytest.approx([1.4, 4.6])
    assert ds["video"] == [
        str(tmp_path / "k/k/0.mp4"),
        str(tmp_path / "k/k/1.mp4"),
    ]  # root: the jsonl's folder


def test_bad_records_policy(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [3.0, 4.0], prefix="a", extra_lines=["{broken", '{"id": 9}'])
    args = VQADataArguments(data_jsonl=str(tmp_path / "a.jsonl"), video_root=str(tmp_path))
    with pytest.raises(RecordError, match=r"a.jsonl:3: malformed JSON"):
        build_dataset(args)
    args.bad_records = "skip"
    assert build_dataset(args)["id"] == ["a0", "a1"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"jsonl": "a.jsonl"}, "needs 'jsonl' and 'video_root'"),
        ({"jsonl": "a.jsonl", "video_root": ".", "wieght": 2}, "unknown key"),
        ({"jsonl": "a.jsonl", "video_root": ".", "mos_range": [5, 1]}, "high > low"),
        ({"jsonl": "a.jsonl", "video_root": ".", "mos_range": 5}, "mos_range"),
        ({"jsonl": "a.jsonl", "video_root": ".", "weight": 0}, "weight"),
        ({"jsonl": "a.jsonl", "video_root": ".", "max_samples": 2.5}, "max_samples"),
        ({"jsonl": "a.jsonl", "video_root": ".", "max_samples": 0}, "max_samples"),
        ({"jsonl": "a.jsonl", "video_root": ".", "task": "rank"}, "task must be one of"),
        ({"jsonl": "a.jsonl", "video_root": ".", "layout": "qbench", "task": "score"}, r"\['choice'\]"),
        ({"jsonl": "a.jsonl", "video_root": ".", "layout": "lsvq"}, "layout must be one of"),
    ],
)
def test_config_errors(tmp_path, entry, message):
    with pytest.raises(ValueError, match=message):
        load_dataset_config(write_yaml(tmp_path / "c.yaml", [entry]))


def test_empty_or_missing(tmp_path):
    (tmp_path / "empty.yaml").write_text("datasets: []\n")
    with pytest.raises(ValueError, match="non-empty"):
        load_dataset_config(tmp_path / "empty.yaml")
    config = write_yaml(tmp_path / "c.yaml", [{"jsonl": "nope.jsonl", "video_root": "."}])
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        build_dataset(VQADataArguments(dataset_config=str(config)))
    with pytest.raises(ValueError, match="dataset_config"):
        build_dataset(VQADataArguments())


@pytest.mark.parametrize("config", sorted((REPO / "configs/datasets").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_parse_with_repo_relative_paths(config):
    for source in load_dataset_config(config):
        assert Path(source.jsonl).is_relative_to(REPO / "data")
        assert Path(source.video_root).is_relative_to(REPO / "data")


def test_indexes_28k_records_without_opening_a_video(tmp_path):
    jsonl = write_jsonl(tmp_path / "lsvq.jsonl", [1 + (i % 400) / 100 for i in range(28_000)], prefix="yfcc")
    ds = build_dataset(VQADataArguments(data_jsonl=str(jsonl), video_root=str(tmp_path / "videos")))
    assert ds.num_rows == 28_000
    assert not any(os.path.exists(v) for v in ds["video"])  # none exists: indexing never needs a video
    assert ds["mos"][:3] == [1.0, 1.01, 1.02] and ds["video"][1].endswith("1.mp4")


def write_choice_jsonl(path: Path, answers, prefix="c") -> Path:
    question = "Which problem dominates this video?\nA. blur\nB. noise\nC. flicker"
    with path.open("w") as handle:
        for i, answer in enumerate(answers):
            turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
            handle.write(
                json.dumps({"id": f"{prefix}{i}", "image": [f"{i}.mp4"], "conversations": turns}) + "\n"
            )
    return path


def test_a_yaml_config_mixes_mos_and_multiple_choice_sources_with_weights(tmp_path):
    write_jsonl(tmp_path / "mos.jsonl", [0, 50, 100, 25], prefix="m")
    write_choice_jsonl(tmp_path / "attr.jsonl", ["A", "noise", "C. flicker"])
    items = [
        {"video_name": "q.mp4", "question": "Is it blurry?", "answers": ["Yes", "No"], "correct_choice": "B"},
        {"video_name": "r.mp4", "question": "Describe it.", "question_type": "open_ended"},
    ]
    (tmp_path / "Q_Bench_Video_dev.json").write_text(json.dumps(items, indent=2))
    config = write_yaml(
        tmp_path / "mix.yaml",
        [
            {"jsonl": "mos.jsonl", "video_root": "v", "mos_range": [0, 100]},
            {"jsonl": "attr.jsonl", "video_root": "v", "task": "choice", "weight": 2},
            {"jsonl": "Q_Bench_Video_dev.json", "video_root": "qv", "layout": "qbench", "weight": 3},
        ],
    )
    sources = load_dataset_config(config)
    assert [(s.task, s.layout) for s in sources] == [
        ("score", "vqathinker"),
        ("choice", "vqathinker"),
        ("choice", "qbench"),  # the qbench layout is multiple-choice
    ]
    ds = build_dataset(VQADataArguments(dataset_config=str(config), num_frames=4))
    assert Counter(ds["task"]) == {"score": 4, "choice": 2 * 3 + 3 * 1}
    rows = {row["id"]: row for row in ds}
    assert rows["m1"]["mos"] == 3.0 and rows["m1"]["answer"] is None and rows["m1"]["options"] == []
    assert [rows[f"c{i}"]["answer"] for i in range(3)] == ["A", "B", "C"]
    assert rows["c1"]["mos"] is None and rows["c1"]["options"] == ["blur", "noise", "flicker"]
    qbench = rows["Q_Bench_Video_dev-1"]
    assert (qbench["answer"], qbench["options"], qbench["video"]) == (
        "B",
        ["Yes", "No"],
        str(tmp_path / "qv/q.mp4"),
    )
    assert qbench["question"] == "Is it blurry?\nA. Yes\nB. No"
    for row, expected in (
        (rows["c0"], build_choice_conversation(rows["c0"]["question"], 3, 4)),
        (qbench, build_choice_conversation(qbench["question"], 2, 4)),
        (rows["m0"], build_conversation(QUALITY_QUESTION, 4)),
    ):
        got = [{k: v for k, v in block.items() if v is not None} for block in row["prompt"][0]["content"]]
        assert got == expected[0]["content"]
    assert got[-1]["text"].startswith(f"\n{QUALITY_QUESTION} First output")
    choice_text = rows["c0"]["prompt"][0]["content"][-1]["text"]
    assert "C. flicker\nAnswer with the letter of the correct option (A, B or C). First output" in choice_text
