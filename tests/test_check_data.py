"""``vqathinker check-data`` on a real dataset with good and broken videos and records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media import counter_frames, write_audio_only, write_video
from PIL import Image

from vqathinker.cli import main as cli_main
from vqathinker.commands.check_data import main
from vqathinker.data.check import run_check
from vqathinker.data.datasets import load_dataset_config


def line(i, video, mos=3.0) -> str:
    turns = [{"from": "human", "value": "How good?"}, {"from": "gpt", "value": mos}]
    return json.dumps({"id": i, "dataset_name": "t", "image": [video], "conversations": turns})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("check")
    videos = root / "videos"
    videos.mkdir()
    for i in range(4):
        write_video(videos / f"good{i}.mp4", counter_frames(8, 32, 24))
    write_video(videos / "good.webm", counter_frames(5, 32, 24), codec="libvpx-vp9")
    Image.new("RGB", (20, 10), (90, 90, 90)).save(videos / "still.jpg")
    (videos / "empty.mp4").write_bytes(b"")
    write_audio_only(videos / "audio.m4a")
    truncated = write_video(videos / "truncated.mkv", counter_frames(30, 32, 24))
    truncated.write_bytes(truncated.read_bytes()[:600])
    good = ["good0.mp4", "good1.mp4", "good2.mp4", "good3.mp4", "good.webm", "still.jpg", "good0.mp4"]
    (root / "a.jsonl").write_text(
        "\n".join(
            [line(i, v) for i, v in enumerate(good)]
            + [line(20, "empty.mp4"), line(21, "audio.m4a"), line(22, "truncated.mkv"), line(23, "nope.mp4")]
            + [
                line(30, "good1.mp4", mos=9.5),
                line(31, "../escape.mp4"),
                "{not json",
                line(33, "good2.mp4", "x"),
            ]
        )
        + "\n"
    )
    (root / "b.jsonl").write_text("\n".join(line(i, f"good{i}.mp4", mos=20 * i) for i in range(4)) + "\n")
    config = {
        "datasets": [
            {"jsonl": "a.jsonl", "video_root": "videos"},
            {"jsonl": "b.jsonl", "video_root": "videos", "mos_range": [0, 100]},
        ]
    }
    (root / "data.yaml").write_text(json.dumps(config))
    (root / "good.yaml").write_text(json.dumps({"datasets": [config["datasets"][1]]}))
    return root


EXPECTED = {
    "mos_out_of_range": (1, "a.jsonl:12: MOS 9.5 outside"),
    "path_escape": (1, "a.jsonl:13: video path '../escape.mp4' escapes"),
    "malformed_json": (1, "a.jsonl:14: malformed JSON"),
    "bad_mos": (1, "a.jsonl:15: MOS must be a number"),
    "video_empty": (1, "a.jsonl:8: "),
    "video_no_video_stream": (1, "a.jsonl:9: "),
    "video_truncated": (1, "a.jsonl:10: "),
    "video_missing": (1, "a.jsonl:11: "),
}


@pytest.mark.parametrize("workers", [1, 2])
def test_reports_every_kind_with_counts_and_examples(dataset, capsys, workers):
    code = main([str(dataset / "data.yaml"), "--workers", str(workers), "--num_frames", "4", "--no_progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "records: 19, ok: 11, distinct videos decoded: 6 of 10" in out
    for kind, (count, example) in EXPECTED.items():
        assert f"\n{kind}: {count}\n" in out
        assert example in out
    assert str(dataset / "videos" / "nope.mp4") in out


def test_run_check_counts(dataset):
    report = run_check(load_dataset_config(dataset / "data.yaml"), num_frames=3, workers=1, progress=False)
    assert report.records == 19 and report.ok == 11 and (report.videos, report.videos_checked) == (6, 10)
    assert dict(report.problems) == {kind: count for kind, (count, _) in EXPECTED.items()}


def test_clean_dataset_exits_0_through_the_cli(dataset, capsys):
    assert (
        cli_main(["check-data", str(dataset / "good.yaml"), "--workers", "2", "--decode_backend", "auto"])
        == 0
    )
    captured = capsys.readouterr()
    assert "records: 4, ok: 4" in captured.out and "no problems found" in captured.out
    assert "decoding" in captured.err  # the progress bar


def test_jsonl_with_video_root(dataset, capsys):
    args = [str(dataset / "b.jsonl"), "--video_root", str(dataset / "videos"), "--mos_range", "0", "100"]
    assert main([*args, "--workers", "1"]) == 0
    assert main([str(dataset / "b.jsonl"), "--video_root", str(dataset / "videos"), "--workers", "1"]) == 1
    assert "mos_out_of_range: 4" in capsys.readouterr().out  # 0, 20, 40, 60 are all outside 1-5


def test_usage_errors(dataset, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main([str(dataset / "a.jsonl")])
    assert info.value.code == 2 and "--video_root" in capsys.readouterr().err
    (tmp_path / "missing.yaml").write_text(
        json.dumps({"datasets": [{"jsonl": "x.jsonl", "video_root": "."}]})
    )
    assert main([str(tmp_path / "missing.yaml"), "--workers", "1"]) == 1
    assert "unreadable_jsonl: 1" in capsys.readouterr().out
    assert main([str(tmp_path / "nothing.yaml")]) == 1
    assert "nothing.yaml" in capsys.readouterr().err


def choice_line(i, video, answer="B") -> str:
    question = "Which problem dominates?\nA. blur\nB. noise"
    turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return json.dumps({"id": f"c{i}", "image": [video], "conversations": turns})


@pytest.fixture(scope="module")
def mixed(dataset) -> Path:
    """A score source, a multiple-choice jsonl (one bad answer, one missing video) and a Q-Bench release
    file (one usable item, one open-ended, one video pair), over the real videos of ``dataset``."""
    lines = [choice_line(0, "good0.mp4"), choice_line(1, "good1.mp4", "A"), choice_line(2, "good2.mp4", "Z")]
    (dataset / "attr.jsonl").write_text("\n".join([*lines, choice_line(3, "gone.mp4")]) + "\n")
    items = [
        {"video_name": "good3.mp4", "question": "Is it sharp?", "answers": ["Yes", "No"], "correct_choice": "A"},
        {"video_name": "good3.mp4", "question": "Describe it.", "question_type": "open_ended"},
        {"video_name": "good0.mp4_cat_good1.mp4", "question": "Which?", "answers": ["1st", "2nd"], "correct_choice": "A"},
    ]  # fmt: skip
    (dataset / "qbench.json").write_text(json.dumps(items, indent=1))
    sources = [
        {"jsonl": "b.jsonl", "video_root": "videos", "mos_range": [0, 100]},
        {"jsonl": "attr.jsonl", "video_root": "videos", "task": "choice", "weight": 2},
        {"jsonl": "qbench.json", "video_root": "videos", "layout": "qbench"},
    ]
    (dataset / "mixed.yaml").write_text(json.dumps({"datasets": sources}))
    (dataset / "mixed_good.yaml").write_text(json.dumps({"datasets": [sources[0], sources[2]]}))
    return dataset


def test_mixed_score_and_choice_sources(mixed, capsys):
    code = main([str(mixed / "mixed.yaml"), "--workers", "1", "--num_frames", "3", "--no_progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "attr: " in out and "(videos under " in out and "multiple-choice, vqathinker layout)" in out
    assert "qbench: " in out and "multiple-choice, qbench layout)" in out
    assert "records: 9, ok: 7, distinct videos decoded: 4 of 5" in out  # excluded items are no records
    assert "valid records per task: choice: 4, score: 4" in out
    assert "left out, not used for training (not problems): open_ended: 1, video_pair: 1" in out
    assert f"\nbad_answer: 1\n  {mixed / 'attr.jsonl'}:3: the answer 'Z' names none of the options A-B" in out
    assert f"\nvideo_missing: 1\n  {mixed / 'attr.jsonl'}:4: " in out


def test_mixed_clean_set_and_a_single_qbench_file(mixed, capsys):
    assert main([str(mixed / "mixed_good.yaml"), "--workers", "1", "--no_progress"]) == 0
    assert "no problems found" in capsys.readouterr().out
    args = [str(mixed / "qbench.json"), "--video_root", str(mixed / "videos"), "--layout", "qbench"]
    assert main([*args, "--workers", "1", "--no_progress"]) == 0
    assert "records: 1, ok: 1" in capsys.readouterr().out
    args = [str(mixed / "attr.jsonl"), "--video_root", str(mixed / "videos"), "--task", "choice"]
    assert main([*args, "--workers", "1", "--no_progress"]) == 1
    assert main([str(mixed / "attr.jsonl"), "--video_root", str(mixed / "videos"), "--workers", "1"]) == 1
    assert "bad_mos: 4" in capsys.readouterr().out  # read as MOS records, the letters are no MOS
