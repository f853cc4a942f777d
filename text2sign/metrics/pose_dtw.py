"""DTW-MJE between estimated keypoints, where the estimator may miss joints in some frames.

The synthetic set has exact keypoints (:mod:`text2sign.metrics.keypoints`); real signers have
estimated ones, with holes: a hand out of view, a body the estimator lost. Here (pure functions on
(T, K, 2) arrays, NaN = not found):

* reference frames without any joint are dropped: there is nothing to compare them with;
* within a pair of frames, only the joints found in the reference count (the mean joint error is
  over them);
* a joint found in the reference but not in the generated frame costs ``missing_cost`` (in units
  of ``scale``): a generated video that loses a hand is charged for it, never rewarded;
* distances are divided by ``scale`` (the reference's shoulder width: :mod:`text2sign.pose.joints`).
"""

from __future__ import annotations

import numpy as np

from text2sign.metrics.keypoints import dtw_path

#: What a joint found in the reference but missing from the generated frame costs, in shoulder
#: widths: about the distance from a shoulder to the elbow, i.e. a clearly wrong joint.
MISSING_COST = 1.0


def frame_costs(
    pred: np.ndarray, ref: np.ndarray, *, scale: float, missing_cost: float
) -> np.ndarray:
    """(Tr, Tp) mean over the reference's found joints of the scaled distance (or the penalty)."""
    found_ref = ~np.isnan(ref).any(axis=-1)  # (Tr, K)
    found_pred = ~np.isnan(pred).any(axis=-1)  # (Tp, K)
    dist = np.linalg.norm(ref[:, None] - pred[None, :], axis=-1) / scale  # (Tr, Tp, K), NaN holes
    dist = np.where(found_pred[None, :, :], dist, missing_cost)
    dist = np.where(found_ref[:, None, :], dist, 0.0)
    return dist.sum(axis=-1) / found_ref.sum(axis=-1)[:, None]


def masked_dtw_mje(
    pred: np.ndarray, ref: np.ndarray, *, scale: float, missing_cost: float = MISSING_COST
) -> float:
    """DTW-MJE of (Tp, K, 2) ``pred`` against (Tr, K, 2) ``ref``, NaN = not found (see above).

    NaN when the reference has no frame with a joint or ``pred`` has no frame at all: such a clip
    cannot be scored, and the caller reports how many clips were.
    """
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if pred.ndim != 3 or ref.ndim != 3 or pred.shape[1:] != ref.shape[1:] or pred.shape[-1] != 2:
        raise ValueError(
            f"expected (T, K, 2) keypoints of one layout, got {pred.shape} and {ref.shape}"
        )
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    ref = ref[~np.isnan(ref).any(axis=-1).all(axis=-1)]  # reference frames with a joint
    if len(ref) == 0 or len(pred) == 0:
        return float("nan")
    total, path = dtw_path(frame_costs(pred, ref, scale=scale, missing_cost=missing_cost).T)
    return total / len(path)
