"""The conditioning audit on a real person's clips, validated both ways with the real estimator.

Eight clips of skimage's astronaut under eight camera motions, each captioned with its motion.
A "model" that returns the reference of whatever caption it is given (the caption drives the
video) must separate: DTW-MJE 0 with the correct captions, larger with shuffled ones, p < 0.05.
A caption-blind stand-in (clip i's video depends only on its noise, i) must not: gap 0. Each
clip stands for a recording of its own here (8 clusters); references in which the estimator finds
no body make DTW-MJE N/A with that reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from text2sign.data import person
from text2sign.evaluation import audit, pose_scoring

FRAMES, SIZE = 8, 64


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """The references as a decoded cache lays them out: <cache>/<decoding>/videos.npy."""
    root = tmp_path_factory.mktemp("cache")
    (root / "8x64-test").mkdir()
    videos = np.stack([person.clip(m, FRAMES, SIZE) for m in person.MOTIONS])
    np.save(root / "8x64-test" / "videos.npy", videos)
    return root / "8x64-test" / "videos.npy", videos


def run_audit(tmp_path, refs_npy, videos, env):
    captions = list(person.MOTIONS)
    passes, perm = audit.conditions(captions, seed=0)
    meta = {"passes": list(passes), "num_videos": len(captions), "permutation": perm}
    pose_scoring.save_samples(tmp_path, videos(passes, perm), meta)
    errors, detail, _ = pose_scoring.pose_errors(tmp_path, videos(passes, perm), refs_npy,
                                                 list(range(len(captions))), env, workers=2)  # fmt: skip
    metrics, summary = audit.summarise(errors, perm, clusters=captions)  # a recording per clip
    return metrics, {**summary, **detail}


def test_a_model_that_follows_the_caption_separates(tmp_path, refs, pose):
    refs_npy, ref_videos = refs
    by_caption = {m: v for m, v in zip(person.MOTIONS, ref_videos, strict=True)}

    def follows(passes, perm):  # the reference of the caption asked for; empty: no motion
        still = np.repeat(ref_videos[:, :1], FRAMES, axis=1)
        return {"correct": ref_videos, "shuffled": np.stack([by_caption[c] for c in passes["shuffled"]]),
                "empty": still}  # fmt: skip

    metrics, detail = run_audit(tmp_path, refs_npy, follows, pose)
    assert metrics["dtw_mje"].value == 0.0  # the same frames: the same keypoints
    assert metrics["audit_gap"].value > 0.05  # shoulder widths
    assert metrics["audit_p"].value == 2**-8  # every one of the 8 recordings worse shuffled
    assert detail["clustered_test"]["n_clusters"] == 8 and not detail["unscorable"]
    assert detail["detection_reference"]["body"] == 1.0
    assert "MediaPipe Holistic" in detail["keypoints"]


def test_a_caption_blind_stand_in_gives_no_gap(tmp_path, refs, pose):
    refs_npy, ref_videos = refs
    n = len(ref_videos)

    def blind(passes, perm):  # clip i's video depends on its noise (i) only, never on the caption
        videos = ref_videos[[(i + 1) % n for i in range(n)]]
        return {name: videos for name in passes}

    metrics, detail = run_audit(tmp_path, refs_npy, blind, pose)
    assert metrics["audit_gap"].value == pytest.approx(0.0, abs=1e-12)
    assert metrics["audit_p"].value == 1.0  # no evidence at all
    assert metrics["dtw_mje"].value > 0.05  # and it is not the reference either


def test_references_without_a_body_say_so(tmp_path, pose):
    """Grey frames: MediaPipe finds no body in the references, so no clip can be scored and the
    N/A reason names that, not "no finite value"."""
    blank = np.full((2, 4, 64, 64, 3), 128, np.uint8)  # 2 clips, 4 frames
    (tmp_path / "c" / "d").mkdir(parents=True)
    np.save(tmp_path / "c" / "d" / "videos.npy", blank)
    passes = {"correct": ["a", "b"], "shuffled": ["b", "a"], "empty": ["", ""]}
    videos = {name: blank for name in passes}
    pose_scoring.save_samples(tmp_path, videos, {"passes": list(passes), "num_videos": 2})
    errors, detail, joints = pose_scoring.pose_errors(tmp_path, videos,
                                                    tmp_path / "c" / "d" / "videos.npy", [0, 1],
                                                    pose)  # fmt: skip
    assert not any(r.body_found.any() for r in joints["reference"])
    assert set(joints) == {"reference", *passes} and len(joints["shuffled"]) == 2
    assert detail["no_score"]["correct"] == "no body found in the 2 reference clips"
    assert detail["unscorable"]["correct/0"] == "no body found in the reference clip"
    metrics, _ = pose_scoring.pose_metrics(errors, detail, [1, 0], ["r0", "r1"])
    for key in ("dtw_mje", "dtw_mje_shuffled", "dtw_mje_empty", "audit_gap", "audit_p"):
        assert metrics[key].reason == "no body found in the 2 reference clips", key
    assert metrics["dtw_mje_clips"].value == 0.0
    assert metrics["reference_pose_found_body"].value == 0.0
