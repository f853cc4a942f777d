"""nDTW-MJE on estimated keypoints with holes: what is excluded, what is charged, the scale, and
why the divisor is the reference's length."""

from __future__ import annotations

import numpy as np
import pytest

from text2sign.metrics.keypoints import dtw_mje, dtw_path
from text2sign.metrics.pose_dtw import dtw_mean_cost, masked_dtw_mje, missing_costs


def walk(t: int = 6, k: int = 3, dx: float = 0.05) -> np.ndarray:
    """(T, K, 2) joints moving right by dx per frame."""
    base = np.stack([np.linspace(0.2, 0.6, k), np.full(k, 0.5)], axis=-1)
    return np.stack([base + [dx * i, 0.0] for i in range(t)])


def test_complete_keypoints_give_the_plain_dtw_mje_divided_by_the_scale():
    ref, pred = walk(), walk() + [0.0, 0.1]
    assert masked_dtw_mje(pred, ref, scale=1.0) == pytest.approx(dtw_mje(pred, ref))
    assert masked_dtw_mje(pred, ref, scale=0.2) == pytest.approx(dtw_mje(pred, ref) / 0.2)
    assert masked_dtw_mje(ref, ref, scale=0.3) == 0.0


def test_a_missing_joint_costs_its_distance_to_the_farthest_corner():
    ref = walk()
    pred = ref.copy()
    pred[:, 0] = np.nan  # joint 0 lost in every generated frame
    # frame i: joint 0 at (0.2 + 0.05 i, 0.5); its farthest corners are (1, 0) and (1, 1)
    far = np.hypot(1 - (0.2 + 0.05 * np.arange(6)), 0.5)
    assert missing_costs(ref, 1.0)[:, 0] == pytest.approx(far)
    # the diagonal: joints 1, 2 exact (0), joint 0 charged its corner distance, mean over 3
    assert masked_dtw_mje(pred, ref, scale=1.0) == pytest.approx(far.mean() / 3)
    assert masked_dtw_mje(pred, ref, scale=0.5) == pytest.approx(far.mean() / 3 / 0.5)


def test_missing_never_costs_less_than_the_joint_drawn_anywhere_in_the_frame():
    """Over many random clips, holes and placements: the whole nDTW-MJE of a generated clip that
    lost some joints is at least that of the same clip with those joints drawn anywhere in the
    frame, corners included (where a point of the frame is farthest from any joint)."""
    rng = np.random.default_rng(0)
    for trial in range(300):
        tr, tp, k = rng.integers(1, 7), rng.integers(1, 7), rng.integers(1, 5)
        ref = rng.uniform(0, 1, (tr, k, 2))
        ref[rng.uniform(size=(tr, k)) < 0.2] = np.nan  # the reference misses some joints too
        pred = rng.uniform(0, 1, (tp, k, 2))
        lost = rng.uniform(size=(tp, k)) < 0.4
        holes = pred.copy()
        holes[lost] = np.nan
        scale = rng.uniform(0.1, 1.0)
        missing = masked_dtw_mje(holes, ref, scale=scale)
        if np.isnan(missing):
            continue  # a reference without any joint: not scorable either way
        for _ in range(5):
            drawn = pred.copy()
            drawn[lost] = rng.uniform(0, 1, (lost.sum(), 2))  # anywhere in the frame
            assert missing >= masked_dtw_mje(drawn, ref, scale=scale) - 1e-12, trial
        corners = pred.copy()
        corners[lost] = rng.integers(0, 2, (lost.sum(), 2))  # at random corners
        assert missing >= masked_dtw_mje(corners, ref, scale=scale) - 1e-12, trial


def test_a_larger_cost_matrix_gives_a_larger_value_the_path_length_divisor_does_not():
    """Raising one cost makes a longer path optimal: total / len(path) drops from 2/3 to 2/4,
    total / reference frames stays 2/3."""
    cost = np.zeros((3, 3))
    cost[0, 0] = cost[2, 2] = 1.0
    larger = cost.copy()
    larger[1, 1] = 100.0  # the diagonal's middle cell: the best path goes around it
    total, path = dtw_path(cost)
    total_l, path_l = dtw_path(larger)
    assert (total, len(path)) == (2.0, 3) and (total_l, len(path_l)) == (2.0, 4)
    assert total_l / len(path_l) < total / len(path)  # the old normalisation: not monotone
    assert dtw_mean_cost(larger) == dtw_mean_cost(cost) == pytest.approx(2 / 3)
    rng = np.random.default_rng(1)
    for _ in range(300):
        c = rng.uniform(0, 1, (rng.integers(1, 6), rng.integers(1, 6)))
        assert dtw_mean_cost(c + rng.uniform(0, 1, c.shape)) >= dtw_mean_cost(c)


def test_joints_missing_from_the_reference_do_not_count():
    ref, pred = walk(), walk()
    pred[:, 0] += [0.0, 0.3]  # joint 0 far off ...
    ref[:, 0] = np.nan  # ... but the reference never saw it: nothing to compare
    assert masked_dtw_mje(pred, ref, scale=1.0) == 0.0


def test_reference_frames_without_any_joint_are_dropped():
    ref = walk()
    ref_holes = ref.copy()
    ref_holes[2] = np.nan  # the estimator lost the signer in one frame
    # 6 generated frames against the 5 kept: generated frame 2 pairs with a neighbour 0.05 away;
    # the total is divided by the 5 reference frames scored
    assert masked_dtw_mje(ref, ref_holes, scale=1.0) == pytest.approx(0.05 / 5)
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
