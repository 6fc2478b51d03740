"""The demo's trained model (its report's ``model_dir``) is a trained folder like any run's: evaluate and
predict load it, and ask label files without a question (the release's test jsons) the demo's own question,
which the folder records with its frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqathinker.commands import demo, evaluate, predict
from vqathinker.data.prompts import QUALITY_QUESTION
from vqathinker.evaluation import inference

DEMO_QUESTION = "How good is this clip?"  # the demo's records ask it; not the release's question
FRAMES = 3  # neither the tiny model's default (6) nor configs/demo.yaml's (4)
SMOKE = {
    "ladder_contents": 3,
    "ladder_heldout": 1,
    "ladder_levels": 1,
    "ladder_frames": 4,
    "ladder_size": 32,
    "warm_start_steps": 2,
    "warm_start_batch_size": 4,
    "eval_samples": 1,
    "eval_batch_size": 4,
    "max_steps": 2,
    "per_device_train_batch_size": 8,
    "num_generations": 4,
    "max_completion_length": 8,
    "num_threads": 1,
    "num_frames": FRAMES,
    "report_to": "none",
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A smoke-sized demo (two defects, two GRPO steps): its report and its output folder."""
    out = tmp_path_factory.mktemp("demo")
    argv = [f"--{key}={value}" for key, value in SMOKE.items()]
    argv += ["--defects", "dark", "bright", "--question", DEMO_QUESTION, "--output_dir", str(out)]
    assert demo.main(argv) == 0
    return json.loads((out / "demo_report.json").read_text()), out


@pytest.fixture
def asked(monkeypatch) -> list[tuple[str, str]]:
    """Every (question, prompt style) the generation path renders into a prompt."""
    seen, build = [], inference.build_conversation

    def spy(question, num_frames, style="default"):
        seen.append((question, style))
        return build(question, num_frames, style)

    monkeypatch.setattr(inference, "build_conversation", spy)
    return seen


def release_test_json(out: Path, path: Path) -> list[str]:
    """The held-out ladder videos as a VQAThinker release test json (no question, scores as 0-100 strings)."""
    heldout = [
        line
        for line in json.loads((out / "ladder" / "ladder.json").read_text())
        if line["split"] == "heldout"
    ]
    annotations = [
        {"image_id": v["video"], "ann_type": "score", "score": str(25.0 * v["mos"] - 25.0)} for v in heldout
    ]
    path.write_text(json.dumps({"annotations": annotations}))
    return [v["video"] for v in heldout]


def test_the_demo_folder_records_its_prompt(demo_run):
    report, out = demo_run
    model_dir = Path(report["model_dir"])
    assert model_dir == out / "model"
    config = json.loads((model_dir / "processor_config.json").read_text())
    assert (config["question"], config["prompt_style"], config["num_frames"]) == (
        DEMO_QUESTION,
        "default",
        FRAMES,
    )
    assert config["processor_class"] == "InternVLProcessor"  # stock-loadable, as every trained folder
    assert "| num_frames | 3 |" in (model_dir / "README.md").read_text()  # the model card of `train`


def test_evaluate_asks_question_less_labels_the_trained_question(demo_run, asked, tmp_path, capsys):
    report, out = demo_run
    labels = tmp_path / "heldout.json"
    videos = release_test_json(out, labels)
    argv = ["--model_name_or_path", report["model_dir"], "--json", str(labels)]
    argv += ["--video_root", str(out / "ladder" / "videos"), "--mos_range", "0", "100"]
    argv += ["--max_new_tokens", "8", "--decode_workers", "0", "--device", "cpu"]
    assert evaluate.main([*argv, "--output_dir", str(tmp_path / "eval")]) == 0
    assert asked == [(DEMO_QUESTION, "default")] * len(videos)
    details = json.loads((tmp_path / "eval" / "heldout.json").read_text())
    assert details["num_videos"] == len(videos) == 3 and details["settings"]["num_frames"] == FRAMES
    saved = json.loads((tmp_path / "eval" / "predictions" / "heldout.settings.json").read_text())
    assert (saved["question"], saved["prompt_style"]) == (DEMO_QUESTION, "default")
    assert f"question {DEMO_QUESTION}" in (tmp_path / "eval" / "metrics.md").read_text()

    asked.clear()  # --question overrides the folder's; --protocol release asks the release's question
    assert evaluate.main([*argv, "--output_dir", str(tmp_path / "other"), "--question", "Sharp?"]) == 0
    assert {q for q, _ in asked} == {"Sharp?"}
    asked.clear()
    release = ["--protocol", "release", "--frame_size", "56", "--output_dir", str(tmp_path / "release")]
    assert evaluate.main([*argv, *release]) == 0
    assert set(asked) == {(QUALITY_QUESTION, "release_test")}
    saved = json.loads((tmp_path / "release" / "predictions" / "heldout.settings.json").read_text())
    assert (saved["question"], saved["prompt_style"]) == (QUALITY_QUESTION, "release_test")
    capsys.readouterr()


def test_predict_asks_the_trained_question(demo_run, asked, capsys):
    report, out = demo_run
    video = str(out / "ladder" / "videos" / "c02_pristine_0.mp4")
    argv = ["--model_name_or_path", report["model_dir"], video, "--json", "--max_new_tokens", "8"]
    assert predict.main([*argv, "--decode_workers", "0", "--device", "cpu"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["video"] == video and result["error"] is None
    assert asked == [(DEMO_QUESTION, "default")]
    asked.clear()
    assert predict.main([*argv, "--decode_workers", "0", "--question", "Sharp?"]) == 0
    assert asked == [("Sharp?", "default")]
