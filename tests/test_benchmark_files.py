"""configs/benchmarks.yaml against the annotation files of the VQAThinker release (test/json_files).

The fixture writes files with the released names, entry counts, structure (``ann_type`` "score", the score
as a string, sub-folders only in the two LSVQ files) and score ranges; the shipped benchmark list must name
each file once, expect its count, and have a MOS scale that holds its scores without being far wider.
"""

import dataclasses
import json
from pathlib import Path

import pytest

from vqathinker.evaluation.benchmarks import load_benchmarks, read_items

BENCHMARKS_YAML = Path(__file__).resolve().parents[1] / "configs" / "benchmarks.yaml"

# file name: (entries, lowest score, highest score, videos in sub-folders)
RELEASED = {
    "LSVQ_whole_test_ds_score.json": (7182, 8.466666667, 91.03333333, True),
    "LSVQ_whole_test_1080p_ds_score.json": (3573, 17.7222222222222, 91.4193548387097, True),
    "Konvid-1k_total_ds_score.json": (1200, 24.4, 92.8, False),
    "LIVE-VQC_total_ds_score.json": (585, 6.224, 94.287, False),
    "youtube_ugc_total.json": (1020, 1.242, 4.677, False),
    "LIVE-YT-Gaming_total_score.json": (600, 4.529653337, 95.9543135, False),
    "CGVDS_total_score.json": (357, 1.71, 6.06, False),
    "Waterloo_IVC_4K_total_score.json": (1200, 0.74, 97.59, False),
    "live_hfr_total_score.json": (480, 10.35764658, 73.93564572, False),
    "VDPVE_train_score.json": (839, 19.890065119644, 84.4219160613643, False),
}


def released_file(path: Path, entries: int, low: float, high: float, subfolders: bool) -> None:
    step = (high - low) / (entries - 1)
    annotations = [
        {
            "image_id": f"yfcc-batch{1 + i % 3}/{i}.mp4" if subfolders else f"clip_{i}.mp4",
            "ann_type": "score",
            "score": str(high if i == entries - 1 else low + i * step),  # a string, as released
        }
        for i in range(entries)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"annotations": annotations}))


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory):
    """The shipped benchmarks over a data root holding the released files where the YAML points."""
    root = tmp_path_factory.mktemp("release")
    selected = load_benchmarks(BENCHMARKS_YAML, data_root=root)
    for benchmark in selected:
        if benchmark.annotations.name in RELEASED:
            released_file(benchmark.annotations, *RELEASED[benchmark.annotations.name])
    return selected


def test_every_released_file_is_named_once(benchmarks):
    names = [b.annotations.name for b in benchmarks]
    assert sorted(names) == sorted(RELEASED)


def test_counts_and_scales_match_the_released_files(benchmarks):
    for benchmark in benchmarks:
        entries, low, high, _ = RELEASED[benchmark.annotations.name]
        items, warnings = read_items(benchmark)
        assert warnings == [], benchmark.key  # count as expected, every score inside mos_range
        assert benchmark.num_videos == entries == len(items)
        assert min(i.mos for i in items) == pytest.approx(low) and max(i.mos for i in items) == pytest.approx(
            high
        )
        scale_low, scale_high = benchmark.mos_range
        # not a scale far wider than the data (a 1-5 set labelled 0-100 would cover 4 % of it)
        assert (high - low) / (scale_high - scale_low) > 0.5, benchmark.key


def test_a_wrong_scale_or_count_is_warned_about(benchmarks):
    konvid = next(b for b in benchmarks if b.key == "konvid")
    wrong = dataclasses.replace(konvid, mos_range=(1.0, 5.0), num_videos=1199)
    _, warnings = read_items(wrong)
    assert warnings == [
        f"1200 videos in {konvid.annotations}, the benchmark has 1199",
        "1200 MOS value(s) outside mos_range [1.0, 5.0]: is the file rescaled?",
    ]
