"""``vqathinker check-data``: validate every record and decode every video of a dataset before a long run.

::

    vqathinker check-data configs/datasets/lsvq.yaml --workers 8
    vqathinker check-data train.jsonl --video-root videos/ --mos-range 0 100 --frames 12

Every record is validated (as training would with ``bad_records: skip``), then the frames of every distinct
video are decoded exactly as training samples them, in parallel worker processes with a progress bar. The
video of a rejected line is decoded too, so that a line with a bad MOS and a missing video reports both.
The summary gives the number of records that are fine, the distinct videos that decoded, and for each kind
of problem its count and the first few ``file:line`` examples. Multiple-choice sources are checked the same
way (their options and correct answer instead of a MOS); the summary then counts valid records per task, and
the items training leaves out (a benchmark's open-ended or video-pair questions) apart from the problems.
Exit status 0 when nothing is wrong, 1 when anything is.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from tqdm import tqdm

from vqathinker.data.datasets import DatasetSource, read_source
from vqathinker.data.records import MAX_EXAMPLES, VideoRecord
from vqathinker.data.video import VideoDecodeError, load_frames

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class Report:
    """Counts and examples of one check."""

    records: int = 0
    ok: int = 0
    videos: int = 0
    """Distinct videos that decoded."""
    videos_checked: int = 0
    """Distinct videos tried (decoded or failed)."""
    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    tasks: Counter[str] = field(default_factory=Counter)
    """Valid records per task (score, choice)."""
    excluded: Counter[str] = field(default_factory=Counter)
    """Items of a kind training does not use (a benchmark's open-ended questions, ...): not problems."""

    def add(self, kind: str, count: int, *messages: str) -> None:
        self.problems[kind] += count
        examples = self.examples.setdefault(kind, [])
        examples += messages[: MAX_EXAMPLES - len(examples)]

    def format(self) -> str:
        lines = [
            f"records: {self.records}, ok: {self.ok}, "
            f"distinct videos decoded: {self.videos} of {self.videos_checked}"
        ]
        if set(self.tasks) - {"score"}:
            lines.append(
                "valid records per task: " + ", ".join(f"{k}: {n}" for k, n in sorted(self.tasks.items()))
            )
        if self.excluded:
            left_out = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.excluded.items()))
            lines.append(f"left out, not used for training (not problems): {left_out}")
        if not self.problems:
            lines.append("no problems found")
        for kind, count in self.problems.most_common():
            lines.append(f"{kind}: {count}")
            lines += [f"  {example}" for example in self.examples[kind]]
            if count > len(self.examples[kind]):
                lines.append(f"  ... and {count - len(self.examples[kind])} more")
        return "\n".join(lines)


def check_video(path: str, num_frames: int, backend: str) -> tuple[str, str] | None:
    """``(kind, message)`` when the video cannot be decoded, else None (runs in a worker process)."""
    try:
        load_frames(path, num_frames, size=None, backend=backend)
    except VideoDecodeError as exc:
        return exc.kind, str(exc)
    except Exception as exc:  # an unexpected failure of a decoder is a finding, not a crash of the check
        return "decode_error", f"{path}: {type(exc).__name__}: {exc}"
    return None


def _decode_all(paths: list[str], num_frames: int, backend: str, workers: int, progress: bool):
    """Yield ``(path, problem)`` for every path, decoding in ``workers`` processes (1: in this process)."""
    bar = tqdm(total=len(paths), desc="decoding", unit="video", disable=not progress)
    with bar:
        if workers <= 1:
            for path in paths:
                yield path, check_video(path, num_frames, backend)
                bar.update()
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(check_video, path, num_frames, backend): path for path in paths}
            try:
                for future in as_completed(futures):
                    path = futures[future]
                    try:
                        problem = future.result()
                    except BrokenProcessPool:
                        problem = ("worker_crashed", f"{path}: a decoder crashed its worker process")
                    yield path, problem
                    bar.update()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise


def run_check(
    sources: list[DatasetSource],
    num_frames: int = 6,
    workers: int = 1,
    backend: str = "pyav",
    progress: bool = True,
) -> Report:
    """Validate the records of ``sources`` and decode their videos; the :class:`Report` of what failed."""
    report = Report()
    by_video: dict[str, list[VideoRecord]] = {}
    rejected_by_video: dict[str, list[str]] = {}  # video -> "file:line" of the rejected lines naming it
    for source in sources:
        try:
            result = read_source(source, on_error="skip")
        except (FileNotFoundError, UnicodeDecodeError) as exc:
            report.add("unreadable_jsonl", 1, f"{source.jsonl}: {exc}")
            continue
        report.records += len(result.records) + len(result.rejected)
        report.tasks.update(record.task for record in result.records)
        report.excluded.update(result.excluded)
        for kind, count in result.skipped.items():
            report.add(kind, count, *result.examples[kind])
        for record in result.records:
            by_video.setdefault(record.video_path, []).append(record)
        for error in result.rejected:
            if error.video_path is not None:
                rejected_by_video.setdefault(error.video_path, []).append(f"{error.source}:{error.line}")
    paths = list(by_video) + [path for path in rejected_by_video if path not in by_video]
    report.videos_checked = len(paths)
    for path, problem in _decode_all(paths, num_frames, backend, workers, progress):
        records, rejected = by_video.get(path, []), rejected_by_video.get(path, [])
        if problem is None:
            report.ok += len(records)
            report.videos += 1
        else:
            kind, message = problem
            first = f"{records[0].source}:{records[0].line}" if records else rejected[0]
            report.add(f"video_{kind}", len(records) + len(rejected), f"{first}: {message}")
    if report.ok == 0 and not report.problems:
        report.add("empty", 1, "no record at all")
    return report
