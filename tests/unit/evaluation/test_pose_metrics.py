"""Real-signer metrics from keypoints, without the estimator: why a clip cannot be scored, the
N/A reason of a pass that scored none, and the detection gap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from text2sign.evaluation import pose_scoring
from text2sign.pose.joints import NUM_JOINTS, Joints


def joints(t: int = 4, body: bool = True, shoulders: bool = True, hands: bool = True) -> Joints:
    """(T, 49, 2) joints of a still signer; parts switched off are NaN (not found)."""
    xy = np.full((t, NUM_JOINTS, 2), 0.5)
    xy[:, 1], xy[:, 2] = (0.4, 0.5), (0.6, 0.5)  # shoulders 0.2 apart
    if not shoulders:
        xy[:, 1:3] = np.nan
    if not body:
        xy[:, :7] = np.nan
    if not hands:
        xy[:, 7:] = np.nan
    return Joints(xy)


def test_each_clip_says_why_it_cannot_be_scored():
    assert pose_scoring.unscorable_reason(joints(), joints()) is None
    assert pose_scoring.unscorable_reason(joints(body=False), joints()) == (
        "no body found in the reference clip"
    )
    assert pose_scoring.unscorable_reason(joints(shoulders=False), joints()) == (
        "no shoulders found in the reference clip"
    )
    assert pose_scoring.unscorable_reason("pose worker exit 1: boom", joints()) == (
        "keypoints failed: pose worker exit 1: boom"
    )


def test_no_body_in_any_reference_is_the_na_reason():
    assert pose_scoring.none_scored([pose_scoring.NO_BODY] * 3) == (
        "no body found in the 3 reference clips"
    )
    mixed = pose_scoring.none_scored([pose_scoring.NO_BODY, "keypoints failed: x", "keypoints "
                                      "failed: x"])  # fmt: skip
    assert mixed == "no clip could be scored: no body found in the reference clip (1); " \
        "keypoints failed: x (2)"  # fmt: skip
    nan = [math.nan, math.nan]
    errors = {"correct": nan, "shuffled": nan, "empty": nan}
    detail = {"no_score": {p: "no body found in the 2 reference clips" for p in errors},
              "detection_reference": {"body": 0.0, "left_hand": 0.0, "right_hand": 0.0},
              "detection_generated": {"body": 1.0, "left_hand": 0.5, "right_hand": 0.0},
              "detection_gap": {"body": -1.0, "left_hand": -0.5, "right_hand": 0.0}}  # fmt: skip
    metrics, _ = pose_scoring.pose_metrics(errors, detail, [1, 0], ["r0", "r1"])
    for key in ("dtw_mje", "dtw_mje_shuffled", "dtw_mje_empty", "audit_gap", "audit_p"):
        assert metrics[key].reason == "no body found in the 2 reference clips", key
    assert metrics["dtw_mje_clips"].value == 0.0
    assert metrics["detection_gap_left_hand"].value == -0.5


def test_the_detection_gap_is_reference_minus_generated_over_clips_with_both():
    ref, gen_lost_hands = joints(), joints(hands=False)
    per_clip = [
        {"reference": ref.detection(), "generated": gen_lost_hands.detection()},  # hands lost
        {"reference": ref.detection(), "generated": ref.detection()},  # the same
        {"reference": ref.detection(), "generated": None},  # no generated keypoints: left out
    ]
    gap = pose_scoring.detection_gap(per_clip)
    assert gap == {"body": 0.0, "left_hand": pytest.approx(0.5), "right_hand": pytest.approx(0.5)}
    assert pose_scoring.detection_gap([per_clip[2]]) == dict.fromkeys(pose_scoring.PARTS)
