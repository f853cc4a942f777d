"""Decoding every kind: frames, resize and crop, cuts in seconds and frames, frame sampling."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.unit.data.media import (
    BLUE,
    GREEN,
    GREY,
    KINDS,
    RED,
    SIZE,
    frame_number,
    numbered_video,
    solid_video,
    write,
    write_mp4_with_keyframes,
)
from text2sign.data.samples import Sample, kind_of
from text2sign.data.video import (
    BadVideo,
    decode_clip,
    frame_files,
    load_path,
    load_video,
    probe,
    sample_indices,
)
from text2sign.data.writers import FPS


def sample_of(path: Path, **cut) -> Sample:
    return Sample(path.stem, path, "c", "s", kind_of(path), label=path.name, **cut)


def close(a, b, tol: int = 6) -> bool:
    """Equal up to lossy-codec rounding (mp4/webm are 4:2:0 H.264/VP9)."""
    return bool(np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= tol)


# Every kind decodes the same content ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_pads_with_the_last_frame(tmp_path, kind):
    path = write(tmp_path, "a", solid_video([RED, GREEN, BLUE]), kind)
    video = load_path(path, num_frames=5, size=SIZE)
    assert video.shape == (5, SIZE, SIZE, 3) and video.dtype == np.uint8
    for t, colour in enumerate([RED, GREEN, BLUE, BLUE, BLUE]):
        assert close(video[t, 4, 4], colour), (kind, t, video[t, 4, 4])


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_truncates_to_the_first_frames(tmp_path, kind):
    path = write(tmp_path, "a", solid_video([RED, GREEN, BLUE, GREY]), kind)
    video = load_path(path, num_frames=2, size=SIZE)
    assert close(video[0, 4, 4], RED) and close(video[1, 4, 4], GREEN)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_resizes_shorter_side_and_centre_crops(tmp_path, kind):
    # 40 wide x 20 high: red | green (middle 20 columns) | blue. Size 10: resized to 20 x 10,
    # and the centre crop keeps the green middle.
    frame = np.zeros((20, 40, 3), np.uint8)
    frame[:, :10], frame[:, 10:30], frame[:, 30:] = RED, GREEN, BLUE
    other = frame.copy()
    other[:, 10:30] = (0, 250, 0)  # a GIF writer merges equal frames
    path = write(tmp_path, "wide", np.stack([frame, other]), kind)
    video = load_path(path, num_frames=2, size=10)
    assert video.shape == (2, 10, 10, 3)
    inner = video[:, :, 2:8]  # away from the colour edges, which 4:2:0 chroma blurs
    assert (inner[..., 1] > 200).all() and (inner[..., [0, 2]] < 60).all()


def test_gif_greyscale_and_alpha_become_rgb(tmp_path):
    Image.new("L", (SIZE, SIZE), 77).save(tmp_path / "grey.gif")
    grey = load_path(tmp_path / "grey.gif", num_frames=1, size=SIZE)
    assert grey.shape == (1, SIZE, SIZE, 3) and (grey == 77).all()
    Image.new("RGBA", (SIZE, SIZE), (0, 0, 255, 255)).save(tmp_path / "rgba.gif")
    assert load_path(tmp_path / "rgba.gif", num_frames=1, size=SIZE).shape[-1] == 3


def test_frame_folder_is_read_in_natural_order_and_accepts_jpeg(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for t, colour in zip([2, 10, 1], [GREEN, BLUE, RED], strict=True):
        Image.fromarray(solid_video([colour])[0]).save(folder / f"{t}.png")
    Image.fromarray(solid_video([GREY])[0]).save(folder / "11.jpg")
    (folder / "notes.txt").write_text("not a frame")
    assert [p.name for p in frame_files(folder)] == ["1.png", "2.png", "10.png", "11.jpg"]
    video = load_path(folder, num_frames=4, size=SIZE)
    assert [tuple(video[t, 0, 0]) for t in range(3)] == [RED, GREEN, BLUE]
    assert close(video[3, 0, 0], GREY, tol=3)


def cut_by_stream_copy(src: Path, dst: Path, start_s: float) -> Path:
    """What ``ffmpeg -ss START -i SRC -c copy DST`` does, with PyAV: the packets from the
    keyframe at or before START, shifted so that START is time 0; the muxer writes an edit
    list that hides the frames before it (their times are negative)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        ins = inp.streams.video[0]
        outs = out.add_stream_from_template(ins)
        cut = int(start_s / ins.time_base)
        inp.seek(cut, stream=ins, backward=True)
        for packet in inp.demux(ins):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.pts, packet.dts, packet.stream = packet.pts - cut, packet.dts - cut, outs
            out.mux(packet)
    return dst


def test_an_mp4_cut_by_stream_copy_is_valid_and_decodes_from_its_cut(tmp_path):
    """The index holds 40 samples, FFmpeg shows 27 (the edit list hides 13): not truncated."""
    src = write(tmp_path, "src", numbered_video(40), "mp4")
    cut = cut_by_stream_copy(src, tmp_path / "cut.mp4", 1.3)
    with av.open(str(cut)) as c:
        assert c.streams.video[0].frames == 40  # what the old check compared with
    video = load_path(cut, num_frames=27, size=16)
    assert [frame_number(f) for f in video] == list(range(13, 40))
    info = probe(sample_of(cut))
    assert info.frames == 27
    # and a truly truncated copy of it is still named
    data = cut.read_bytes()
    (tmp_path / "short.mp4").write_bytes(data[: int(len(data) * 0.5)])
    with pytest.raises(BadVideo, match="truncated|corrupt"):
        probe(sample_of(tmp_path / "short.mp4"))


