"""MediaPipe keypoints of a real person (skimage's astronaut) follow a known camera motion; the
extraction is cached by content, resumes, and names what failed."""

from __future__ import annotations

import numpy as np
import pytest

from text2sign.data import person
from text2sign.pose.extract import content_key, extract
from text2sign.pose.joints import NUM_JOINTS, read

FRAMES, SIZE = 8, 96


@pytest.fixture(scope="module")
def motions(tmp_path_factory, pose):
    """Every camera motion as one clip, estimated once for the module."""
    root = tmp_path_factory.mktemp("motions")
    videos = np.stack([person.clip(m, FRAMES, SIZE) for m in person.MOTIONS])
    np.save(root / "videos.npy", videos)
    keys = {i: content_key(v) for i, v in enumerate(videos)}
    done = extract(root / "videos.npy", keys, root / "kp", pose, workers=2)
    assert not done.failed, done.failed
    return {m: read(root / "kp" / f"{keys[i]}.pose") for i, m in enumerate(person.MOTIONS)}


def test_the_nose_follows_the_known_camera_motion(motions):
    """Frame 0's nose, taken back to the photo, is where every later window puts it (≤ 0.05 of
    the frame: 5 px at 96 px), and moves the way the camera makes the content move."""
    for motion, j in motions.items():
        assert j.xy.shape == (FRAMES, NUM_JOINTS, 2)
        assert j.body_found.all(), motion
        w = person.windows(motion, FRAMES)
        u0, v0 = j.xy[0, 0]
        x, y = w[0].cx + (u0 - 0.5) * w[0].side, w[0].cy + (v0 - 0.5) * w[0].side
        predicted = np.array([win.to_frame(x, y) for win in w])
        assert np.abs(j.xy[:, 0] - predicted).max() <= 0.05, motion
    nose = {m: j.xy[-1, 0] - j.xy[0, 0] for m, j in motions.items()}
    assert nose["pan left"][0] > 0.08 and nose["pan right"][0] < -0.08  # content moves against
    assert nose["tilt up"][1] > 0.06 and nose["tilt down"][1] < -0.06
    assert (
        nose["rotate left"][0] > 0.06 and nose["rotate right"][0] < -0.06
    )  # nose above the centre


def test_zoom_changes_the_shoulder_width_the_right_way(motions):
    def width(j, t):
        return float(np.linalg.norm(j.xy[t, 1] - j.xy[t, 2]))

    zin, zout = motions["zoom in"], motions["zoom out"]
    assert width(zin, -1) > 1.05 * width(zin, 0)
    assert width(zout, -1) < 0.9 * width(zout, 0)
    assert 0.3 < zin.shoulder_width() < 0.7  # shoulders across about half the frame


def test_extraction_is_cached_by_content_and_resumes(tmp_path, pose):
    clip = person.clip("pan left", 4, 64)
    videos = np.stack([clip, clip, person.clip("zoom in", 4, 64)])  # the first two are the same
    np.save(tmp_path / "v.npy", videos)
    keys = {i: content_key(v) for i, v in enumerate(videos)}
    assert keys[0] == keys[1] != keys[2]
    first = extract(tmp_path / "v.npy", keys, tmp_path / "kp", pose, workers=2)
    assert len(first.done) == 2 and not first.failed  # the same frames are estimated once
    again = extract(tmp_path / "v.npy", keys, tmp_path / "kp", pose)
    assert not again.done and len(again.cached) == 3
    (tmp_path / "kp" / f"{keys[2]}.pose").unlink()  # as if the first run had been killed there
    resumed = extract(tmp_path / "v.npy", keys, tmp_path / "kp", pose)
    assert list(resumed.done) == [keys[2]]
    assert content_key(clip[:, :, :, ::-1]) != keys[0]  # other frames, another key


def test_a_failing_worker_names_every_clip_it_did_not_write(tmp_path, pose):
    (tmp_path / "v.npy").write_bytes(b"not a numpy file")
    out = extract(tmp_path / "v.npy", {0: "k0", 1: "k1"}, tmp_path / "kp", pose)
    assert set(out.failed) == {"k0", "k1"}
    assert all("pose worker exit 1" in why for why in out.failed.values())
    assert not list((tmp_path / "kp").glob("*.pose"))


def test_a_clip_the_estimator_fails_on_is_named_and_the_others_go_on(tmp_path, pose):
    """One bad clip used to kill its worker's whole chunk (and the prepare stage)."""
    videos = np.stack([person.clip("pan left", 4, 64), person.clip("zoom in", 4, 64)])
    np.save(tmp_path / "v.npy", videos)
    keys = {0: content_key(videos[0]), 7: "no-such-row", 1: content_key(videos[1])}
    out = extract(tmp_path / "v.npy", keys, tmp_path / "kp", pose, workers=1)
    assert set(out.done) == {keys[0], keys[1]}
    assert list(out.failed) == ["no-such-row"] and "IndexError" in out.failed["no-such-row"]


def test_a_worker_that_dies_on_a_clip_is_restarted_for_the_rest(tmp_path, pose, monkeypatch):
    from text2sign.pose.worker import FAULT_ENV

    videos = np.stack([person.clip(m, 4, 64) for m in ("pan left", "zoom in", "tilt up")])
    np.save(tmp_path / "v.npy", videos)
    keys = {i: content_key(v) for i, v in enumerate(videos)}
    monkeypatch.setenv(FAULT_ENV, keys[1])
    out = extract(tmp_path / "v.npy", keys, tmp_path / "kp", pose, workers=1)
    assert set(out.done) == {keys[0], keys[2]}  # the clip after the crash too
    assert list(out.failed) == [keys[1]] and "pose worker exit -11" in out.failed[keys[1]]
