"""The predictions CSV of a benchmark: its rows, its settings, and the part files of parallel processes.

``predictions/<benchmark>.csv`` has one row per scored video, in label order::

    video, mos, pred, pred_mos, parse_ok, samples, completion

``mos`` is the raw label on the benchmark's scale; ``pred`` the video's score on the model's own scale (1..5
when it follows the prompt): the mean of its answers' scores (:mod:`vqathinker.evaluation.inference`), empty
when none has one (``parse_ok`` False: counted, never replaced by a constant); ``pred_mos`` is ``pred`` mapped
linearly from 1..5 onto the benchmark's ``mos_range`` (``pred`` itself when the benchmark has none);
``samples`` the JSON list of every answer's score (``null`` where an answer had none); ``completion`` the
first answer's text. A multiple-choice benchmark's CSV has its own columns, keyed by question id
(:mod:`vqathinker.evaluation.choice_runner`): every function here takes the :class:`CsvFormat` of its rows.

While a benchmark runs, each process (rank) appends the rows it scores to its own part file
``<benchmark>.part-<rank>.csv`` and flushes after every batch; only that process writes it. When every
process is done, the main process merges the CSV and the part files into the CSV (written to a temporary
file and renamed, so it is never half-written) and removes the parts. A run that was killed resumes from
whatever the CSV and the part files hold: a part file's last row cut by the kill is dropped (its owner
rewrites the file without it before appending; the other processes ignore it).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CSV_FIELDS = ("video", "mos", "pred", "pred_mos", "parse_ok", "samples", "completion")


class ResumeError(ValueError):
    """A predictions CSV that cannot be resumed: other settings, another benchmark, or not ours."""


@dataclass(frozen=True)
class PredictionRow:
    """One CSV row: a video's label, its score (None when no answer had one), its answers' scores and text."""

    video: str
    mos: float
    pred: float | None
    pred_mos: float | None
    samples: tuple[float | None, ...]
    completion: str

    @property
    def key(self) -> str:
        """What identifies the row in its CSV: the video."""
        return self.video

    @property
    def parse_ok(self) -> bool:
        return self.pred is not None

    def to_csv(self) -> list[str]:
        def number(value: float | None) -> str:
            return "" if value is None else repr(value)

        samples = json.dumps([None if s is None else float(s) for s in self.samples])
        return [self.video, repr(self.mos), number(self.pred), number(self.pred_mos), str(self.parse_ok),
                samples, self.completion]  # fmt: skip


def _parse_samples(text: str) -> tuple[float | None, ...] | None:
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        return None
    valid = isinstance(values, list) and all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v))
        for v in values
    )
    return tuple(None if v is None else float(v) for v in values) if valid else None


def _parse_csv_row(fields: list[str]) -> PredictionRow | None:
    if len(fields) != len(CSV_FIELDS) or fields[4] not in ("True", "False"):
        return None
    try:
        mos = float(fields[1])
        pred = float(fields[2]) if fields[2] else None
        pred_mos = float(fields[3]) if fields[3] else None
    except ValueError:
        return None
    samples = _parse_samples(fields[5])
    if samples is None or (pred is None) == (fields[4] == "True") or (pred is None) != (pred_mos is None):
        return None
    return PredictionRow(fields[0], mos, pred, pred_mos, samples, fields[6])


@dataclass(frozen=True)
class CsvFormat:
    """The columns of a predictions CSV and how a record of them is read back. Its rows have a ``key``
    (unique in the CSV), ``parse_ok`` and ``to_csv()``."""

    fields: tuple[str, ...]
    parse: Callable[[list[str]], Any]
    """The row of a record's fields, None when they are not what evaluate writes."""


SCORE_CSV = CsvFormat(CSV_FIELDS, _parse_csv_row)
"""The CSV of a score benchmark (the module docstring)."""


