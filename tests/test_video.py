"""Frame sampling and decoding on real files encoded at test time (tests/media.py)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from media import counter_frames, write_audio_only, write_video
from PIL import Image

from vqathinker.data import video
from vqathinker.data.sampling import release_frame_indices, sample_frame_indices
from vqathinker.data.video import VideoDecodeError, load_frames

STEP = 9  # default brightness step of counter_frames: frame i is 16 + 9 * i (distinct up to 24 frames)


def brightness(images: list[Image.Image]) -> list[int]:
    return [round(float(np.asarray(image).mean())) for image in images]


def frame_numbers(images: list[Image.Image], step: int = STEP) -> list[int]:
    """Read back the frame counter encoded as brightness."""
    return [round((value - 16) / step) for value in brightness(images)]


# ----------------------------------------------------------------------------------------- sampling


@given(st.integers(1, 5000), st.integers(1, 64))
def test_sample_frame_indices_properties(num_total, num_frames):
    indices = sample_frame_indices(num_total, num_frames)
    assert len(indices) == num_frames
    assert indices == sorted(indices)
    assert all(0 <= i < num_total for i in indices)
    # segment centres: frame i covers [i, i + 1), the centre of segment j is (j + 0.5) * num_total / num_frames
    assert indices == [min(int((j + 0.5) * num_total / num_frames), num_total - 1) for j in range(num_frames)]
    if num_total >= num_frames:
        assert len(set(indices)) == num_frames


def test_sample_frame_indices_examples():
    assert sample_frame_indices(300, 6) == [25, 75, 125, 175, 225, 275]
    assert sample_frame_indices(1, 4) == [0, 0, 0, 0]
    assert sample_frame_indices(3, 6) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError):
        sample_frame_indices(0, 6)
    with pytest.raises(ValueError):
        sample_frame_indices(10, 0)


# ------------------------------------------------------------------------------------------ decoding

CLIPS = {
    # name: (suffix, codec, frames, width, height, fps, gop, extra encoder options)
    "mp4_h264": (".mp4", "libx264", 24, 64, 48, 10, None, None),
    "mp4_bframes_short_gop": (".mp4", "libx264", 30, 64, 48, 25, 5, {"preset": "medium"}),
    "mkv_h264_long_gop": (".mkv", "libx264", 25, 40, 30, 30, 250, None),
    "webm_vp9": (".webm", "libvpx-vp9", 20, 32, 32, 24, None, None),
    "mp4_odd_size": (".mp4", "libx264", 13, 66, 38, 15, 4, None),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, tuple[str, int, int]]:
    folder = tmp_path_factory.mktemp("clips")
    out = {}
    for name, (suffix, codec, n, width, height, fps, gop, options) in CLIPS.items():
        step = min(STEP, 200 // n)
        path = write_video(
            folder / f"{name}{suffix}", counter_frames(n, width, height, step), fps=fps, codec=codec, gop=gop,
            options=options,
        )  # fmt: skip
        out[name] = (str(path), n, step)
    return out


@pytest.mark.parametrize("backend", ["pyav", "decord", "auto"])
@pytest.mark.parametrize("name", list(CLIPS))
@pytest.mark.parametrize("num_frames", [1, 6, 8])
def test_load_frames_picks_segment_centres(clips, name, num_frames, backend):
    path, n, step = clips[name]
    images = load_frames(path, num_frames, size=32, backend=backend)
    assert len(images) == num_frames
    assert all(image.mode == "RGB" and image.size == (32, 32) for image in images)
    assert frame_numbers(images, step) == sample_frame_indices(n, num_frames)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_release_sampling_takes_the_release_indices(clips, backend):
    path, n, step = clips["mp4_h264"]
    assert release_frame_indices(24, 6) == [1, 5, 9, 13, 16, 20]  # int(s/2 + round(s*i)), s = 23/6
    assert sample_frame_indices(24, 6) == [2, 6, 10, 14, 18, 22]
    images = load_frames(path, 6, size=16, backend=backend, sampling="release")
    assert frame_numbers(images, step) == release_frame_indices(n, 6)
    with pytest.raises(ValueError, match="sampling"):
        load_frames(path, 6, sampling="uniform")


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [(".avi", "libx264"), (".avi", "mpeg4"), (".ts", "libx264"), (".mov", "libx264"), (".mkv", "libx265")],
)
def test_more_containers_with_b_frames(tmp_path, suffix, codec):
    # AVI stores no presentation timestamps (decoded pts come out of order with B-frames: frames are then
    # counted); decord 0.6 returns wrong frames for some of these, PyAV must not
    options = {"libx264": {"preset": "medium"}, "libx265": {"x265-params": "log-level=error"}}.get(codec)
    path = write_video(tmp_path / f"clip{suffix}", counter_frames(24), codec=codec, gop=5, options=options)
    for backend in ("pyav", "auto"):
        assert frame_numbers(load_frames(path, 6, size=8, backend=backend)) == sample_frame_indices(24, 6)


def test_size_none_keeps_decoded_size(clips):
    images = load_frames(clips["mp4_odd_size"][0], 3, size=None)
    assert {image.size for image in images} == {(66, 38)}


def test_default_size_is_448(clips):
    images = load_frames(clips["mp4_h264"][0], 2)
    assert {image.size for image in images} == {(448, 448)}


def test_backends_agree_pixel_for_pixel(clips):
    for path, *_ in clips.values():
        pyav = load_frames(path, 5, size=None, backend="pyav")
        decord = load_frames(path, 5, size=None, backend="decord")
        for a, b in zip(pyav, decord, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_short_and_single_frame_clips_repeat(tmp_path):
    single = write_video(tmp_path / "one.mp4", counter_frames(1))
    images = load_frames(single, 6, size=16)
    assert len(images) == 6 and frame_numbers(images) == [0] * 6
    short = write_video(tmp_path / "three.mkv", counter_frames(3), gop=1)
    assert frame_numbers(load_frames(short, 8, size=16)) == [0, 0, 0, 1, 1, 2, 2, 2]


def test_variable_frame_rate_is_sampled_by_time(tmp_path):
    # 10 frames at 10 fps (t = 0.0 .. 0.9 s), then 5 frames held 0.4 s each (t = 1.0, 1.4, 1.8, 2.2, 2.6)
    pts = [*range(10), 10, 14, 18, 22, 26]
    for suffix in (".mp4", ".mkv"):
        path = write_video(tmp_path / f"vfr{suffix}", counter_frames(15), fps=10, pts=pts)
        # the clip lasts 2.7 s: centres of 3 segments are 0.45, 1.35 and 2.25 s -> frames 4, 10 and 13
        # (by frame count it would be 2, 7, 12)
        for backend in ("pyav", "decord"):
            assert frame_numbers(load_frames(path, 3, size=8, backend=backend)) == [4, 10, 13]


def _left_bright(width=96, height=64) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, : width // 2] = 220
    return frame


@pytest.mark.parametrize("backend", ["pyav", "decord"])
@pytest.mark.parametrize("rotation", [0, 90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path, rotation, backend):
    path = write_video(tmp_path / f"rot{rotation}.mp4", [_left_bright()] * 3, rotation=rotation)
    (image,) = load_frames(path, 1, size=None, backend=backend)
    array = np.asarray(image).mean(axis=2)
    # rotation is counter-clockwise: the bright left half ends up at the bottom (90), top (-90), right (180)
    expected_size = (96, 64) if rotation in (0, 180) else (64, 96)
    assert image.size == expected_size
    h, w = array.shape
    halves = {
        0: (array[:, : w // 2], array[:, w // 2 :]),
        90: (array[h // 2 :], array[: h // 2]),
        -90: (array[: h // 2], array[h // 2 :]),
        180: (array[:, w // 2 :], array[:, : w // 2]),
    }[rotation]
    assert halves[0].mean() > 180 and halves[1].mean() < 40


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_still_images_repeat(tmp_path, suffix):
    path = tmp_path / f"still{suffix}"
    Image.fromarray(counter_frames(5, 40, 30)[4]).save(path)
    images = load_frames(path, 4, size=24)
    assert len(images) == 4 and {image.size for image in images} == {(24, 24)}
    assert frame_numbers(images) == [4] * 4


def test_exif_orientation_of_still_images(tmp_path):
    path = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(_left_bright(40, 30)).save(path, exif=exif)
    (image,) = load_frames(path, 1, size=None)
    assert image.size == (30, 40)
    array = np.asarray(image).mean(axis=2)
    assert array[:20].mean() > 180 and array[20:].mean() < 40  # left half rotated clockwise to the top


# --------------------------------------------------------------------------------- seek or sequential


def _index(path: str) -> video._StreamIndex:
    with av.open(path) as container:
        return video._index_stream(container, container.streams.video[0], path)


def _sequential(path: str, num_frames: int) -> list[np.ndarray]:
    """The reference: decode every frame in order and index the list."""
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return [frames[i] for i in sample_frame_indices(len(frames), num_frames)]


@pytest.mark.parametrize(
    ("gop", "options", "seeks"), [(10, None, True), (300, None, False), (12, {"preset": "medium"}, True)]
)
def test_plan_seeks_only_when_keyframes_are_close(tmp_path, gop, options, seeks):
    path = str(
        write_video(
            tmp_path / f"long{gop}.mp4", counter_frames(300, 32, 32, step=0), gop=gop, options=options
        )
    )
    index = _index(path)
    targets = sample_frame_indices(300, 6)
    groups = video._plan(index, targets)
    assert [t for _, group in groups for t in group] == targets
    assert any(keyframe is not None for keyframe, _ in groups) == seeks
    expected = _sequential(path, 6)
    got = load_frames(path, 6, size=None)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)


@given(
    st.integers(1, 2000),
    st.lists(st.integers(1, 1999), max_size=40),
    st.integers(1, 32),
)
def test_plan_never_decodes_more_than_a_sequential_pass(num_total, keyframes, num_frames):
    keyframes = sorted({0, *(k for k in keyframes if k < num_total)})
    index = video._StreamIndex(times=list(range(num_total)), end=num_total, keyframes=keyframes)
    targets = sorted(set(sample_frame_indices(num_total, num_frames)))
    groups = video._plan(index, targets)
    assert [t for _, group in groups for t in group] == targets
    decoded, position = 0, 0
    for keyframe, group in groups:
        if keyframe is not None:
            assert position + video.SEEK_COST_FRAMES < keyframe <= group[0]
            decoded, position = decoded + video.SEEK_COST_FRAMES, keyframe
        decoded += group[-1] + 1 - position
        position = group[-1] + 1
    assert decoded <= targets[-1] + 1  # seek cost included


def test_seek_plan_reads_the_right_frames(tmp_path):
    # B-frames, a keyframe every 8 frames: the plan seeks, and every frame matches a full sequential decode
    frames = [np.full((32, 32, 3), 16 + i, np.uint8) for i in range(200)]
    path = str(write_video(tmp_path / "gop8.mkv", frames, gop=8, options={"preset": "medium"}))
    index = _index(path)
    for num_frames in (3, 6, 12, 16):
        assert any(k is not None for k, _ in video._plan(index, sample_frame_indices(200, num_frames)))
        got = load_frames(path, num_frames, size=None)
        for a, b in zip(got, _sequential(path, num_frames), strict=True):
            np.testing.assert_array_equal(np.asarray(a), b)


# --------------------------------------------------------------------------------------- bad inputs


def _truncate(path, fraction=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, tuple[str, str]]:
    folder = tmp_path_factory.mktemp("bad")
    many = counter_frames(40)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "garbage.jpg").write_bytes(b"not a jpeg at all")
    faststart = write_video(
        folder / "faststart.mp4", many, gop=5, container_options={"movflags": "faststart"}
    )
    return {
        "missing": (str(folder / "missing.mp4"), "missing"),
        "empty": (str(folder / "empty.mp4"), "empty"),
        "audio_only": (str(write_audio_only(folder / "audio.m4a")), "no_video_stream"),
        "truncated_mp4": (str(_truncate(write_video(folder / "t.mp4", many, gop=5))), "corrupt"),
        "truncated_faststart_mp4": (str(_truncate(faststart)), "truncated"),
        "truncated_mkv": (str(_truncate(write_video(folder / "t.mkv", many, gop=5))), "truncated"),
        "truncated_webm": (
            str(_truncate(write_video(folder / "t.webm", many, codec="libvpx-vp9"))),
            "truncated",
        ),
        "garbage": (str(folder / "garbage.mp4"), "corrupt"),
        "garbage_jpg": (str(folder / "garbage.jpg"), "corrupt"),
    }


@pytest.mark.parametrize("backend", ["pyav", "decord", "auto"])
@pytest.mark.parametrize(
    "name",
    ["missing", "empty", "audio_only", "truncated_mp4", "truncated_faststart_mp4", "truncated_mkv",
     "truncated_webm", "garbage", "garbage_jpg"],
)  # fmt: skip
def test_bad_inputs_raise_video_decode_error(bad_files, name, backend):
    path, kind = bad_files[name]
    with pytest.raises(VideoDecodeError) as info:
        load_frames(path, 4, size=16, backend=backend)
    assert str(info.value).startswith(path)
    assert info.value.path == path
    # decord itself notices some truncations (reported as corrupt) before the header check does
    assert info.value.kind == kind or (
        backend == "decord" and kind == "truncated" and info.value.kind == "corrupt"
    )


def test_invalid_arguments(clips):
    path = clips["mp4_h264"][0]
    with pytest.raises(ValueError, match="backend"):
        load_frames(path, 4, backend="opencv")
    with pytest.raises(ValueError, match="num_frames"):
        load_frames(path, 0)
