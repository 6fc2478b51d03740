"""``vqathinker predict`` cuts a long explanation or completion in its plain-text output, never in --json."""

import json

from media import counter_frames, write_video

from vqathinker.commands import predict


def result(**overrides) -> dict:
    return {
        "video": "a.mp4",
        "score": 3.5,
        "explanation": "sharp",
        "completion": "",
        "error": None,
    } | overrides


def test_a_long_completion_is_cut_in_the_printout():
    completion = "\n" * 1024 + "<answer>3.5</answer>"
    text = predict.format_text(result(explanation=None, completion=completion), limit=10)
    assert text == (
        "a.mp4\n  score: 3.50\n  completion (no <think> block): "
        + repr("\n" * 10)
        + f"… ({len(completion) - 10} more characters; --json prints them all)"
    )
    assert "1034 more characters" in text
    assert len(predict.format_text(result(explanation=None, completion=completion))) < 4 * predict.PRINT_CHARS


def test_a_long_explanation_is_cut_and_a_short_one_is_whole():
    long = "x" * 30
    assert predict.format_text(result(explanation=long), limit=12).endswith(
        "  explanation: xxxxxxxxxxxx… (18 more characters; --json prints them all)"
    )
    assert predict.format_text(result(explanation=long), limit=30).endswith(f"  explanation: {long}")
    assert predict.format_text(result(explanation=long), limit=0).endswith(f"  explanation: {long}")


def test_predict_prints_the_cut_completion_and_json_keeps_it_whole(tiny_model_dir, tmp_path, capsys):
    video = str(write_video(tmp_path / "v.mp4", counter_frames(6, 32, 32)))
    argv = ["--model_name_or_path", str(tiny_model_dir), "--num_frames", "2", "--max_new_tokens", "24", video]
    assert predict.main([*argv, "--json"]) == 0
    (whole,) = json.loads(capsys.readouterr().out)
    completion = whole["explanation"] if whole["explanation"] is not None else whole["completion"]
    assert len(completion) > 8  # 24 tokens of a random model

    assert predict.main([*argv, "--print_chars", "8"]) == 0
    out = capsys.readouterr().out
    assert f"… ({len(completion) - 8} more characters; --json prints them all)" in out
    assert completion not in out and repr(completion) not in out
