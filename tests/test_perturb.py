from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vqathinker.data.perturb import (
    PERTURBATIONS,
    drop,
    duplicate,
    jitter,
    local_shuffle,
    perturb_frames,
    perturbed_order,
    reverse,
    shuffle,
)

sizes = st.integers(min_value=1, max_value=24)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
@given(n=sizes, seed=seeds)
def test_every_perturbation_keeps_length_valid_positions_and_changes_order(name, n, seed):
    order = PERTURBATIONS[name](n, seed)
    assert len(order) == n
    assert all(0 <= i < n for i in order)
    if n > 1:
        assert order != list(range(n))


@pytest.mark.parametrize("name", list(PERTURBATIONS))
@given(n=sizes, seed=seeds)
def test_same_seed_same_order(name, n, seed):
    assert PERTURBATIONS[name](n, seed) == PERTURBATIONS[name](n, seed)


@given(n=sizes, seed=seeds)
def test_shuffles_are_permutations_and_local_shuffle_stays_in_its_window(n, seed):
    assert sorted(shuffle(n, seed)) == list(range(n))
    order = local_shuffle(n, seed)
    assert sorted(order) == list(range(n))
    assert all(i // 4 == position // 4 for position, i in enumerate(order))


def test_reverse():
    assert reverse(5) == [4, 3, 2, 1, 0]


@given(n=sizes, seed=seeds)
def test_jitter_moves_each_frame_by_at_most_one(n, seed):
    assert all(abs(i - position) <= 1 for position, i in enumerate(jitter(n, seed)))


@given(n=st.integers(min_value=2, max_value=24), seed=seeds)
def test_duplicate_repeats_one_frame_one_to_three_times_in_a_row(n, seed):
    order = duplicate(n, seed)
    counts = Counter(order)
    (source, count), *rest = counts.most_common()
    assert 2 <= count <= 4 and all(c == 1 for _, c in rest)
    assert len(set(order)) == n - (count - 1)
    # the copies form one run; the original may sit apart from it
    places = [k for k, i in enumerate(order) if i == source]
    assert sum(1 for a, b in zip(places, places[1:], strict=False) if b != a + 1) <= 1
    # the frames that were kept keep their order
    kept = [i for i in dict.fromkeys(order) if i != source]
    assert kept == sorted(kept)


@given(n=st.integers(min_value=2, max_value=24), seed=seeds)
def test_drop_freezes_on_the_previous_frame(n, seed):
    order = drop(n, seed)
    assert order[0] == 0
    frozen = [k for k in range(1, n) if order[k] != k]
    assert 1 <= len(frozen) <= 3
    assert all(order[k] == order[k - 1] for k in frozen)


def test_perturb_frames_picks_from_the_given_kinds_and_is_seeded():
    frames = ["a", "b", "c", "d", "e", "f"]
    kind, out = perturb_frames(frames, ["reverse"], seed=3)
    assert (kind, out) == ("reverse", frames[::-1])
    picked = {perturbed_order(6, list(PERTURBATIONS), seed)[0] for seed in range(200)}
    assert picked == set(PERTURBATIONS)
    assert perturb_frames(frames, list(PERTURBATIONS), 7) == perturb_frames(frames, list(PERTURBATIONS), 7)


def test_unknown_perturbation_is_rejected():
    with pytest.raises(ValueError, match="unknown temporal perturbation"):
        perturbed_order(6, ["blur"], 0)
    with pytest.raises(ValueError):
        perturbed_order(6, [], 0)
