"""The estimator floor on a real person with the real estimator: the references' keypoints at
the model's resolution against the same clips at native resolution."""

from __future__ import annotations

import numpy as np

from text2sign.data import open_dataset, person
from text2sign.evaluation import floor
from text2sign.evaluation.pose_scoring import keypoints_dir
from text2sign.pose.extract import content_key, extract
from text2sign.pose.joints import read

NATIVE, MODEL, FRAMES = 128, 64, 8


def test_the_floor_is_small_and_below_a_shuffled_reference(tmp_path, pose):
    """4 clips of the astronaut, written at 128 px, cached at 64 px: the floor is finite, ≥ 0,
    and lower than comparing each clip with another clip's native keypoints; a second call
    only decodes and finds the keypoints by content."""
    person.write_folder(tmp_path / "d", frames=FRAMES, size=NATIVE, signers=1)  # 8 GIFs
    train, _ = open_dataset(tmp_path / "d", num_frames=FRAMES, size=MODEL, val_fraction=0.0)
    cache, rows = train.cache, [0, 2, 4, 6]
    videos_npy = cache.path / "videos.npy"
    keys = {j: content_key(cache.videos[j]) for j in rows}
    out = keypoints_dir(videos_npy)
    assert not extract(videos_npy, keys, out, pose, workers=2).failed
    model = [read(out / f"{keys[j]}.pose") for j in rows]

    assert floor.native_clip(cache, rows[0]).shape == (FRAMES, NATIVE, NATIVE, 3)
    native, info = floor.native_joints(cache, rows, out, pose, workers=2)
    assert info["estimated_frames"] == len(rows) * FRAMES and info["native_sizes_estimated"] == [
        f"{NATIVE}x{NATIVE}"
    ]
    errors, reasons = floor.floor_errors(model, native)
    assert not reasons and all(np.isfinite(e) and e >= 0 for e in errors)
    shuffled, _ = floor.floor_errors(model, native[1:] + native[:1])  # clip i vs clip i+1
    assert np.mean(errors) < 0.75 * np.mean(shuffled)  # measured: 0.16 vs 0.36
    metrics = floor.floor_metrics(errors, reasons)
    assert metrics["dtw_mje_floor_clips"].value == 4
    print(f"floor {np.mean(errors):.4f} vs shuffled {np.mean(shuffled):.4f} shoulder widths")

    again, info = floor.native_joints(cache, rows, out, pose)
    assert info["estimated_frames"] == 0  # cached by content: nothing estimated twice
    assert floor.floor_errors(model, again)[0] == errors
