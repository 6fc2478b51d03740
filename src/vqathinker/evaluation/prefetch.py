"""Frames of the next batches decoded in background workers while the model answers the current one.

:func:`decoded_batches` yields ``(items, frames, failed)`` per batch of ``batch_size`` items, in order. With
``workers`` 0 each batch is decoded when it is asked for (sequential); with ``workers`` N > 0 a pool of N
worker processes decodes up to ``ahead`` batches beyond the one being answered, so decoding overlaps with
generation. Processes, not threads: the demuxing and frame selection of :mod:`vqathinker.data.video` are
Python code that would hold the interpreter lock the generation loop needs. A video that cannot be decoded
is reported in ``failed`` (``{"video", "kind", "error"}``) and left out of ``items`` and ``frames``.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Any

from PIL import Image

from vqathinker.data.video import VideoDecodeError

Frames = list[Image.Image]
Batch = tuple[list[Any], list[Frames], list[dict[str, str]]]


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
    workers: int = 0,
    ahead: int = 2,
) -> Iterator[Batch]:
    """Batches of ``items`` (objects with ``video`` and ``video_path``) with their frames, ``load(video_path)``.

    ``load`` must be picklable when ``workers`` > 0 (a module-level function or a ``functools.partial`` of
    one). The workers start from a fork server where the platform has one (a clean process, not a fork of
    one holding a model and its threads), else they are spawned.
    """
    batches = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    if workers == 0:
        for batch in batches:
            yield _batch(batch, [_decode(load, item.video_path) for item in batch])
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
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
        pool.shutdown(wait=True, cancel_futures=True)
