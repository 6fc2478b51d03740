"""Run by ``accelerate launch`` from tests/test_shared_prompt_deepspeed.py: 2 GRPO steps under DeepSpeed on
CPU with fixed rollouts (tests/shared_prompt_helpers.py).

Usage: ``accelerate launch ... tests/deepspeed_shared_prompt_run.py MODEL_DIR OUT_JSON SHARED BETA VIDEO...``
(SHARED: 1 or 0, the shared_prompt setting). The main process writes per-step loss and gradient norm, the
language-model positions read, the type of the model the loss was computed through and the ZeRO stage.

DeepSpeed's communication layer is initialised first, as accelerate does on GPUs but not with ``use_cpu``:
without it the first ``deepspeed.zero.Init`` (transformers loading trl's ZeRO-3 reference model) reads the
world size as 1 and fails DeepSpeed's batch-size check (``train_batch_size is not equal to
micro_batch_per_gpu * gradient_acc_step * world_size 4 != 2 * 1 * 1``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import deepspeed
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.shared_prompt_helpers import PositionCounter, build_trainer  # noqa: E402


def run(model_dir: str, videos: list[tuple[str, float]], out: Path, shared: bool, beta: float) -> dict:
    trainer = build_trainer(
        model_dir,
        videos,
        out,
        shared_prompt=shared,
        beta=beta,
        max_steps=2,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        per_device_train_batch_size=2,  # one video per process and step (G = 2)
    )
    counter = PositionCounter(trainer)
    wrappers = []
    compute_loss = trainer.compute_loss
    trainer.compute_loss = lambda model, *a, **k: (
        wrappers.append(type(model).__name__) or compute_loss(model, *a, **k)
    )
    trainer.train()
    counter.remove()
    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    return {
        "loss": [entry["loss"] for entry in steps],
        "grad_norm": [entry["grad_norm"] for entry in steps],
        "positions": counter.positions,
        "wrappers": sorted(set(wrappers)),
        "zero_stage": trainer.accelerator.state.deepspeed_plugin.zero_stage,
    }


def main() -> None:
    model_dir, out, shared, beta = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1", float(sys.argv[4])
    videos = [(path, 1.5 + i) for i, path in enumerate(sys.argv[5:])]
    torch.set_num_threads(1)
    deepspeed.comm.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
    result = run(model_dir, videos, out.parent / out.stem, shared=shared, beta=beta)
    if int(os.environ.get("RANK", "0")) == 0:
        out.write_text(json.dumps(result))
    # both ranks leave the gloo group together: a rank exiting with the group alive can abort at interpreter
    # shutdown ("terminate called without an active exception", SIGABRT, seen once in a full-suite run)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
