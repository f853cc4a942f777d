"""Our nDTW-MJE against the DTW metric of sign-language-processing/pose-evaluation, on the same pairs:
equal where the definitions agree, and the differences shown as numbers.

pose-evaluation is not on PyPI, so its computation is transcribed here (numpy, no masks: NaN
stands for a masked keypoint) from github.com/sign-language-processing/pose-evaluation at commit
d8129232615f540b3ad332298a8ba6a309c08e0b:

* ``pose_evaluation/metrics/dtw_metric.py`` ``DTWDTAIImplementationDistanceMeasure.get_distance``:
  for each keypoint, ``dtw_ndim.distance_fast(hyp[:, 0, k, :], ref[:, 0, k, :])``, then the mean
  over keypoints (``distance_measure.py`` ``_get_keypoint_trajectories``, ``_aggregate``);
* ``metrics/pose_processors.py`` ``NormalizePosesProcessor`` → pose-format's ``Pose.normalize``
  with the shoulders (``pose_format/pose.py``): every pose minus the mean over its frames of its
  shoulder midpoint, divided by the mean over its frames of its shoulder width, each pose by its
  own; ``FillMaskedOrInvalidValuesPoseProcessor(10.0)`` (their README's DTWp): a masked
  coordinate becomes 10.0.

and the DTW it calls from dtaidistance (github.com/wannesm/dtaidistance at commit
1a08caa8023dd161b2907c15000a14f6ab2b489d, ``src/dtaidistance/dtw.py`` ``distance`` with the
defaults pose-evaluation leaves: no window, no penalty, no psi; ``innerdistance.py``
``SquaredEuclideanNdim``): ``wps[i, j] = |s1[i] - s2[j]|² + min(wps[i-1, j], wps[i, j-1],
wps[i-1, j-1])``, the distance ``sqrt(wps[-1, -1])``. dtaidistance's ``inner_dist="euclidean"``
(``EuclideanNdim``: ``|s1[i] - s2[j]|``, no root at the end) is the same recurrence on our cost.
"""

from __future__ import annotations

import numpy as np
import pytest

from text2sign.metrics.pose_dtw import masked_dtw_mje

SHOULDERS = (0, 1)  # in these tests: keypoints 0, 1 are the shoulders, the rest are scored
FILL = 10.0  # their README's DTWp: FillMaskedOrInvalidValuesPoseProcessor(masked_fill_value=10.0)


def dtai_distance(s1: np.ndarray, s2: np.ndarray, inner: str = "squared euclidean") -> float:
    """dtaidistance ``dtw.distance(s1, s2, use_ndim=True)`` (defaults) on (T, D) series."""
    r, c = len(s1), len(s2)
    wps = np.full((r + 1, c + 1), np.inf)
    wps[0, 0] = 0.0
    for i in range(r):
        for j in range(c):
            d = float(np.sum((s1[i] - s2[j]) ** 2))
            d = d if inner == "squared euclidean" else np.sqrt(d)
            wps[i + 1, j + 1] = d + min(wps[i, j], wps[i, j + 1], wps[i + 1, j])
    return float(np.sqrt(wps[r, c])) if inner == "squared euclidean" else float(wps[r, c])


def normalize(pose: np.ndarray) -> np.ndarray:
    """pose-format ``Pose.normalize`` with the shoulders, on (T, K, D) (NaN: masked)."""
    p1, p2 = pose[:, SHOULDERS[0]], pose[:, SHOULDERS[1]]
    centre = np.nanmean((p1 + p2) / 2, axis=0)  # mean over frames of the shoulder midpoint
    width = np.nanmean(np.linalg.norm(p1 - p2, axis=-1))
    return (pose - centre) / width


def pose_evaluation_dtw(hyp: np.ndarray, ref: np.ndarray, *, fill: float = FILL) -> float:
    """Their DTW metric on (T, K, D) poses: normalise each, fill masked values, DTW per
    keypoint trajectory (the shoulders excluded here, as our scored joints exclude them), mean."""
    hyp, ref = (np.nan_to_num(normalize(p), nan=fill) for p in (hyp, ref))
    keypoints = [k for k in range(hyp.shape[1]) if k not in SHOULDERS]
    return float(np.mean([dtai_distance(hyp[:, k], ref[:, k]) for k in keypoints]))


def signer(t: int, extra: np.ndarray, shoulders=((0.4, 0.5), (0.6, 0.5))) -> np.ndarray:
    """(T, 2 + K, 2): still shoulders then the scored keypoints ``extra`` (T, K, 2)."""
    sh = np.broadcast_to(np.asarray(shoulders, dtype=np.float64), (t, 2, 2))
    return np.concatenate([sh, extra], axis=1)


