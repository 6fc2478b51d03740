"""Multiple-choice records: lettered options, the correct option's letter, the Q-Bench release layout, and
FILE:LINE errors or counted skips for every bad item."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vqathinker.data.choices import format_question, label_index, letters_phrase, parse_options
from vqathinker.data.qbench import read_qbench
from vqathinker.data.records import RecordError, VideoRecord, read_records

QUESTION = "Which problem dominates this video?\nA. blur\nB. noise\nC. compression artifacts"
OPTIONS = ("blur", "noise", "compression artifacts")


def choice_line(i=0, video="a.mp4", answer="B", question=QUESTION, **overrides) -> dict:
    turns = [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return {"id": i, "dataset_name": "attr", "image": [video], "conversations": turns, **overrides}


def write_lines(path, lines) -> str:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return str(path)


# ------------------------------------------------------------------------------ options and labels


@pytest.mark.parametrize(
    ("question", "options"),
    [
        (QUESTION, list(OPTIONS)),
        ("Q?\n(A) dark\n(B) bright", ["dark", "bright"]),
        ("Q?\n  A) dark  \nB.bright\nAnswer with a letter.", ["dark", "bright"]),
        ("Q?\nA. one\nC. three", []),  # not letter by letter
        ("Q?\nA. only one", []),
        ("Q?\nB. x\nC. y", []),  # does not start at A
        ("Old: A. x\nNew:\nA. a\nB. b\nC. c", ["a", "b", "c"]),  # the last complete run
        ("Q?\nA. a\nB. b\nnote\nA. x", ["a", "b"]),
        ("How good? Rate it from 1 to 5.", []),
    ],
)
def test_parse_options(question, options):
    assert parse_options(question) == options


@pytest.mark.parametrize(
    ("label", "index"),
    [
        ("B", 1),
        ("B.", 1),
        ("(B)", 1),
        ("B)", 1),
        (" B ", 1),
        ("B) noise", 1),
        ("B. Noise", 1),
        ("noise", 1),
        ("  NOISE ", 1),
        ("Compression Artifacts", 2),
        ("B. blur", None),  # the letter and the text disagree
        ("D", None),  # no fourth option
        ("b", None),  # letters are uppercase
        ("B or C", None),
        ("", None),
        (1, None),
        (None, None),
    ],
)
def test_label_index(label, index):
    assert label_index(label, list(OPTIONS)) == index


def test_label_naming_two_options_by_text_names_neither():
    assert label_index("same", ["same", "Same", "other"]) is None
    assert label_index("B", ["same", "Same", "other"]) == 1


def test_format_question_and_letters():
    assert format_question(" Which? ", ["a", " b "]) == "Which?\nA. a\nB. b"
    assert parse_options(format_question("Q", list(OPTIONS))) == list(OPTIONS)
    assert letters_phrase(2) == "A or B" and letters_phrase(4) == "A, B, C or D"


# ------------------------------------------------------------------------------ jsonl records


def test_reads_choice_records(tmp_path):
    jsonl = write_lines(
        tmp_path / "attr.jsonl", [choice_line(0), choice_line(1, "b.mp4", "compression artifacts")]
    )
    first, second = read_records(jsonl, tmp_path / "videos", task="choice").records
    root = os.path.abspath(tmp_path / "videos")
    assert first == VideoRecord(
        "0", "attr", "a.mp4", os.path.join(root, "a.mp4"), QUESTION, None, jsonl, 1,
        task="choice", options=OPTIONS, answer="B",
    )  # fmt: skip
    assert second.answer == "C" and second.line == 2 and second.mos is None


CHOICE_BAD_LINES = {
    "bad_options": [choice_line(question="Which problem dominates? blur, noise or compression?")],
    "bad_answer": [choice_line(answer="E"), choice_line(answer="B or C"), choice_line(answer=2)],
    "missing_key": [
        choice_line(question=""),
        choice_line(conversations=[{"from": "human", "value": QUESTION}]),
    ],
    "path_escape": [choice_line(video="../x.mp4")],
    "malformed_json": ['{"id": 1, "image": '],
}


@pytest.mark.parametrize(
    ("kind", "line"), [(kind, line) for kind, lines in CHOICE_BAD_LINES.items() for line in lines]
)
def test_each_bad_choice_line_raises_file_and_line(tmp_path, kind, line):
    jsonl = write_lines(tmp_path / "bad.jsonl", [choice_line(0), line])
    with pytest.raises(RecordError) as info:
        read_records(jsonl, tmp_path, task="choice")
    assert str(info.value).startswith(f"{jsonl}:2: ") and info.value.kind == kind


def test_every_problem_of_a_choice_line_is_reported(tmp_path):
    jsonl = write_lines(tmp_path / "bad.jsonl", [choice_line(video="../x.mp4", answer="Z")])
    with pytest.raises(RecordError) as info:
        read_records(jsonl, tmp_path, task="choice")
    assert [kind for kind, _ in info.value.problems] == ["path_escape", "bad_answer"]
    assert "'Z' names none of the options A-C" in str(info.value)


def test_a_mos_file_read_as_choice_and_back_is_rejected(tmp_path):
    mos_line = choice_line(question="How good?", answer=3.5)
    jsonl = write_lines(tmp_path / "mos.jsonl", [mos_line])
    with pytest.raises(RecordError, match="at least two lettered options"):
        read_records(jsonl, tmp_path, task="choice")
    with pytest.raises(RecordError, match="MOS must be a number, got 'B'"):
        read_records(write_lines(tmp_path / "c.jsonl", [choice_line()]), tmp_path)
    with pytest.raises(ValueError, match="task must be one of"):
        read_records(jsonl, tmp_path, task="rank")


def test_skip_counts_bad_choice_lines(tmp_path):
    lines = [choice_line(0), *(x for bad in CHOICE_BAD_LINES.values() for x in bad), choice_line(9)]
    result = read_records(write_lines(tmp_path / "m.jsonl", lines), tmp_path, task="choice", on_error="skip")
    assert [r.id for r in result.records] == ["0", "9"]
    assert result.skipped == {kind: len(bad) for kind, bad in CHOICE_BAD_LINES.items()}
    assert result.examples["bad_answer"][0].startswith(f"{tmp_path / 'm.jsonl'}:3: the answer 'E'")


# ------------------------------------------------------------------------------ the Q-Bench layout

# Fields as the Q-Bench-Video release (video_name, answers, correct_choice, question_type, concern) and the
# Q-Bench release (img_path, candidates, correct_ans, type, concern) publish them.
QBENCH_ITEMS = [
    {
        "video_name": "a.mp4",
        "question": "Is the video blurry?",
        "answers": ["Yes", "No"],
        "correct_choice": "A",
        "question_type": "yes-or-no",
        "concern": "Technical",
    },
    {"video_name": "a.mp4_cat_b.mp4", "question": "Which one is sharper?", "answers": ["first", "second"],
     "correct_choice": "B", "question_type": "what/how", "context": "Compare"},
    {"video_name": "c.mp4", "question": "Describe the noise.", "question_type": "open_ended"},
    {"img_path": "d.jpg", "question": "How is the lighting?", "candidates": ["dark", "fine", "bright"],
     "correct_ans": "fine", "type": 2, "concern": 0, "id": "q-7"},
    {"img_path": "e.jpg", "question": "How is the lighting?", "candidates": ["dark", "fine"]},
]  # fmt: skip


def write_array(path, items) -> str:
    """A JSON array with one item per line after the opening bracket, as released files are indented."""
    path.write_text("[\n" + ",\n".join(json.dumps(item) for item in items) + "\n]\n")
    return str(path)


def test_reads_the_qbench_layout(tmp_path):
    source = write_array(tmp_path / "Q_Bench_Video_dev.json", QBENCH_ITEMS)
    result = read_qbench(source, tmp_path / "video")
    first, second = result.records
    assert first == VideoRecord(
        "Q_Bench_Video_dev-1", "Q_Bench_Video_dev", "a.mp4", str(tmp_path / "video/a.mp4"),
        "Is the video blurry?\nA. Yes\nB. No", None, source, 2,
        task="choice", options=("Yes", "No"), answer="A", categories=("question_type: yes-or-no", "concern: Technical"),
    )  # fmt: skip
    assert (second.id, second.line, second.answer, second.categories) == (
        "q-7",
        5,
        "B",
        ("type: 2", "concern: 0"),
    )
    assert parse_options(second.question) == ["dark", "fine", "bright"]
    assert result.excluded == {"video_pair": 1, "open_ended": 1, "unlabelled": 1}
    assert not result.rejected


def test_qbench_jsonl_gives_the_same_records(tmp_path):
    array = read_qbench(write_array(tmp_path / "a.json", QBENCH_ITEMS), tmp_path)
    lines = read_qbench(write_lines(tmp_path / "a.jsonl", QBENCH_ITEMS), tmp_path)
    assert [(r.question, r.answer) for r in lines.records] == [(r.question, r.answer) for r in array.records]
    assert [r.line for r in lines.records] == [1, 4]


QBENCH_BAD_ITEMS = {
    "bad_answer": {"video_name": "x.mp4", "question": "Q?", "answers": ["a", "b"], "correct_choice": "C"},
    "bad_options": {"video_name": "x.mp4", "question": "Q?", "answers": ["a", 3], "correct_choice": "A"},
    "missing_key": {"question": "Q?", "answers": ["a", "b"], "correct_choice": "A"},
    "path_escape": {"video_name": "../x.mp4", "question": "Q?", "answers": ["a", "b"], "correct_ans": "b"},
    "malformed_json": [1, 2],
}


@pytest.mark.parametrize("kind", QBENCH_BAD_ITEMS)
def test_each_bad_qbench_item_raises_file_and_line(tmp_path, kind):
    source = write_array(tmp_path / "bad.json", [QBENCH_ITEMS[0], QBENCH_ITEMS[2], QBENCH_BAD_ITEMS[kind]])
    with pytest.raises(RecordError) as info:
        read_qbench(source, tmp_path)
    assert str(info.value).startswith(f"{source}:4: ") and info.value.kind == kind


def test_qbench_skip_and_a_cut_off_array(tmp_path):
    items = [QBENCH_ITEMS[0], *QBENCH_BAD_ITEMS.values(), QBENCH_ITEMS[3]]
    result = read_qbench(write_array(tmp_path / "m.json", items), tmp_path, on_error="skip")
    assert [r.line for r in result.records] == [2, 8]
    assert result.skipped == dict.fromkeys(QBENCH_BAD_ITEMS, 1)
    text = Path(write_array(tmp_path / "whole.json", QBENCH_ITEMS)).read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: text.index('"img_path": "d.jpg"') + 10])  # the file ends inside the item of line 5
    result = read_qbench(cut, tmp_path, on_error="skip")
    assert [r.line for r in result.records] == [2] and result.skipped == {"malformed_json": 1}
    assert result.examples["malformed_json"][0].startswith(f"{cut}:5: malformed JSON")
