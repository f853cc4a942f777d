"""DTW-MJE on estimated keypoints with holes: what is excluded, what is charged, the scale."""

from __future__ import annotations

import numpy as np
import pytest

from text2sign.metrics.keypoints import dtw_mje
from text2sign.metrics.pose_dtw import MISSING_COST, masked_dtw_mje


def walk(t: int = 6, k: int = 3, dx: float = 0.05) -> np.ndarray:
    """(T, K, 2) joints moving right by dx per frame."""
    base = np.stack([np.linspace(0.2, 0.6, k), np.full(k, 0.5)], axis=-1)
    return np.stack([base + [dx * i, 0.0] for i in range(t)])


def test_complete_keypoints_give_the_plain_dtw_mje_divided_by_the_scale():
    ref, pred = walk(), walk() + [0.0, 0.1]
    assert masked_dtw_mje(pred, ref, scale=1.0) == pytest.approx(dtw_mje(pred, ref))
    assert masked_dtw_mje(pred, ref, scale=0.2) == pytest.approx(dtw_mje(pred, ref) / 0.2)
    assert masked_dtw_mje(ref, ref, scale=0.3) == 0.0


def test_a_joint_missing_from_the_generated_video_is_charged_not_skipped():
    ref = walk()
    pred = ref.copy()
    pred[:, 0] = np.nan  # joint 0 lost in every generated frame
    # every frame pair on the diagonal: joints 1, 2 exact (0), joint 0 charged MISSING_COST
    assert masked_dtw_mje(pred, ref, scale=1.0) == pytest.approx(MISSING_COST / 3)
    assert masked_dtw_mje(pred, ref, scale=1.0, missing_cost=3.0) == pytest.approx(1.0)


def test_joints_missing_from_the_reference_do_not_count():
    ref, pred = walk(), walk()
    pred[:, 0] += [0.0, 0.3]  # joint 0 far off ...
    ref[:, 0] = np.nan  # ... but the reference never saw it: nothing to compare
    assert masked_dtw_mje(pred, ref, scale=1.0) == 0.0


def test_reference_frames_without_any_joint_are_dropped():
    ref = walk()
    ref_holes = ref.copy()
    ref_holes[2] = np.nan  # the estimator lost the signer in one frame
    # 6 generated frames against the 5 kept: generated frame 2 pairs with a neighbour 0.05 away
    assert masked_dtw_mje(ref, ref_holes, scale=1.0) == pytest.approx(0.05 / 6)
    empty = np.full_like(ref, np.nan)
    assert np.isnan(masked_dtw_mje(ref, empty, scale=1.0))  # nothing found: not scorable


def test_the_warping_aligns_a_delayed_motion():
    ref = walk(t=8)
    delayed = np.concatenate([ref[:1], ref[:1], ref[:-2]])  # the same motion two frames late
    shifted = walk(t=8) + [0.2, 0.0]
    assert masked_dtw_mje(delayed, ref, scale=1.0) < masked_dtw_mje(shifted, ref, scale=1.0) / 4


def test_bad_shapes_and_scales_are_refused():
    with pytest.raises(ValueError, match="layout"):
        masked_dtw_mje(walk(k=3), walk(k=4), scale=1.0)
    with pytest.raises(ValueError, match="scale"):
        masked_dtw_mje(walk(), walk(), scale=0.0)
