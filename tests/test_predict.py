"""``vqathinker predict`` on the tiny InternVL and real encoded mp4s."""

import json

from media import counter_frames, write_video

from vqathinker.commands import predict


def test_explanation_is_the_think_text():
    text = "<think>\n sharp, a little noise \n</think><answer>3.75</answer>"
    assert predict.explanation(text) == "sharp, a little noise"
    assert predict.explanation("<answer>3</answer>") is None


def test_format_text():
    ok = {
        "video": "a.mp4",
        "score": 3.456,
        "samples": [3.456],
        "explanation": "sharp",
        "completion": "...",
        "error": None,
    }
    assert predict.format_text(ok) == "a.mp4\n  score: 3.46\n  explanation: sharp"
    unparsed = ok | {"score": None, "explanation": None, "completion": "hmm"}
    assert "score: none" in predict.format_text(unparsed) and "'hmm'" in predict.format_text(unparsed)


def test_predict_json_and_text(tiny_model_dir, tmp_path, capsys):
    videos = [
        str(write_video(tmp_path / f"v{i}.mp4", counter_frames(6, 32, 32, step=10 * i + 5))) for i in range(3)
    ]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    argv = [
        "--model_name_or_path",
        str(tiny_model_dir),
        "--num_frames",
        "2",
        "--max_new_tokens",
        "6",
        "--batch_size",
        "2",
    ]

    assert predict.main([*argv, *videos, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["video"] for r in results] == videos
    for result in results:
        assert set(result) == {"video", "score", "samples", "explanation", "completion", "error"}
        assert result["samples"] == [result["score"]]  # one greedy answer
        assert result["error"] is None and isinstance(result["completion"], str)
        assert result["score"] is None or isinstance(result["score"], float)

    assert predict.main([*argv, videos[0], str(broken), videos[1]]) == 1  # one video cannot be decoded
    out = capsys.readouterr()
    assert out.out.index(videos[0]) < out.out.index(str(broken)) < out.out.index(videos[1])  # input order
    assert "  error: " + str(broken) in out.out and "1 video(s) could not be decoded" in out.err
    assert out.out.count("  score: ") == 2
