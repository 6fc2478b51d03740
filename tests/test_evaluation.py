"""``vqathinker evaluate`` end to end: the tiny InternVL on real encoded mp4s, both label formats, resume."""

import csv
import json

import pytest
import yaml
from media import counter_frames, write_video
from PIL import Image
from scipy import stats

from vqathinker.commands import evaluate
from vqathinker.evaluation.predictions import CSV_FIELDS, read_predictions_csv
from vqathinker.rewards import parse_score

MOS = [12.5, 30.0, 47.5, 65.0, 82.5]  # a 0-100 benchmark
FAST = ["--num_frames", "2", "--max_new_tokens", "6", "--batch_size", "2"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A data root with five real mp4s and one corrupt file, labelled in both formats."""
    root = tmp_path_factory.mktemp("vqa_data")
    videos = root / "clips"
    videos.mkdir()
    for i in range(len(MOS)):
        write_video(videos / f"v{i}.mp4", counter_frames(8, width=32, height=32, step=4 + 6 * i))
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    names = [f"v{i}.mp4" for i in range(len(MOS))] + ["broken.mp4"]
    scores = [*MOS, 50.0]
    labels = root / "labels"
    labels.mkdir()
    annotations = [
        {"image_id": n, "ann_type": "score", "score": str(s)} for n, s in zip(names, scores, strict=True)
    ]
    (labels / "test.json").write_text(json.dumps({"annotations": annotations}))
    with (labels / "test.jsonl").open("w") as handle:
        for i, (name, score) in enumerate(zip(names, scores, strict=True)):
            human = {"from": "human", "value": "How good is this video?"}
            record = {"id": i, "image": [name], "conversations": [human, {"from": "gpt", "value": score}]}
            handle.write(json.dumps(record) + "\n")
    config = {
        "benchmarks": {
            "as_json": {"name": "JSON set", "annotations": "labels/test.json", "format": "json",
                        "video_root": "clips", "mos_range": [0, 100], "num_videos": 6},
            "as_jsonl": {"annotations": "labels/test.jsonl", "format": "jsonl", "video_root": "clips",
                         "mos_range": [0, 100], "num_videos": 7},
        }
    }  # fmt: skip
    (root / "benchmarks.yaml").write_text(yaml.safe_dump(config))
    return root


def assert_png(path):
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100


def csv_rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_evaluate_both_formats_end_to_end(tiny_model_dir, data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VQA_DATA_ROOT", str(data_root))  # the data root from the environment
    out = tmp_path / "eval"
    argv = [
        "--model_name_or_path",
        str(tiny_model_dir),
        "--benchmarks",
        str(data_root / "benchmarks.yaml"),
        "--output_dir",
        str(out),
    ]
    assert evaluate.main(argv + FAST) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["as_json", "as_jsonl"]
    for key, summary in metrics.items():
        assert set(summary) == {
            "srcc",
            "plcc",
            "plcc_logistic",
            "krcc",
            "rmse",
            "n",
            "unparsed",
            "failed_videos",
        }
        assert summary["failed_videos"] == 1  # broken.mp4, listed and not fatal
        assert summary["n"] + summary["unparsed"] == len(MOS)
        rows = csv_rows(out / "predictions" / f"{key}.csv")
        assert [row["video"] for row in rows] == [f"v{i}.mp4" for i in range(len(MOS))]
        assert [float(row["mos"]) for row in rows] == MOS  # raw MOS, not rescaled
        assert sum(row["parse_ok"] == "False" for row in rows) == summary["unparsed"]
        assert all(row["pred"] == row["pred_mos"] == "" for row in rows if row["parse_ok"] == "False")
        for row in rows:  # no stand-in score; pred_mos on the benchmark's 0-100 scale
            assert json.loads(row["samples"]) == [None if row["pred"] == "" else float(row["pred"])]
            if row["pred"]:
                assert float(row["pred_mos"]) == pytest.approx((float(row["pred"]) - 1) * 25)
        assert not list((out / "predictions").glob("*.part-*.csv"))  # merged into the CSV
        details = json.loads((out / f"{key}.json").read_text())
        assert details["failed"][0]["video"] == "broken.mp4" and details["failed"][0]["kind"]
        assert len(details["unparsed_videos"]) == summary["unparsed"]
        assert details["generated"] == len(MOS) and details["resumed"] == 0
        assert details["settings"]["num_frames"] == 2
        assert_png(out / f"{key}.png")
    assert json.loads((out / "as_jsonl.json").read_text())["warnings"] == [
        "6 videos in " + str(data_root / "labels/test.jsonl") + ", the benchmark has 7"
    ]
    table = (out / "metrics.md").read_text()
    assert "| as_json |" in table and "| as_jsonl |" in table
    assert "Scored with: backend transformers, num_frames 2, frame_size 56, tokens_per_frame 16, " in table
    assert table in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_evaluate_ad_hoc_set(tiny_model_dir, data_root, tmp_path, fmt):
    out = tmp_path / "adhoc"
    argv = [
        "--model_name_or_path",
        str(tiny_model_dir),
        f"--{fmt}",
        str(data_root / "labels" / f"test.{fmt}"),
    ]
    argv += ["--video_root", str(data_root / "clips"), "--mos_range", "0", "100", "--output_dir", str(out)]
    assert evaluate.main(argv + FAST) == 0
    summary = json.loads((out / "metrics.json").read_text())["test"]
    assert summary["n"] + summary["unparsed"] == len(MOS) and summary["failed_videos"] == 1
    assert_png(out / "test.png")


def test_resume_keeps_done_rows_and_generates_only_the_rest(tiny_model_dir, data_root, tmp_path):
    out = tmp_path / "eval"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--benchmarks", str(data_root / "benchmarks.yaml")]
    argv += ["--data_root", str(data_root), "--only", "as_json", "--output_dir", str(out)] + FAST
    assert evaluate.main(argv) == 0
    csv_path = out / "predictions" / "as_json.csv"

    # Cut the run short: the CSV is gone, the process's part file has two rows done, with recognisable
    # (parsed) answers, then a row cut mid-write.
    done = [["v0.mp4", "12.5", "1.5", "12.5", "True", "[1.5]", "DONE <think>a</think><answer>1.5</answer>"],
            ["v1.mp4", "30.0", "2.25", "31.25", "True", "[2.25]",
             'DONE, "quoted"\nsecond line <answer>2.25</answer>']]  # fmt: skip
    csv_path.unlink()
    with (csv_path.parent / "as_json.part-0.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([CSV_FIELDS, *done])
        handle.write('v2.mp4,47.5,,,False,[null],"half a compl')

    assert evaluate.main(argv) == 0
    rows = csv_rows(csv_path)
    assert [row["video"] for row in rows] == [f"v{i}.mp4" for i in range(len(MOS))]  # each video once
    assert [list(row.values()) for row in rows[:2]] == done  # kept as they were, not regenerated
    assert all(not row["completion"].startswith("DONE") for row in rows[2:])
    assert rows[2]["completion"] != "half a compl"  # the cut row was dropped and generated again
    details = json.loads((out / "as_json.json").read_text())
    assert (details["resumed"], details["generated"]) == (2, 3)
    assert details["n"] >= 2 and details["n"] + details["unparsed"] == len(MOS)

    # Nothing left to do: a third run generates nothing and reports the same numbers.
    assert evaluate.main(argv) == 0
    again = json.loads((out / "as_json.json").read_text())
    assert (again["resumed"], again["generated"]) == (5, 0)
    assert again["srcc"] == details["srcc"]


def test_resume_with_other_settings_is_refused(tiny_model_dir, data_root, tmp_path, capsys):
    argv = ["--model_name_or_path", str(tiny_model_dir), "--json", str(data_root / "labels" / "test.json")]
    argv += ["--video_root", str(data_root / "clips"), "--output_dir", str(tmp_path)]
    assert evaluate.main(argv + FAST) == 0
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(argv + ["--num_frames", "3", "--max_new_tokens", "6"])
    assert exit_info.value.code == 2
    assert "other settings (num_frames: 2 -> 3)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(argv + FAST + ["--mos_range", "0", "100"])
    assert "other settings (mos_range: None -> [0.0, 100.0])" in capsys.readouterr().err
    assert evaluate.main(argv + ["--num_frames", "3", "--max_new_tokens", "6", "--overwrite"]) == 0


def test_metrics_and_report_from_a_finished_csv(tiny_model_dir, data_root, tmp_path):
    """Parsed predictions (which a random tiny model rarely writes) go through metrics and reports."""
    preds = [1.2, 2.9, 2.1, 4.0, 4.8]
    csv_path = tmp_path / "predictions" / "test.csv"
    csv_path.parent.mkdir()
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for i, (pred, mos) in enumerate(zip(preds, MOS, strict=True)):
            writer.writerow(
                [
                    f"v{i}.mp4",
                    repr(mos),
                    repr(pred),
                    repr(pred),
                    "True",
                    f"[{pred}]",
                    f"<answer>{pred}</answer>",
                ]
            )
    assert len(read_predictions_csv(csv_path)) == 5

    argv = ["--model_name_or_path", str(tiny_model_dir), "--json", str(data_root / "labels" / "test.json")]
    assert (
        evaluate.main(argv + ["--video_root", str(data_root / "clips"), "--output_dir", str(tmp_path)] + FAST)
        == 0
    )
    summary = json.loads((tmp_path / "metrics.json").read_text())["test"]
    assert summary["n"] == 5 and summary["unparsed"] == 0 and summary["failed_videos"] == 1
    assert summary["srcc"] == pytest.approx(stats.spearmanr(preds, MOS).statistic, abs=1e-12)
    assert summary["krcc"] == pytest.approx(stats.kendalltau(preds, MOS).statistic, abs=1e-12)
    assert summary["plcc"] == pytest.approx(stats.pearsonr(preds, MOS).statistic, abs=1e-12)
    details = json.loads((tmp_path / "test.json").read_text())
    assert details["generated"] == 0 and details["logistic_fit_ok"], details["logistic_fit_message"]
    assert summary["rmse"] is not None and 0 <= summary["rmse"] < 20  # MOS units (0-100)
    assert_png(tmp_path / "test.png")


def test_argument_and_benchmark_errors(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("VQA_DATA_ROOT", raising=False)
    yaml_path = str(data_root / "benchmarks.yaml")
    cases = [
        (["--benchmarks", yaml_path], "needs --data_root or $VQA_DATA_ROOT"),
        (["--benchmarks", yaml_path, "--data_root", str(data_root), "--only", "konvid"], "unknown benchmark"),
        (["--benchmarks", yaml_path, "--data_root", str(tmp_path)], "annotations " + str(tmp_path)),
        (["--json", yaml_path], "--json needs --video_root"),
        ([], "exactly one of --benchmarks, --dataset_config, --jsonl, --json or --qbench"),
        (["--json", yaml_path, "--num_frames", "0"], "num_frames must be >= 1"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit):
            evaluate.main(["--model_name_or_path", str(tmp_path), *extra])
        assert message in capsys.readouterr().err


def test_evaluate_a_dataset_config(tiny_model_dir, data_root, tmp_path):
    """Each source of a training dataset config is a benchmark, with its MOS scale."""
    config = {"datasets": [
        {"jsonl": str(data_root / "labels" / "test.jsonl"), "video_root": str(data_root / "clips"),
         "mos_range": [0, 100], "name": "mine", "weight": 2.0},
    ]}  # fmt: skip
    yaml_path = tmp_path / "data.yaml"
    yaml_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "eval"
    argv = [
        "--model_name_or_path",
        str(tiny_model_dir),
        "--dataset_config",
        str(yaml_path),
        "--output_dir",
        str(out),
    ]
    assert evaluate.main(argv + FAST) == 0
    details = json.loads((out / "mine.json").read_text())
    assert details["mos_range"] == [0.0, 100.0] and details["warnings"] == []
    assert details["n"] + details["unparsed"] == len(MOS) and details["failed_videos"] == 1
    assert [float(row["mos"]) for row in csv_rows(out / "predictions" / "mine.csv")] == MOS  # each video once
    settings = json.loads((out / "predictions" / "mine.settings.json").read_text())
    assert settings["mos_range"] == [0.0, 100.0] and settings["num_frames"] == 2


def test_sampled_scores_frame_size_and_expected_mode(answering_model_dir, data_root, tmp_path, capsys):
    """--num_samples keeps every answer's score and takes their interquartile mean (of three: the mean);
    --frame_size and --score_mode are part of the settings (a resumed CSV must match them) and of the reports."""
    argv = [
        "--model_name_or_path",
        str(answering_model_dir),
        "--json",
        str(data_root / "labels" / "test.json"),
    ]
    argv += ["--video_root", str(data_root / "clips"), "--mos_range", "0", "100", "--num_frames", "4"]
    argv += ["--max_new_tokens", "20", "--batch_size", "3"]
    sampled = [*argv, "--output_dir", str(tmp_path / "sampled"), "--num_samples", "3", "--temperature", "1.5"]
    assert evaluate.main([*sampled, "--frame_size", "112"]) == 0
    rows = csv_rows(tmp_path / "sampled" / "predictions" / "test.csv")
    assert len(rows) == len(MOS)
    for row in rows:
        samples = json.loads(row["samples"])
        kept = [s for s in samples if s is not None]
        assert len(samples) == 3
        assert (row["pred"] == "") == (not kept)
        if kept:
            assert float(row["pred"]) == pytest.approx(sum(kept) / len(kept))
    assert any(len({s for s in json.loads(row["samples"])}) > 1 for row in rows)  # sampled, not greedy
    details = json.loads((tmp_path / "sampled" / "test.json").read_text())
    assert {k: details["settings"][k] for k in ("num_samples", "temperature", "frame_size", "tokens_per_frame")} == {
        "num_samples": 3, "temperature": 1.5, "frame_size": 112, "tokens_per_frame": 64,
    }  # fmt: skip
    with pytest.raises(SystemExit):
        evaluate.main([*sampled, "--frame_size", "56"])
    assert "other settings (frame_size: 112 -> 56, tokens_per_frame: 64 -> 16)" in capsys.readouterr().err

    expected = [*argv, "--output_dir", str(tmp_path / "expected"), "--score_mode", "expected"]
    assert evaluate.main(expected) == 0
    details = json.loads((tmp_path / "expected" / "test.json").read_text())
    assert details["settings"]["score_mode"] == "expected" and details["settings"]["temperature"] is None
    rows = [row for row in csv_rows(tmp_path / "expected" / "predictions" / "test.csv") if row["pred"]]
    assert rows and all(float(row["pred"]) != parse_score(row["completion"]) for row in rows)
