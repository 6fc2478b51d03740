import json
import math

import numpy as np
import pytest
from PIL import Image

from vqathinker.commands import plot_training as plot_training_command
from vqathinker.evaluation import report
from vqathinker.evaluation.metrics import compute_metrics


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100
        assert len(np.unique(np.asarray(image.convert("L")))) > 2  # something was drawn


def details_for(preds, mos, **extra):
    return compute_metrics(preds, mos) | {"unparsed": 1, "failed_videos": 0} | extra


def test_benchmark_report_and_summary(tmp_path):
    rng = np.random.default_rng(0)
    preds = rng.uniform(1, 5, 30)
    mos = 20 * preds + rng.normal(0, 5, 30)
    good = report.write_benchmark_report(tmp_path, "konvid", details_for(preds, mos), preds, mos)
    empty = report.write_benchmark_report(tmp_path, "livevqc", details_for([], []), [], [])
    assert set(good) == set(report.SUMMARY_KEYS)
    json_path, md_path = report.write_summary(tmp_path, {"konvid": good, "livevqc": empty})

    metrics = json.loads(json_path.read_text())
    assert metrics["konvid"]["n"] == 30 and metrics["konvid"]["unparsed"] == 1
    assert metrics["konvid"]["srcc"] == pytest.approx(good["srcc"])
    assert metrics["livevqc"]["srcc"] is None  # NaN is written as null, the file is strict JSON
    per_benchmark = json.loads((tmp_path / "konvid.json").read_text())
    assert per_benchmark["logistic_fit_ok"] and len(per_benchmark["logistic_params"]) == 4

    table = md_path.read_text()
    assert "| Benchmark | SRCC | PLCC | PLCC (raw) | KRCC | RMSE | n | unparsed | failed |" in table
    assert f"| konvid | {good['srcc']:.4f} | {good['plcc_logistic']:.4f} |" in table
    assert "| livevqc | n/a | n/a | n/a | n/a | n/a | 0 | 1 | 0 |" in table
    assert_png(tmp_path / "konvid.png")
    assert_png(tmp_path / "livevqc.png")


def test_json_ready_replaces_non_finite_floats():
    data = {"a": math.nan, "b": [np.float64(1.5), math.inf], "c": np.int64(3)}
    assert report.json_ready(data) == {"a": None, "b": [1.5, None], "c": 3}


def write_state(folder, steps, offset=0.0):
    folder.mkdir(parents=True, exist_ok=True)
    history = []
    for step in range(1, steps + 1):
        history.append(
            {
                "step": step,
                "loss": 0.1 / step,
                "reward": 1.0 + step / 10 + offset,
                "rewards/format/mean": 0.5,
                "rewards/reg/mean": step / 20,
                "rewards/format/std": 0.1,
                "kl": 0.01 * step,
                "learning_rate": 1e-6,
            }
        )
    history.append({"step": steps, "train_runtime": 12.0, "train_loss": 0.05})
    state = {"global_step": steps, "log_history": history}
    (folder / "trainer_state.json").write_text(json.dumps(state))


def test_training_curves_reads_trl_keys(tmp_path):
    write_state(tmp_path, 3)
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    panels = report.training_curves(history)
    assert set(panels) == {"reward", "loss", "kl"}
    assert set(panels["reward"]) == {"total (weighted)", "format", "reg"}
    assert panels["loss"]["loss"][0] == [1, 2, 3]


def test_plot_training_uses_the_newest_state(tmp_path, capsys):
    write_state(tmp_path / "checkpoint-2", 2)
    write_state(tmp_path / "checkpoint-10", 10)
    write_state(tmp_path / "checkpoint-5", 5)
    assert report.find_trainer_state(tmp_path) == tmp_path / "checkpoint-10" / "trainer_state.json"
    write_state(tmp_path, 10)  # the end of training writes the same step into output_dir
    assert report.find_trainer_state(tmp_path) == tmp_path / "trainer_state.json"

    assert plot_training_command.main([str(tmp_path)]) == 0
    out = tmp_path / "training_curves.png"
    assert capsys.readouterr().out.strip() == str(out)
    assert_png(out)


def test_plot_training_without_logs_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        plot_training_command.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no trainer_state.json" in capsys.readouterr().err
