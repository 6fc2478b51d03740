"""Evaluation reports (JSON, markdown, scatter plots) and ``vqathinker plot-training`` (reward / loss curves).

Files written by :func:`write_benchmark_report` and :func:`write_summary` into an evaluation output dir:

- ``metrics.json``: benchmark -> ``srcc``, ``plcc``, ``plcc_logistic``, ``krcc``, ``rmse``, ``n`` (scored
  videos), ``unparsed`` (answers without a score), ``failed_videos`` (videos that could not be decoded); a
  multiple-choice benchmark's entry: :mod:`vqathinker.evaluation.choice_report`.
- ``metrics.md``: the same as a markdown table.
- ``<benchmark>.json``: everything about one benchmark (all metrics, the logistic fit, the unparsed and
  failed videos, the settings) and ``<benchmark>.png``: predictions against MOS with the fitted logistic.

Undefined metrics (NaN in :mod:`vqathinker.evaluation.metrics`) are written as JSON ``null`` and as ``n/a``.
Plots use matplotlib's object-oriented API (``Figure``, Agg canvas): no display is needed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vqathinker.evaluation.metrics import FIT_FORMS

SUMMARY_KEYS = ("srcc", "plcc", "plcc_logistic", "krcc", "rmse", "n", "unparsed", "failed_videos")
"""The per-benchmark keys of ``metrics.json``."""


def json_ready(value):
    """``value`` with NaN / infinite floats replaced by None (JSON has no NaN) and numpy scalars made plain."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | Path, data) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n")
    return path


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(summaries: dict[str, dict], settings: dict | None = None) -> str:
    """One row per benchmark: SRCC, PLCC (after the logistic fit), raw PLCC, KRCC, RMSE, n, unparsed, failed;
    then the scoring ``settings`` (frames, frame size, score mode, ...) when given."""
    lines = [
        "| Benchmark | SRCC | PLCC | PLCC (raw) | KRCC | RMSE | n | unparsed | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries.items():
        cells = [s["srcc"], s["plcc_logistic"], s["plcc"], s["krcc"], s["rmse"]]
        counts = [s["n"], s["unparsed"], s["failed_videos"]]
        lines.append("| " + " | ".join([name, *map(_fmt, cells), *map(str, counts)]) + " |")
    lines += [
        "",
        "PLCC and RMSE are computed after a 4-parameter logistic fit of the predictions to the MOS (RMSE in the "
        "benchmark's MOS units); SRCC, KRCC and PLCC (raw) on the raw predictions. n counts the videos with a "
        "parsed score; unparsed answers and videos that failed to decode are left out of every metric.",
    ]
    if settings:
        shown = ", ".join(f"{key} {value}" for key, value in settings.items() if key != "model")
        lines += ["", f"Scored with: {shown}."]
    return "\n".join(lines) + "\n"


def plot_scatter(path: str | Path, preds, mos, metrics: dict, title: str) -> Path:
    """Scatter of predictions (x) against MOS (y), with the fitted logistic curve when the fit worked."""
    preds, mos = np.asarray(preds, dtype=float), np.asarray(mos, dtype=float)
    fig = Figure(figsize=(5.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.scatter(preds, mos, s=12, alpha=0.6, edgecolors="none", label="videos")
    if metrics.get("logistic_params"):
        xs = np.linspace(preds.min(), preds.max(), 200)
        curve = FIT_FORMS[metrics["fit"]](xs, *metrics["logistic_params"])
        ax.plot(xs, curve, color="C3", label=f"{metrics['fit']} fit")
    if preds.size == 0:
        ax.text(0.5, 0.5, "no parsed predictions", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("predicted score (1-5)")
    ax.set_ylabel("MOS")
    ax.set_title(
        f"{title}: SRCC {_fmt(metrics.get('srcc'), 3)}  PLCC {_fmt(metrics.get('plcc_logistic'), 3)}  "
        f"n={preds.size}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    if preds.size:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def write_benchmark_report(output_dir: str | Path, name: str, details: dict, preds, mos) -> dict:
    """Write ``<name>.json`` (``details``) and ``<name>.png``; returns the ``metrics.json`` entry of ``name``."""
    output_dir = Path(output_dir)
    write_json(output_dir / f"{name}.json", details)
    plot_scatter(output_dir / f"{name}.png", preds, mos, details, name)
    return {key: details[key] for key in SUMMARY_KEYS}


def write_summary(
    output_dir: str | Path,
    summaries: dict[str, dict],
    settings: dict | None = None,
    markdown: str | None = None,
) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.md`` for all benchmarks; returns their paths. ``metrics.md`` is
    ``markdown`` when given (a run with multiple-choice benchmarks:
    :func:`vqathinker.evaluation.choice_report.metrics_markdown`), else the table of the scores with the
    scoring ``settings``."""
    output_dir = Path(output_dir)
    json_path = write_json(output_dir / "metrics.json", summaries)
    md_path = output_dir / "metrics.md"
    md_path.write_text(markdown if markdown is not None else markdown_table(summaries, settings))
    return json_path, md_path


# ---------------------------------------------------------------------------------------------------------
# vqathinker plot-training


def find_trainer_state(output_dir: str | Path) -> Path:
    """The newest ``trainer_state.json`` of a training run: the highest ``global_step`` among the one the
    trainer writes into ``output_dir`` at the end and those of its ``checkpoint-*/`` folders."""
    output_dir = Path(output_dir)
    candidates = [output_dir / "trainer_state.json", *output_dir.glob("checkpoint-*/trainer_state.json")]
    candidates = [path for path in candidates if path.is_file()]
    if not candidates:
        raise FileNotFoundError(f"no trainer_state.json in {output_dir} or its checkpoint-*/ folders")

    def step(path: Path) -> tuple[int, bool]:
        return json.loads(path.read_text()).get("global_step", 0), path.parent == output_dir

    return max(candidates, key=step)


def training_curves(log_history: list[dict]) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """Panel -> curve -> (steps, values) from a trainer ``log_history``: the weighted total ``reward`` (trl's
    key) with each reward function's ``rewards/<name>/mean``, the ``loss``, and the ``kl`` when it was logged."""
    panels: dict[str, dict[str, tuple[list[int], list[float]]]] = {"reward": {}, "loss": {}, "kl": {}}
    for entry in log_history:
        if "step" not in entry:
            continue
        for key, value in entry.items():
            if key == "reward":
                panel, label = "reward", "total (weighted)"
            elif key.startswith("rewards/") and key.endswith("/mean"):
                panel, label = "reward", key.removeprefix("rewards/").removesuffix("/mean")
            elif key in ("loss", "kl"):
                panel, label = key, key
            else:
                continue
            if isinstance(value, int | float) and math.isfinite(value):
                steps, values = panels[panel].setdefault(label, ([], []))
                steps.append(entry["step"])
                values.append(float(value))
    return {panel: curves for panel, curves in panels.items() if curves}


def plot_training(output_dir: str | Path, out: str | Path | None = None) -> Path:
    """Plot the reward and loss curves of the training run in ``output_dir``; returns the PNG path
    (default ``output_dir/training_curves.png``)."""
    state_path = find_trainer_state(output_dir)
    panels = training_curves(json.loads(state_path.read_text()).get("log_history", []))
    if "reward" not in panels and "loss" not in panels:
        raise ValueError(f"{state_path} logs neither a reward nor a loss")
    fig = Figure(figsize=(5.0 * len(panels), 4.0), dpi=100)
    for i, (panel, curves) in enumerate(panels.items()):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for label, (steps, values) in curves.items():
            ax.plot(steps, values, marker="." if len(steps) < 50 else None, label=label)
        ax.set_xlabel("step")
        ax.set_title(panel)
        ax.grid(alpha=0.3)
        if len(curves) > 1:
            ax.legend(fontsize=8)
    fig.suptitle(str(state_path), fontsize=8)
    fig.tight_layout()
    out = Path(out) if out is not None else Path(output_dir) / "training_curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