def _csv_text(rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def read_predictions_csv(
    path: str | os.PathLike, repair: bool = True, csv_format: CsvFormat = SCORE_CSV
) -> list:
    """The rows of a predictions CSV or part file ([] when it does not exist).

    A last row cut short by an interrupted write (the file is not exactly the CSV of the rows it parses to,
    but its prefix before the last row is) is dropped, and with ``repair`` the file is rewritten without it
    (only the file's writer may repair it). Anything else that is not exactly what evaluate writes is an
    error (another file, an edited one, or one from an older version).
    """
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        text = handle.read()
    lines = list(csv.reader(io.StringIO(text)))
    truncated = _csv_text(lines) != text
    if truncated:
        if not text.startswith(_csv_text(lines[:-1])):
            raise ResumeError(f"{path}: not a predictions CSV written by vqathinker evaluate")
        lines = lines[:-1]
    if not lines:
        return []
    if tuple(lines[0]) != csv_format.fields:
        raise ResumeError(
            f"{path}: not a predictions CSV of this version (expected the header "
            f"{','.join(csv_format.fields)}): use another output folder or --overwrite"
        )
    rows = [csv_format.parse(fields) for fields in lines[1:]]
    bad = [i + 2 for i, row in enumerate(rows) if row is None]
    if bad:
        raise ResumeError(f"{path}: malformed row(s) at CSV record(s) {bad[:5]}")
    if truncated and repair:
        logger.warning("%s: dropping a truncated last row (interrupted write); it will be scored again", path)
        write_rows(path, rows, csv_format)
    return rows


def write_rows(path: Path, rows: Iterable, csv_format: CsvFormat = SCORE_CSV) -> None:
    """Write a whole CSV at once: a temporary file renamed over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(csv_format.fields)
        writer.writerows(row.to_csv() for row in rows)
    os.replace(tmp, path)


def part_path(csv_path: Path, rank: int) -> Path:
    """The part file process ``rank`` appends its rows to."""
    return csv_path.with_name(f"{csv_path.stem}.part-{rank}.csv")


def part_files(csv_path: Path) -> list[Path]:
    """Every part file of ``csv_path`` (from this run or from a killed run with another process count)."""
    return sorted(csv_path.parent.glob(f"{csv_path.stem}.part-*.csv"))


def remove_outputs(csv_path: Path) -> None:
    """Delete the CSV, its part files and its settings (``--overwrite``)."""
    for path in [csv_path, *part_files(csv_path), settings_path(csv_path)]:
        path.unlink(missing_ok=True)


def done_rows(csv_path: Path, keys: Iterable[str], csv_format: CsvFormat = SCORE_CSV) -> dict[str, Any]:
    """Every row already scored, by key, from the CSV and every part file, read without repairing anything.

    Raises :class:`ResumeError` when a file holds a key (a video; a question of a multiple-choice benchmark)
    that is not among ``keys`` (another benchmark).
    """
    done: dict[str, Any] = {}
    for path in [csv_path, *part_files(csv_path)]:
        for row in read_predictions_csv(path, repair=False, csv_format=csv_format):
            done.setdefault(row.key, row)
    strangers = set(done) - set(keys)
    if strangers:
        raise ResumeError(
            f"{csv_path} (or its part files) has {len(strangers)} row(s) that are not in this benchmark, e.g. "
            f"{sorted(strangers)[:3]}: use another output folder or --overwrite"
        )
    return done


def merge_parts(csv_path: Path, keys: Sequence[str], csv_format: CsvFormat = SCORE_CSV) -> list:
    """Merge the part files into the CSV, in the order of ``keys``, and remove them; returns the rows.

    Only the main process calls it, once every process has finished writing its part.
    """
    done = done_rows(csv_path, keys, csv_format)
    rows = [done[key] for key in keys if key in done]
    write_rows(csv_path, rows, csv_format)
    for path in part_files(csv_path):
        path.unlink()
    return rows


def settings_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.stem + ".settings.json")


def check_settings(csv_path: Path, settings: dict, resuming: bool, write: bool) -> None:
    """Refuse to resume a CSV written with other ``settings``; with ``write``, save them beside the CSV.

    Every key of ``settings`` is compared, so an option added later (e.g. a protocol name) takes part as
    soon as it is in the dict.
    """
    path = settings_path(csv_path)
    settings = json.loads(json.dumps(settings))  # as it reads back (tuples become lists)
    if resuming and path.exists():
        previous = json.loads(path.read_text())
        changed = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
        if changed:
            diff = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changed.items())
            raise ResumeError(
                f"{csv_path} was written with other settings ({diff}); use another output folder or --overwrite"
            )
    if write:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(settings, indent=2) + "\n")
        os.replace(tmp, path)
