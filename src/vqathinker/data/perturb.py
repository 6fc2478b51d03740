"""Temporal perturbations of a sampled clip, for the temporal-consistency reward (docs/architecture.md).

Each perturbation is a pure function of the number of sampled frames and a seed: it returns the positions
(into the list of already decoded frames) that make the perturbed clip, always as many as there are frames,
so the prompt keeps its frame placeholders and nothing is decoded again. For every clip of two or more frames
the order differs from the original one (a clip of one frame has nothing to perturb).

- ``shuffle``: a random permutation of all frames.
- ``local_shuffle``: a permutation within consecutive windows of ``window`` (4) frames.
- ``reverse``: the frames backwards.
- ``jitter``: every frame replaced by itself or a neighbour (offset -1, 0 or +1, clamped to the clip).
- ``duplicate``: one frame repeated 1-3 extra times in a row, as many other frames removed.
- ``drop``: 1-3 frames lost; the player shows the previous frame again (a freeze), as a decoder does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

LOCAL_SHUFFLE_WINDOW = 4
MAX_REPEATS = 3


def _seeded(seed: int | random.Random) -> random.Random:
    return seed if isinstance(seed, random.Random) else random.Random(seed)


def _redraw_until_changed(n: int, draw: Callable[[], list[int]]) -> list[int]:
    """Call ``draw`` until it returns a non-identity order (each draw changes the order with p >= 1/2)."""
    order = draw()
    while n > 1 and order == list(range(n)):
        order = draw()
    return order


def shuffle(n: int, seed: int | random.Random) -> list[int]:
    """A random permutation of ``range(n)``, never the identity when ``n > 1``."""
    rng = _seeded(seed)
    return _redraw_until_changed(n, lambda: rng.sample(range(n), n))


def local_shuffle(n: int, seed: int | random.Random, window: int = LOCAL_SHUFFLE_WINDOW) -> list[int]:
    """Permute the positions inside consecutive windows of ``window`` frames (the last one may be shorter)."""
    rng = _seeded(seed)
    if window < 2 or n < 2:
        return list(range(n))

    def draw() -> list[int]:
        order: list[int] = []
        for start in range(0, n, window):
            block = list(range(start, min(start + window, n)))
            order += rng.sample(block, len(block))
        return order

    return _redraw_until_changed(n, draw)


def reverse(n: int, seed: int | random.Random | None = None) -> list[int]:
    """The frames in reverse order (``seed`` is accepted for a uniform signature and not used)."""
    return list(range(n - 1, -1, -1))


def jitter(n: int, seed: int | random.Random) -> list[int]:
    """Each position moved by -1, 0 or +1 (clamped to the clip); at least one moves when ``n > 1``."""
    rng = _seeded(seed)
    return _redraw_until_changed(
        n, lambda: [min(max(i + rng.choice((-1, 0, 1)), 0), n - 1) for i in range(n)]
    )


def duplicate(n: int, seed: int | random.Random) -> list[int]:
    """Repeat one frame 1-3 extra times at a random place and remove as many other frames.

    The original of the repeated frame is never removed, so it appears at least twice and the order differs
    from the original one whenever ``n > 1``.
    """
    rng = _seeded(seed)
    if n < 2:
        return list(range(n))
    source = rng.randrange(n)
    repeats = rng.randint(1, min(MAX_REPEATS, n - 1))
    insert_at = rng.randint(0, n)
    # Slots of the sequence once the copies are inserted: ("orig", i) or ("copy", source).
    slots = [("orig", i) for i in range(insert_at)] + [("copy", source)] * repeats
    slots += [("orig", i) for i in range(insert_at, n)]
    removable = [k for k, (kind, i) in enumerate(slots) if kind == "orig" and i != source]
    removed = set(rng.sample(removable, repeats))
    return [i for k, (_, i) in enumerate(slots) if k not in removed]


def drop(n: int, seed: int | random.Random) -> list[int]:
    """Lose 1-3 frames (never the first); each lost frame shows the last frame that was not lost."""
    rng = _seeded(seed)
    if n < 2:
        return list(range(n))
    lost = set(rng.sample(range(1, n), rng.randint(1, min(MAX_REPEATS, n - 1))))
    order: list[int] = []
    for i in range(n):
        order.append(order[-1] if i in lost else i)
    return order


PERTURBATIONS: dict[str, Callable[[int, int | random.Random], list[int]]] = {
    "shuffle": shuffle,
    "local_shuffle": local_shuffle,
    "reverse": reverse,
    "jitter": jitter,
    "duplicate": duplicate,
    "drop": drop,
}


def perturbed_order(n: int, kinds: Sequence[str], seed: int | random.Random) -> tuple[str, list[int]]:
    """Pick one perturbation of ``kinds`` with ``seed`` and return its name and the positions it gives."""
    unknown = [kind for kind in kinds if kind not in PERTURBATIONS]
    if unknown or not kinds:
        raise ValueError(
            f"unknown temporal perturbation(s) {unknown or kinds}; choose from {list(PERTURBATIONS)}"
        )
    rng = _seeded(seed)
    kind = rng.choice(list(kinds))
    return kind, PERTURBATIONS[kind](n, rng)


def perturb_frames(
    frames: Sequence[T], kinds: Sequence[str], seed: int | random.Random
) -> tuple[str, list[T]]:
    """``frames`` rearranged by one perturbation of ``kinds`` picked with ``seed`` (the frames are not copied)."""
    kind, order = perturbed_order(len(frames), kinds, seed)
    return kind, [frames[i] for i in order]
