"""The report's videos: the skeleton drawn as the metric sees it, files that decode, TensorBoard."""

from __future__ import annotations

import json

import av
import imageio.v3 as iio
import numpy as np
import pytest

from text2sign.evaluation import overlay, showcase
from text2sign.pose.joints import LEFT_HAND, NUM_JOINTS, RIGHT_HAND, Joints
from text2sign.run.writers import TensorBoardWriter

T, H, W = 6, 32, 32


def _joints(left: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0.2, 0.8, size=(T, NUM_JOINTS, 2))
    if not left:
        xy[:, LEFT_HAND] = np.nan
    return xy


def _count(frames: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((frames == np.asarray(colour, dtype=np.uint8)).all(axis=-1).sum())


def test_a_missing_hand_is_not_drawn_and_a_found_one_is():
    black = np.zeros((T, 128, 128, 3), np.uint8)
    with_left = overlay.draw(black, _joints(left=True))
    without = overlay.draw(black, _joints(left=False))
    assert _count(with_left, overlay.COLOURS["left"]) > 0
    assert _count(without, overlay.COLOURS["left"]) == 0  # missing: visibly missing
    assert _count(without, overlay.COLOURS["right"]) > 0
    assert _count(without, overlay.COLOURS["body"]) > 0
    assert not black.any()  # the input is not drawn on


def test_every_bone_joins_joints_of_its_part():
    for a, b, part in overlay.BONES:
        for j in (a, b):
            assert j < NUM_JOINTS
            if part == "left" and j >= LEFT_HAND.start:
                assert j < LEFT_HAND.stop
            if part == "right" and j >= RIGHT_HAND.start:
                assert j < RIGHT_HAND.stop


def _videos(n: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {p: rng.integers(0, 255, size=(n, T, H, W, 3), dtype=np.uint8) for p in showcase.PASSES}


def _clips(n: int = 2) -> list[dict]:
    return [{"name": f"c{i}", "recording": f"r{i}", "caption": f"cap {i}",
             "shuffled_caption": f"cap {1 - i}",
             "dtw_mje": {"correct": 0.1, "shuffled": float("nan"), "empty": 0.3}}
            for i in range(n)]  # fmt: skip


def test_the_videos_decode_at_the_upscaled_size_with_every_frame(tmp_path):
    joints = {p: [Joints(_joints(True)), "pose worker exit -11"] for p in showcase.PASSES}
    index, rows = showcase.write(tmp_path, _clips(), _videos(), fps=8, joints=joints, step=40,
                                 weights="ema")  # fmt: skip
    assert index["formats"] == ["mp4", "webm"] and index["format_note"] == ""
    saved = json.loads((tmp_path / "eval_videos" / "index.json").read_text())
    assert saved == json.loads(json.dumps(index))
    first = saved["clips"][0]
    assert first["caption"] == "cap 0" and first["shuffled_caption"] == "cap 1"
    assert first["dtw_mje"] == {"correct": 0.1, "shuffled": None, "empty": 0.3}  # NaN → null
    assert first["detection"]["reference"]["left_hand"] == 1.0
    assert saved["clips"][1]["detection"]["correct"] == {"reason": "pose worker exit -11"}
    for fmt in ("mp4", "webm"):
        path = tmp_path / "eval_videos" / first["files"]["shuffled"][fmt]
        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
            assert c.streams.video[0].codec_context.name in ("h264", "vp9", "libvpx-vp9")
        assert len(frames) == T and frames[0].shape == (128, 128, 3)
    assert rows[0].shape == (T, 128, 3 * 128 + 2 * 4, 3)


def test_without_an_encoder_the_videos_are_gifs_and_say_why(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise ValueError("no libx264 in this FFmpeg")

    monkeypatch.setattr(showcase, "write_encoded", broken)
    index, _ = showcase.write(tmp_path, _clips(1), _videos(1), fps=8)
    assert index["formats"] == ["gif"] and "no libx264" in index["format_note"]
    gif = tmp_path / "eval_videos" / index["clips"][0]["files"]["correct"]["gif"]
    assert iio.imread(gif, index=None).shape[0] == T
    assert index["skeleton"] == "none" and index["clips"][0]["detection"] == {}


@pytest.mark.parametrize("side", [31, 32, 100])
def test_upscaling_keeps_pixels_and_gives_even_sides(side):
    frames = np.random.default_rng(2).integers(0, 255, size=(2, side, side, 3), dtype=np.uint8)
    big = showcase.upscale(frames)
    k = big.shape[1] // side
    assert big.shape[1] % 2 == 0 and big.shape[1] >= showcase.MIN_SIDE and k % 2 == 0
    assert np.array_equal(big[:, ::k, ::k], frames)


def test_tensorboard_gets_the_clip_as_a_video(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = TensorBoardWriter(tmp_path, every=1)
    frames = _videos(1)["correct"][0]
    tb.add_video("eval/clip00", frames, step=7, fps=8)
    tb.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"images": 0}).Reload()
    (event,) = acc.Images("eval/clip00")
    assert event.step == 7 and event.encoded_image_string[:4] == b"GIF8"
    assert iio.imread(event.encoded_image_string, extension=".gif", index=None).shape[0] == T
