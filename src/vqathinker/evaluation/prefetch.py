"""Frames of the next batches decoded in background workers while the model answers the current one.

:func:`decoded_batches` yields ``(items, frames, failed)`` per batch of ``batch_size`` items, in order. Without
a pool each batch is decoded when it is asked for (sequential); with a :func:`decode_pool` its worker
processes decode up to ``ahead`` batches beyond the one being answered, so decoding overlaps with
generation. Processes, not threads: the demuxing and frame selection of :mod:`vqathinker.data.video` are
Python code that would hold the interpreter lock the generation loop needs. A video that cannot be decoded
is reported in ``failed`` (``{"video", "kind", "error"}``) and left out of ``items`` and ``frames``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from itertools import islice
from typing import Any

from PIL import Image

from vqathinker.data.video import VideoDecodeError

Frames = list[Image.Image]
Batch = tuple[list[Any], list[Frames], list[dict[str, str]]]


def _exit_with_parent(parent: int) -> None:
    """Worker start-up: end the worker when the process that started it is gone (killed, say), instead of
    leaving it behind holding the parent's output pipes."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


@contextlib.contextmanager
def decode_pool(workers: int) -> Iterator[Executor | None]:
    """``workers`` decoding processes for :func:`decoded_batches` (None for 0), started at once.

    On Linux they are forked: start it before loading a model, so that the workers are copies of a small
    process without the model's threads. Elsewhere they are spawned.
    """
    if workers == 0:
        yield None
        return
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
    )
    pool.submit(int).result()  # start the workers now
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _decode(load: Callable[[str], Frames], path: str) -> Frames | VideoDecodeError:
    try:
        return load(path)
    except VideoDecodeError as error:
        return error


def _batch(items: Sequence[Any], results: Sequence[Frames | VideoDecodeError]) -> Batch:
    kept, frames, failed = [], [], []
    for item, result in zip(items, results, strict=True):
        if isinstance(result, VideoDecodeError):
            failed.append({"video": item.video, "kind": result.kind, "error": str(result)})
        else:
            kept.append(item)
            frames.append(result)
    return kept, frames, failed


def decoded_batches(
    items: Sequence[Any],
    batch_size: int,
    load: Callable[[str], Frames],
    pool: Executor | None = None,
    ahead: int = 2,
) -> Iterator[Batch]:
    """Batches of ``items`` (objects with ``video`` and ``video_path``) with their frames, ``load(video_path)``
    (picklable with a pool: a module-level function or a ``functools.partial`` of one)."""
    batches = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    if pool is None:
        for batch in batches:
            yield _batch(batch, [_decode(load, item.video_path) for item in batch])
        return
    pending: deque[tuple[list[Any], list[Future]]] = deque()
    remaining = iter(batches)

    def submit(batch: list[Any]) -> None:
        pending.append((batch, [pool.submit(_decode, load, item.video_path) for item in batch]))

    try:
        for batch in islice(remaining, ahead + 1):
            submit(batch)
        while pending:
            batch, futures = pending.popleft()
            following = next(remaining, None)
            if following is not None:
                submit(following)
            yield _batch(batch, [future.result() for future in futures])
    finally:
        for _, futures in pending:
            for future in futures:
                future.cancel()
