"""The messages a researcher gets for bad data: a truncated jsonl line, a line with several problems, MOS on a
0-100 scale read as 1-5, check-data's count of decoded videos, and training on a file with no usable line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media import counter_frames, write_video

from vqathinker.cli import main as cli_main
from vqathinker.commands.check_data import main as check_main
from vqathinker.data.records import RecordError, read_records

REPO = Path(__file__).resolve().parents[1]


def line(i, video="a.mp4", mos=3.0) -> str:
    turns = [{"from": "human", "value": "How good is this video?"}, {"from": "gpt", "value": mos}]
    return json.dumps({"id": i, "dataset_name": "t", "image": [video], "conversations": turns})


def read_error(tmp_path, text: str) -> RecordError:
    jsonl = tmp_path / "cut.jsonl"
    jsonl.write_text(text)
    with pytest.raises(RecordError) as info:
        read_records(jsonl, tmp_path)
    return info.value


def test_a_line_cut_inside_a_string_says_truncated_without_a_doubled_at(tmp_path):
    full = line(0)
    cut = full[: full.index("How good") + 5]  # ends inside the question string, then a newline
    error = read_error(tmp_path, cut + "\n")
    assert str(error) == (
        f"{tmp_path / 'cut.jsonl'}:1: malformed JSON (Invalid control character at column {len(cut) + 1}): "
        f"the line stops at column {len(cut)} inside its JSON object; it looks cut off (truncated)"
    )
    assert "at at" not in str(error) and error.kind == "malformed_json"


def test_a_last_line_cut_without_a_newline_says_truncated(tmp_path):
    full = line(0)
    error = read_error(tmp_path, full[: full.index("How good") + 5])
    assert "malformed JSON (Unterminated string starting at column" in str(error)
    assert str(error).endswith("it looks cut off (truncated)")
    error = read_error(tmp_path, full[: full.index('"conversations"')] + "\n")  # cut after a comma
    assert "malformed JSON (Expecting property name enclosed in double quotes at column" in str(error)
    assert str(error).endswith("it looks cut off (truncated)")


def test_a_syntax_error_inside_the_line_is_not_called_truncated(tmp_path):
    error = read_error(tmp_path, line(0).replace('"dataset_name"', "dataset_name") + "\n")
    assert "malformed JSON (Expecting property name enclosed in double quotes at column 11)" in str(error)
    assert "truncated" not in str(error)


def test_every_problem_of_a_line_is_in_its_error(tmp_path):
    error = read_error(tmp_path, line(0, video="../outside.mp4", mos="good") + "\n")
    assert error.problems == (
        ("path_escape", f"video path '../outside.mp4' escapes the video root {tmp_path}"),
        ("bad_mos", "MOS must be a number, got 'good'"),
    )
    assert str(error).endswith("escapes the video root " + f"{tmp_path}; MOS must be a number, got 'good'")


def test_skipping_counts_a_line_under_each_of_its_kinds_once(tmp_path):
    jsonl = tmp_path / "two.jsonl"
    no_turns = json.dumps({"id": 1, "image": ["../x.mp4"], "conversations": []})  # no human, no gpt turn
    jsonl.write_text("\n".join([line(0), line(2, "../x.mp4", mos=9.0), no_turns]) + "\n")
    result = read_records(jsonl, tmp_path, on_error="skip")
    assert len(result.records) == 1 and len(result.rejected) == 2
    assert result.skipped == {"path_escape": 2, "mos_out_of_range": 1, "missing_key": 1}
    assert result.examples["missing_key"] == [f"{jsonl}:3: no 'human' turn in 'conversations'"]


def test_a_0_100_mos_read_as_1_5_gets_a_mos_range_hint(tmp_path):
    error = read_error(tmp_path, line(0, mos=73.5) + "\n")
    assert error.kind == "mos_out_of_range"
    assert str(error).endswith(
        "MOS 73.5 outside mos_range [1.0, 5.0] (is the file on another scale, e.g. 0-100? "
        "set its mos_range: [0, 100] in the dataset YAML, or --mos_range 0 100)"
    )
    jsonl = tmp_path / "k.jsonl"
    jsonl.write_text(line(0, mos=101) + "\n" + line(1, mos=5.5) + "\n")
    with pytest.raises(RecordError) as info:  # outside an explicit 0-100 range: no hint
        read_records(jsonl, tmp_path, mos_range=(0, 100))
    assert str(info.value).endswith("MOS 101.0 outside mos_range [0.0, 100.0]")
    jsonl.write_text(line(0, mos=0.5) + "\n")
    with pytest.raises(RecordError) as info:  # below 1: no 0-100 hint
        read_records(jsonl, tmp_path)
    assert str(info.value).endswith("MOS 0.5 outside mos_range [1.0, 5.0]")


@pytest.fixture
def videos(tmp_path) -> Path:
    root = tmp_path / "videos"
    root.mkdir()
    for name in ("good0.mp4", "good1.mp4"):
        write_video(root / name, counter_frames(6, 32, 24))
    return root


def test_check_data_reports_a_bad_mos_and_the_missing_video_of_the_same_line(tmp_path, videos, capsys):
    jsonl = tmp_path / "data.jsonl"
    lines = [line(0, "good0.mp4"), line(1, "good1.mp4"), line(2, "gone.mp4", mos="n/a"), line(3, "good0.mp4")]
    jsonl.write_text("\n".join(lines) + "\n")
    args = [str(jsonl), "--video_root", str(videos), "--workers", "1", "--no_progress"]
    assert check_main(args) == 1
    out = capsys.readouterr().out
    assert "records: 4, ok: 3, distinct videos decoded: 2 of 3\n" in out
    assert f"\nbad_mos: 1\n  {jsonl}:3: MOS must be a number, got 'n/a'\n" in out
    assert f"\nvideo_missing: 1\n  {jsonl}:3: " in out and str(videos / "gone.mp4") in out


def test_check_data_hints_at_mos_range_and_takes_it_in_either_spelling(tmp_path, videos, capsys):
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join([line(0, "good0.mp4", 62.0), line(1, "good1.mp4", 35.5)]) + "\n")
    args = [str(jsonl), "--video_root", str(videos), "--workers", "1", "--no_progress"]
    assert check_main(args) == 1
    out = capsys.readouterr().out
    assert "mos_out_of_range: 2\n" in out and "set its mos_range: [0, 100]" in out
    assert "records: 2, ok: 0, distinct videos decoded: 2 of 2" in out  # the videos of bad lines are checked
    assert check_main([*args, "--mos_range", "0", "100"]) == 0
    assert "records: 2, ok: 2, distinct videos decoded: 2 of 2\nno problems found" in capsys.readouterr().out


def test_training_on_a_file_whose_every_record_is_skipped_names_the_file_and_the_kinds(tmp_path, videos):
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("\n".join([line(0, "good0.mp4", 62.0), line(1, "good1.mp4", 35.5), '{"id": 2,']) + "\n")
    recipe = str(REPO / "configs" / "grpo_lsvq.yaml")
    args = ["train", "--config", recipe, "--bf16", "false", "--use_cpu", "true", "--data_jsonl", str(jsonl)]
    args += ["--video_root", str(videos), "--bad_records", "skip", "--output_dir", str(tmp_path / "out")]
    weights = tmp_path / "SLOWFAST_8x8_R50.pyth"  # the recipe's motion branch: only its path is checked first
    weights.write_bytes(b"")
    args += ["--motion_weights", str(weights)]
    with pytest.raises(ValueError) as info:
        cli_main(args)
    assert str(info.value).splitlines() == [
        "the dataset is empty: no valid record in any source",
        f"{jsonl}: all 3 record(s) skipped (mos_out_of_range: 2, malformed_json: 1)",
        f"  {jsonl}:1: MOS 62.0 outside mos_range [1.0, 5.0] (is the file on another scale, e.g. 0-100? "
        "set its mos_range: [0, 100] in the dataset YAML, or --mos_range 0 100)",
        f"  {jsonl}:3: malformed JSON (Expecting property name enclosed in double quotes at column 10): "
        "the line stops at column 9 inside its JSON object; it looks cut off (truncated)",
    ]
