"""The CPU demo: its quality ladder of real mp4s and (smoke-sized) the whole pipeline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from vqathinker.demo.ladder import DEFECTS, LEARNABLE_DEFECTS, PRISTINE, build_ladder, level_mos

REPO = Path(__file__).resolve().parents[1]


def _decode(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(float)


@pytest.fixture(scope="module")
def small_ladder(tmp_path_factory):
    out = tmp_path_factory.mktemp("ladder")
    return build_ladder(
        out, "How good is it?", num_contents=3, num_heldout=1, num_levels=2, num_frames=6, size=32
    )


def test_ladder_files_levels_and_split(small_ladder):
    ladder = small_ladder
    assert len(ladder.videos) == 3 * (1 + len(DEFECTS) * 2)
    train, heldout = ladder.split("train"), ladder.split("heldout")
    assert {v.content for v in train} == {0, 1} and {v.content for v in heldout} == {2}
    for video in ladder.videos:
        frames = _decode(ladder.video_root / video.video)
        assert frames.shape == (6, 32, 32, 3)
        assert video.mos == level_mos(video.level, 2)
        assert (video.defect == PRISTINE) == (video.level == 0)
    assert [level_mos(level, 2) for level in range(3)] == [4.5, 3.0, 1.5]
    assert [level_mos(level, 3) for level in range(4)] == [4.5, 3.5, 2.5, 1.5]
    lines = [json.loads(line) for line in ladder.heldout_jsonl.read_text().splitlines()]
    assert len(lines) == len(heldout)
    assert lines[0]["image"] == [heldout[0].video]
    assert lines[0]["conversations"][1]["value"] == heldout[0].mos
    manifest = json.loads((ladder.root / "ladder.json").read_text())
    assert [m["id"] for m in manifest] == [v.id for v in ladder.videos]
    assert set(LEARNABLE_DEFECTS) == {"dark", "bright", "contrast", "fade"}


def test_ladder_train_defects_are_held_out_only_for_the_others(tmp_path):
    ladder = build_ladder(
        tmp_path,
        "How good?",
        num_contents=3,
        num_heldout=1,
        num_levels=1,
        defects=["dark", "blur", "noise"],
        train_defects=["dark"],
        num_frames=4,
        size=32,
    )
    assert {v.defect for v in ladder.split("train")} == {PRISTINE, "dark"}
    assert {v.defect for v in ladder.split("heldout")} == {PRISTINE, "dark", "blur", "noise"}
    assert len(ladder.train_jsonl.read_text().splitlines()) == 2 * 2
    with pytest.raises(ValueError, match="subset"):
        build_ladder(
            tmp_path / "bad", "q", num_contents=3, num_heldout=1, defects=["dark"], train_defects=["fade"]
        )


def test_ladder_content_moves_and_defects_degrade(small_ladder):
    ladder = small_ladder

    def frames(defect, level, content=0):
        return _decode(ladder.video_root / f"c{content:02d}_{defect}_{level}.mp4")

    clean = frames(PRISTINE, 0)
    assert np.abs(np.diff(clean, axis=0)).mean() > 2  # moving content
    assert np.abs(clean - frames(PRISTINE, 0, content=1)).mean() > 10  # distinct contents
    assert frames("dark", 2).mean() < frames("dark", 1).mean() < clean.mean()
    assert frames("bright", 2).mean() > frames("bright", 1).mean() > clean.mean()
    assert frames("contrast", 2).std() < frames("contrast", 1).std() < clean.std()
    saturation = [(f.max(-1) - f.min(-1)).mean() for f in (clean, frames("fade", 1), frames("fade", 2))]
    assert saturation[0] > saturation[1] > saturation[2]
    detail = [np.abs(np.diff(f, axis=2)).mean() for f in (clean, frames("blur", 1), frames("blur", 2))]
    assert detail[0] > detail[1] > detail[2]
    assert np.abs(np.diff(frames("noise", 2), axis=2)).mean() > detail[0]


def test_ladder_metrics_overall_is_learnable_defects_and_pristine(small_ladder):
    from vqathinker.demo.scoring import ladder_metrics

    videos = small_ladder.split("train")
    perfect = np.array([v.mos for v in videos])
    result = ladder_metrics(videos, perfect)
    assert result["overall"]["srcc"] == pytest.approx(1.0)
    assert result["overall"]["n"] == 2 * (1 + len(LEARNABLE_DEFECTS) * 2)
    assert set(result["per_defect"]) == set(DEFECTS)
    assert all(m["srcc"] == pytest.approx(1.0) and m["n"] == 2 * 3 for m in result["per_defect"].values())
    # Perfect on the learnable defects only, constant elsewhere.
    blind = np.array([v.mos if v.defect not in ("blur", "noise") else 3.0 for v in videos])
    result = ladder_metrics(videos, blind)
    assert result["overall"]["srcc"] == pytest.approx(1.0) and result["per_defect"]["blur"]["srcc"] < 1.0
    constant = ladder_metrics(videos, np.full(len(videos), 3.0))
    assert constant["overall"]["srcc"] == 0.0 and constant["overall"]["plcc"] == 0.0
    unscored = ladder_metrics(videos, np.where(np.arange(len(videos)) % 2 == 0, perfect, np.nan))
    assert unscored["overall"]["unscored"] > 0 and unscored["overall"]["srcc"] == pytest.approx(1.0)
    # overall over the given (trained) defects; "learnable" always over every learnable defect.
    dark_only = np.array([v.mos if v.defect in ("dark", PRISTINE) else 3.0 for v in videos])
    result = ladder_metrics(videos, dark_only, overall_defects=["dark"])
    assert result["overall"]["srcc"] == pytest.approx(1.0) and result["overall"]["n"] == 2 * 3
    assert result["learnable"]["srcc"] < 1.0 and result["learnable"]["n"] == 2 * (
        1 + len(LEARNABLE_DEFECTS) * 2
    )


def test_warm_start_targets_are_format_with_random_scores(tiny_model_dir, small_ladder):
    from vqathinker.data.prompts import QUALITY_QUESTION, build_conversation
    from vqathinker.data.video import load_frames
    from vqathinker.model.loading import load_model_and_processor
    from vqathinker.model.processor import tile_size
    from vqathinker.rewards import format_reward, parse_score, regression_reward
    from vqathinker.training.configs import VQAModelConfig
    from vqathinker.training.warmstart import format_target, warm_start

    target = format_target(3.14159)
    assert format_reward([target]) == [1.0] and parse_score(target) == 3.14
    assert regression_reward([target], mos=[3.14]) == [1.0]  # two decimals: no precision penalty
    model, processor = load_model_and_processor(
        VQAModelConfig(model_name_or_path=str(tiny_model_dir)).model_options()
    )
    tokens = processor.tokenizer.tokenize(target)
    assert [t for t in tokens if re.fullmatch(r"[0-9.]", t)] == list("3.14")  # one token per digit and "."
    videos = small_ladder.split("train")[:4]
    frames = [load_frames(small_ladder.video_root / v.video, 4, size=tile_size(processor)) for v in videos]
    conversations = [build_conversation(QUALITY_QUESTION, 4)] * len(frames)
    losses = warm_start(model, processor, conversations, frames, steps=12, batch_size=4, learning_rate=3e-3)
    assert len(losses) == 12 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_demo_script_end_to_end(tmp_path):
    """The demo as a user runs it (the run script, OUTPUT_DIR from the environment), at smoke sizes."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "demo"
    smoke = {
        "ladder_contents": 3,
        "ladder_heldout": 1,
        "ladder_levels": 1,
        "ladder_frames": 4,
        "ladder_size": 32,
        "warm_start_steps": 4,
        "warm_start_batch_size": 4,
        "eval_samples": 2,
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "max_completion_length": 12,
        "logging_steps": 1,
        "num_threads": 1,
    }
    args = [f"--{key}={value}" for key, value in smoke.items()]
    env = {**os.environ, "OUTPUT_DIR": str(out)}
    run = subprocess.run(
        ["bash", str(root / "run_scripts/run_grpo_demo.sh"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"held-out SRCC before=-?\d+\.\d{3} after=-?\d+\.\d{3}", last), last
    report = json.loads((out / "demo_report.json").read_text())
    for key in ("srcc_before", "srcc_after", "plcc_before", "plcc_after", "minutes"):
        assert isinstance(report[key], float) and np.isfinite(report[key]), key
    assert set(report["per_defect"]) == set(DEFECTS)
    for metrics in report["per_defect"].values():
        assert {"srcc_before", "srcc_after", "plcc_before", "plcc_after", "learnable"} <= set(metrics)
    assert report["grpo_steps"] == 2 and report["heldout_videos"] == 1 + len(DEFECTS)
    # the warm start of `vqathinker train` (build_trainer), with the recipe's fields
    warm = json.loads((out / "warm_start" / "warm_start.json").read_text())
    assert (warm["steps"], warm["batch_size"], warm["learning_rate"]) == (4, 4, 1e-3)
    assert report["warm_start_loss"] == {"first": warm["losses"][0], "last": warm["losses"][-1]}
    for path in ("reward_curve.png", "trainer_state.json", "model/config.json", "ladder/ladder.json"):
        assert (out / path).is_file(), path
    assert list((out / "runs").glob("*/events.out.tfevents.*"))  # configs/demo.yaml reports to TensorBoard
    # The recipe trains on every defect (training scenes); the held-out scene carries every defect too.
    assert report["trained_defects"] == list(DEFECTS)
    assert len(list((out / "ladder" / "videos").glob("*.mp4"))) == 3 * (1 + len(DEFECTS))
    assert all(m["trained"] for m in report["per_defect"].values())
    assert report["learnable"]["defects"] == list(LEARNABLE_DEFECTS)
    assert all(np.isfinite(report["learnable"][key]) for key in ("srcc_before", "srcc_after"))


@pytest.mark.parametrize("recipe", sorted((REPO / "configs").glob("demo*.yaml")), ids=lambda p: p.name)
def test_every_demo_recipe_parses_with_known_defects(recipe):
    from vqathinker.commands.demo import parse_args
    from vqathinker.model.tiny import VISION_TOWERS

    demo_args, _, training_args, _ = parse_args(["--config", str(recipe)])
    assert set(demo_args.trained_defects()) <= set(demo_args.defects) <= set(DEFECTS)
    assert demo_args.trained_defects()
    assert demo_args.vision in VISION_TOWERS
    assert len(training_args.reward_weights) == len(training_args.reward_funcs)
