"""The benchmark scripts start and say what they need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_rollout_benchmark_says_it_needs_a_gpu():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_rollout_gpu.py")], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "needs a CUDA GPU" in done.stderr and "torch.cuda.is_available() is False" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_evaluation_gpu_benchmark_says_it_needs_a_gpu():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_eval_gpu.py")], capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert (
        "needs a CUDA GPU" in done.stderr
        and "benchmarks/bench_eval.py` measures the CPU paths" in done.stderr
    )
