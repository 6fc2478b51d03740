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