def ours(hyp: np.ndarray, ref: np.ndarray) -> float:
    """Our nDTW-MJE on the scored keypoints, in the reference's shoulder widths."""
    width = float(np.median(np.linalg.norm(ref[:, 0] - ref[:, 1], axis=-1)))
    return masked_dtw_mje(hyp[:, 2:], ref[:, 2:], scale=width)


def test_one_keypoint_one_frame_nothing_missing_same_shoulders_identical_numbers():
    rng = np.random.default_rng(0)
    for _ in range(50):
        ref = signer(1, rng.uniform(0, 1, (1, 1, 2)))
        hyp = signer(1, rng.uniform(0, 1, (1, 1, 2)))
        assert ours(hyp, ref) == pytest.approx(pose_evaluation_dtw(hyp, ref), rel=1e-12)


def test_the_same_recurrence_with_dtaidistances_euclidean_inner_distance():
    """One keypoint, nothing missing, any lengths: our value × the reference's frames is
    dtaidistance's DTW with ``inner_dist="euclidean"`` on the normalised trajectories."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        tr, tp = rng.integers(1, 9, 2)
        ref = signer(tr, rng.uniform(0, 1, (tr, 1, 2)))
        hyp = signer(tp, rng.uniform(0, 1, (tp, 1, 2)))
        theirs = dtai_distance(normalize(hyp)[:, 2], normalize(ref)[:, 2], inner="euclidean")
        assert ours(hyp, ref) * tr == pytest.approx(theirs, rel=1e-12)


def test_where_the_definitions_differ():
    ref = signer(8, np.stack([np.linspace(0.3, 0.7, 8), np.full(8, 0.7)], -1)[:, None])

    # 1. Their cost is squared, rooted at the end, and not divided by a length: a constant error
    #    of 0.05 frame (0.25 shoulder widths) across the motion, over 8 frames, is sqrt(8) x 0.25
    #    for them, 0.25 for us.
    off = ref.copy()
    off[:, 2:] += [0.0, 0.05]
    assert ours(off, ref) == pytest.approx(0.25)
    assert pose_evaluation_dtw(off, ref) == pytest.approx(np.sqrt(8) * 0.25)

    # 2. They normalise each pose by its own shoulders: a signer drawn 0.1 frame lower (shoulders
    #    and all) costs them 0, us 0.5 shoulder widths: the position in the frame counts.
    moved = ref + [0.0, 0.1]
    assert pose_evaluation_dtw(moved, ref) == pytest.approx(0.0, abs=1e-12)
    assert ours(moved, ref) == pytest.approx(0.5)

    # 3. They warp each keypoint on its own: two hands that make the same move (a step from a
    #    to b) at other times than the reference's cost them 0; we align whole frames once, and
    #    one alignment cannot fit a hand that moves early and one that moves late.
    a, b = (0.3, 0.7), (0.6, 0.7)

    def steps(*when: int) -> np.ndarray:  # (8, hands, 2): hand h at a, then b from frame when[h]
        return signer(8, np.stack([[b if t >= w else a for w in when] for t in range(8)]))

    early_late, both = steps(2, 5), steps(3, 3)
    assert pose_evaluation_dtw(early_late, both) == 0.0
    assert ours(early_late, both) > 0.1

    # 4. A keypoint missing from the generated clip: theirs becomes the point (10, 10) of the
    #    normalised space, so the charge depends on where that point lies; ours is the distance
    #    to the farthest frame corner, in shoulder widths.
    lost = ref.copy()
    lost[:, 2] = np.nan
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    far = np.max(np.linalg.norm(ref[:, 2, None] - corners, axis=-1), axis=-1) / 0.2
    assert ours(lost, ref) == pytest.approx(far.mean())
    filled = np.full((8, 2), FILL)
    expected = dtai_distance(filled, normalize(ref)[:, 2])
    assert pose_evaluation_dtw(lost, ref) == pytest.approx(expected)

    # 5. A keypoint missing from the reference: theirs charges the generated one against
    #    (10, 10); ours does not count it (nothing to compare it with).
    pair = signer(8, np.stack([ref[:, 2], ref[:, 2] + [0.0, 0.1]], 1))
    unseen = pair.copy()
    unseen[:, 3] = np.nan  # the reference lost the second keypoint
    assert ours(pair, unseen) == 0.0  # the first is exact, the second is not counted
    assert pose_evaluation_dtw(pair, unseen) > 10  # the second against the fill value