@pytest.mark.parametrize("kind", ["mp4", "webm"])
def test_encoded_clips_keep_every_frame_exactly_in_order(tmp_path, kind):
    path = write(tmp_path, "n", numbered_video(40), kind)
    video = load_path(path, num_frames=40, size=16)
    assert [frame_number(f) for f in video] == list(range(40))
    info = probe(sample_of(path))
    assert (info.frames, info.width, info.height) == (40, 16, 16)
    assert info.seconds == pytest.approx(39 / FPS)


# Cuts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mp4", "webm", "gif"])
def test_cut_in_seconds_keeps_the_half_open_interval(tmp_path, kind):
    # 10 fps: start 2.05 s -> first frame at 2.1 s (21); end 3.0 s excluded -> last is 29.
    path = write(tmp_path, "n", numbered_video(60), kind)
    clip, n, first = decode_clip(sample_of(path, start=2.05, end=3.0), 9, 16)
    assert first == 21  # the cut's first frame, as an index in the whole source
    assert n == 9 and [frame_number(f) for f in clip] == list(range(21, 30))


def test_seconds_cut_seeks_to_a_keyframe_and_decodes_to_the_exact_frame(tmp_path):
    # 25 s at 10 fps, a keyframe every 12 frames: 21.0 s is frame 210, the keyframe is 204.
    path = write_mp4_with_keyframes(tmp_path / "n.mp4", numbered_video(250), every=12)
    clip, n, first = decode_clip(sample_of(path, start=21.0, end=24.0), 4, 16)
    assert n == 30 and [frame_number(f) for f in clip] == [210, 211, 212, 213]
    assert first == 210  # counted from the start although decoding began at keyframe 204
    clip, n, first = decode_clip(sample_of(path, start=24.55), 4, 16)
    assert n == 4 and first == 246 and [frame_number(f) for f in clip] == [246, 247, 248, 249]


@pytest.mark.parametrize("kind", KINDS)
def test_cut_in_frames(tmp_path, kind):
    path = write(tmp_path, "n", numbered_video(30), kind)
    clip, n, first = decode_clip(sample_of(path, start_frame=5, end_frame=12), 7, 16)
    assert n == 7 and first == 5 and [frame_number(f) for f in clip] == list(range(5, 12))
    _, n, _ = decode_clip(sample_of(path, start_frame=25, end_frame=99), 1, 16)
    assert n == 5  # an end past the last frame keeps up to the last frame


def test_start_past_the_end_is_a_bad_video(tmp_path):
    path = write(tmp_path, "n", numbered_video(20), "mp4")
    with pytest.raises(BadVideo, match=r"start 5 s is past the end \(last frame at 1\.90 s\)"):
        decode_clip(sample_of(path, start=5.0), 4, 16)
    with pytest.raises(BadVideo, match=r"start_frame 20 is past the end \(20 frames\)"):
        decode_clip(sample_of(path, start_frame=20), 4, 16)


@pytest.mark.parametrize("cut", [{"end_frame": 0}, {"start_frame": 3, "end_frame": 3}])
def test_a_cut_that_holds_no_frame_says_so(tmp_path, cut):
    """end_frame=0 used to say "start_frame None is past the end"."""
    path = write(tmp_path, "n", numbered_video(20), "mp4")
    with pytest.raises(BadVideo, match=r"the cut holds no frame \(end_frame \d+ is at or before"):
        decode_clip(sample_of(path, **cut), 4, 16)


def test_frame_folder_cannot_be_cut_in_seconds(tmp_path):
    path = write(tmp_path, "n", numbered_video(4), "frames")
    with pytest.raises(BadVideo, match="no timestamps"):
        decode_clip(sample_of(path, start=0.1), 2, 16)


# Frame sampling ------------------------------------------------------------------------------


def test_sample_indices():
    assert sample_indices(10, 4, "first").tolist() == [0, 1, 2, 3]
    assert sample_indices(2, 4, "first").tolist() == [0, 1, 1, 1]
    assert sample_indices(100, 4, "uniform").tolist() == [12, 37, 62, 87]  # segment centres
    assert sample_indices(4, 4, "uniform").tolist() == [0, 1, 2, 3]
    assert sample_indices(2, 4, "uniform").tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="uniform"):
        sample_indices(4, 4, "random")


@pytest.mark.parametrize("kind", ["mp4", "frames"])
def test_uniform_sampling_spreads_over_the_cut(tmp_path, kind):
    path = write(tmp_path, "n", numbered_video(50), kind)
    clip, n, _ = decode_clip(sample_of(path, start_frame=10, end_frame=50), 4, 16, "uniform")
    assert n == 40 and [frame_number(f) for f in clip] == [15, 25, 35, 45]
    first = load_video(sample_of(path, start_frame=10, end_frame=50), 4, 16, "first")
    assert [frame_number(f) for f in first] == [10, 11, 12, 13]


def test_load_path_refuses_an_unknown_suffix(tmp_path):
    (tmp_path / "a.avi").write_bytes(b"x")
    with pytest.raises(BadVideo, match="not a .gif/.mp4/.webm"):
        load_path(tmp_path / "a.avi", 2, SIZE)


def test_writer_output_is_h264_and_vp9_at_the_fixed_rate(tmp_path):
    for kind, codec in (("mp4", "h264"), ("webm", "vp9")):
        path = write(tmp_path, f"c_{kind}", numbered_video(3), kind)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == codec and float(stream.average_rate) == FPS
