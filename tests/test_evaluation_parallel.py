"""Data-parallel evaluate: `NUM_GPUS=2 bash run_scripts/run_eval.sh` (2 CPU processes, gloo) writes the same CSV
and metrics as one process, and a run with a process killed mid-benchmark resumes without redoing a video."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from media import counter_frames, write_video

from vqathinker.commands import evaluate
from vqathinker.evaluation.predictions import part_files, read_predictions_csv

REPO = Path(__file__).resolve().parents[1]
VIDEOS = 12
# batch_size 1: each video is answered alone, so which process answers it changes nothing in the numbers
OPTIONS = ["--num_frames", "4", "--max_new_tokens", "20", "--batch_size", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Twelve real mp4s of rising brightness and one corrupt file, with a benchmark list naming them."""
    root = tmp_path_factory.mktemp("parallel_data")
    (root / "clips").mkdir()
    annotations = []
    for i in range(VIDEOS):
        write_video(root / "clips" / f"v{i}.mp4", counter_frames(8, 48, 48, step=3 + 2 * i))
        annotations.append({"image_id": f"v{i}.mp4", "ann_type": "score", "score": str(10.0 + 7 * i)})
    (root / "clips" / "broken.mp4").write_bytes(b"not a video")
    annotations.insert(5, {"image_id": "broken.mp4", "ann_type": "score", "score": "50"})
    (root / "labels.json").write_text(json.dumps({"annotations": annotations}))
    benchmark = {"annotations": "labels.json", "format": "json", "video_root": "clips", "mos_range": [0, 100]}
    (root / "benchmarks.yaml").write_text(yaml.safe_dump({"benchmarks": {"set": benchmark}}))
    return root


def script_env(model, data, output, tag: str, processes: int) -> dict[str, str]:
    return {
        **os.environ,
        "VIRTUAL_ENV": sys.prefix,  # run_scripts/env.sh: this interpreter
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MODEL_PATH": str(model),
        "BENCHMARKS": str(data / "benchmarks.yaml"),
        "DATA_ROOT": str(data),
        "OUTPUT_DIR": str(output),
        "NUM_GPUS": str(processes),
        "MAIN_PROCESS_PORT": str(29540 + processes + len(tag)),
        "VQA_TEST_RUN": tag,  # marks this run's processes
    }


def launch(model, data, output, tag: str, processes: int = 2) -> subprocess.Popen:
    return subprocess.Popen(
        ["bash", str(REPO / "run_scripts" / "run_eval.sh"), *OPTIONS],
        env=script_env(model, data, output, tag, processes),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def processes_of(tag: str, rank: int | None = None) -> list[int]:
    """Pids of the processes whose environment has ``VQA_TEST_RUN=tag`` (and ``RANK=rank``)."""
    wanted = {f"VQA_TEST_RUN={tag}".encode()} | ({f"RANK={rank}".encode()} if rank is not None else set())
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and wanted <= environ and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture(scope="module")
def one_process(answering_model_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "eval"
    argv = ["--model_name_or_path", str(answering_model_dir), "--benchmarks", str(data / "benchmarks.yaml")]
    assert evaluate.main([*argv, "--data_root", str(data), "--output_dir", str(out), *OPTIONS]) == 0
    return out


@pytest.mark.slow
def test_two_processes_write_what_one_writes(answering_model_dir, data, one_process, tmp_path):
    out = tmp_path / "two"
    run = launch(answering_model_dir, data, out, "equal")
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output[-4000:]
    assert "[1/2]" in output and "[2/2]" in output  # one progress bar per process
    csv_one, csv_two = one_process / "predictions" / "set.csv", out / "predictions" / "set.csv"
    assert csv_two.read_text() == csv_one.read_text()  # the same rows, in label order
    assert len(read_predictions_csv(csv_two)) == VIDEOS and not part_files(csv_two)
    assert json.loads((out / "metrics.json").read_text()) == json.loads(
        (one_process / "metrics.json").read_text()
    )
    details = json.loads((out / "set.json").read_text())
    assert details["settings"]["processes"] == 2 and details["failed"][0]["video"] == "broken.mp4"
    assert details["n"] >= 2  # the answering model's scores are parsed: the comparison is not of blanks


def kill_process_one_midway(model, data, out: Path) -> dict:
    """Evaluate on two processes and SIGKILL process 1 once its part file holds two rows; returns the rows the
    part files keep (none when the run had already merged them: the kill came after the benchmark's end)."""
    run = launch(model, data, out, "kill")
    part = out / "predictions" / "set.part-1.csv"
    deadline = time.monotonic() + 300
    while len(read_predictions_csv(part, repair=False)) < 2:
        assert run.poll() is None, run.communicate()[0][-4000:]
        assert time.monotonic() < deadline, "process 1 never wrote two rows"
        time.sleep(0.05)
    # process 1 and its decode workers (forked: the same command line), not the launcher's shell
    ranked = [
        pid
        for pid in processes_of("kill", rank=1)
        if b"vqathinker.cli" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    [rank_one] = [pid for pid in ranked if parent(pid) not in ranked]
    os.kill(rank_one, signal.SIGKILL)  # mid-benchmark: its part file may end in a half-written row
    run.communicate(timeout=120)
    assert run.returncode != 0
    deadline = time.monotonic() + 5
    while processes_of("kill") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of("kill") == []  # the decode workers ended with their process
    return {row.video: row for path in part_files(out / "predictions" / "set.csv")
            for row in read_predictions_csv(path, repair=False)}  # fmt: skip


@pytest.mark.slow
def test_a_killed_process_resumes_without_redoing(answering_model_dir, data, one_process, tmp_path):
    out = tmp_path / "killed"
    for _ in range(3):  # a starved test process can send the kill after the last row: set the run up again
        before = kill_process_one_midway(answering_model_dir, data, out)
        if before or not (out / "predictions" / "set.csv").exists():
            break
        shutil.rmtree(out)
    assert 2 <= len(before) < VIDEOS and not (out / "predictions" / "set.csv").exists()

    rerun = launch(answering_model_dir, data, out, "rerun")
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output[-4000:]
    rows = read_predictions_csv(out / "predictions" / "set.csv")
    assert [row.video for row in rows] == [f"v{i}.mp4" for i in range(VIDEOS)]  # each video once
    assert all(row == before[row.video] for row in rows if row.video in before)  # kept, not redone
    details = json.loads((out / "set.json").read_text())
    assert (details["resumed"], details["generated"]) == (len(before), VIDEOS - len(before))
    csv_one = one_process / "predictions" / "set.csv"
    assert (out / "predictions" / "set.csv").read_text() == csv_one.read_text()
