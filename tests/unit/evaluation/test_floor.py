"""The estimator floor's inputs without the estimator: the native-resolution clip is the source's
centre square at the cached clip's frames, and the floor's numbers from hand-made joints."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from text2sign.data import open_dataset
from text2sign.evaluation import floor
from text2sign.pose.joints import NUM_JOINTS, Joints


def write_frames(folder, n: int, width: int, height: int) -> np.ndarray:
    """PNG frames (lossless) whose pixels encode the frame index and the column: (n, H, W, 3)."""
    folder.mkdir(parents=True)
    frames = np.zeros((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i, :, :, 0] = 10 * i  # which frame
        frames[i, :, :, 1] = np.arange(width)[None, :]  # which column
        frames[i, :, :, 2] = np.arange(height)[:, None]  # which row
        Image.fromarray(frames[i]).save(folder / f"{i:03d}.png")
    return frames


def test_the_native_clip_is_the_centre_square_of_the_cached_frames(tmp_path):
    frames = write_frames(tmp_path / "clips" / "a", 12, width=96, height=64)
    write_frames(tmp_path / "clips" / "b", 6, width=96, height=64)
    (tmp_path / "m.csv").write_text("video,caption,signer,start_frame,end_frame\n"
                                    "clips/a,hello,s0,2,10\nclips/b,world,s1,,\n")  # fmt: skip
    train, _ = open_dataset(tmp_path / "m.csv", num_frames=4, size=16, val_fraction=0.0,
                            frame_sampling="uniform")  # fmt: skip
    cache = train.cache
    j = cache.names.index("a")
    clip = floor.native_clip(cache, j)
    assert clip.shape == (4, 64, 64, 3)  # the source's own size: the 64 x 64 centre square
    wanted = 2 + cache.source_frames(j)  # the cut starts at frame 2: (i + 0.5) * 8 / 4 → 1,3,5,7
    assert list(wanted) == [3, 5, 7, 9]
    assert np.array_equal(clip, frames[wanted][:, :, 16:80])  # columns 16..79: the centre
    assert floor.sample_of(cache, j).cut == {"start_frame": 2, "end_frame": 10}


def still(shift: float = 0.0, shoulders: bool = True) -> Joints:
    xy = np.full((4, NUM_JOINTS, 2), 0.5) + [shift, 0.0]
    xy[:, 1], xy[:, 2] = (0.4 + shift, 0.5), (0.6 + shift, 0.5)  # shoulders 0.2 apart
    if not shoulders:
        xy[:, 1:3] = np.nan
    return Joints(xy)


def test_floor_numbers_from_joints():
    model = [still(0.02), still(), "pose worker exit 1: x", still()]
    native = [still(), still(), still(), still(shoulders=False)]
    errors, reasons = floor.floor_errors(model, native)
    assert math.isclose(errors[0], 0.02 / 0.2)  # 0.02 of the frame, shoulders 0.2 apart
    assert errors[1] == 0.0 and math.isnan(errors[2]) and math.isnan(errors[3])
    assert reasons == {2: "keypoints failed: pose worker exit 1: x",
                       3: "no shoulders found in the native-resolution reference"}  # fmt: skip
    m = floor.floor_metrics(errors, reasons)
    assert math.isclose(m["dtw_mje_floor"].value, 0.05) and m["dtw_mje_floor_clips"].value == 2
    none = floor.floor_metrics([math.nan], {0: "keypoints failed: x"})
    assert none["dtw_mje_floor"].reason == "no clip could be scored: keypoints failed: x"
