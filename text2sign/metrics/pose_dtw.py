"""nDTW-MJE between estimated keypoints, where the estimator may miss joints in some frames.

The synthetic set has exact keypoints (:mod:`text2sign.metrics.keypoints`); real signers have
estimated ones, with holes: a hand out of view, a body the estimator lost. Ham2Pose
(Shalev-Arkushin et al. 2023) calls DTW-MJE on normalised keypoints that handles missing ones
**nDTW-MJE**; ours is the variant :data:`VARIANT` names (pure functions on (T, K, 2) arrays,
NaN = not found):

* frames are aligned whole (one DTW over frames, the frame cost the mean over joints), as in
  Progressive Transformers, not one DTW per joint trajectory as in Ham2Pose and pose-evaluation;
* reference frames without any joint are dropped: there is nothing to compare them with;
* within a pair of frames, only the joints found in the reference count;
* a joint found in the reference but not in the generated frame costs the distance from the
  reference joint to the **farthest corner of the frame**: at least what that joint drawn
  anywhere in the frame would cost (the distance to a point of a square is largest at a corner),
  so a model never gains by losing a joint. The frames are square crops, so normalised x and y
  are the same unit and the distance is isotropic;
* distances are divided by ``scale`` (the reference's shoulder width: :mod:`text2sign.pose.joints`);
* the DTW total is divided by the number of reference frames scored (as Progressive Transformers
  divides by the reference length), not by the length of the optimal path: a length that does
  not depend on the alignment, so a pointwise larger cost matrix always gives a larger value
  (total / len(path) can drop when larger costs make a longer path optimal).
"""

from __future__ import annotations

import numpy as np

from text2sign.metrics.keypoints import dtw_path

#: The exact name of this variant, used in the metric's definition and docs.
VARIANT = (
    "nDTW-MJE (Ham2Pose's name for shoulder-normalised, missing-aware DTW-MJE), our variant: "
    "one DTW over whole frames (frame cost: mean Euclidean error over the joints the reference "
    "frame has), 2D joints in reference shoulder widths (median over its frames), a joint missing "
    "from the generated frame costs the distance from the reference joint to the farthest frame "
    "corner, joints missing from the reference not counted, total / reference frames scored"
)

#: The corners of the frame in normalised coordinates (x, y in [0, 1]).
CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def missing_costs(ref: np.ndarray, scale: float) -> np.ndarray:
    """(Tr, K) cost of each reference joint missing from a generated frame: its distance to the
    farthest corner of the frame, divided by ``scale`` (NaN where the reference lacks it)."""
    to_corners = np.linalg.norm(ref[:, :, None, :] - CORNERS, axis=-1)  # (Tr, K, 4)
    return to_corners.max(axis=-1) / scale


def frame_costs(pred: np.ndarray, ref: np.ndarray, *, scale: float) -> np.ndarray:
    """(Tr, Tp) mean over the reference's found joints of the scaled distance (or the penalty)."""
    found_ref = ~np.isnan(ref).any(axis=-1)  # (Tr, K)
    found_pred = ~np.isnan(pred).any(axis=-1)  # (Tp, K)
    dist = np.linalg.norm(ref[:, None] - pred[None, :], axis=-1) / scale  # (Tr, Tp, K), NaN holes
    dist = np.where(found_pred[None, :, :], dist, missing_costs(ref, scale)[:, None, :])
    dist = np.where(found_ref[:, None, :], dist, 0.0)
    return dist.sum(axis=-1) / found_ref.sum(axis=-1)[:, None]


def dtw_mean_cost(cost: np.ndarray) -> float:
    """The DTW total of a (Tr, Tp) cost matrix divided by Tr, the reference's frame count.

    Monotone: a cost matrix that is nowhere smaller gives a value that is not smaller, since
    every alignment path's sum grows and the divisor does not depend on the path."""
    total, _ = dtw_path(np.asarray(cost, dtype=np.float64).T)  # (Tp, Tr): pred along rows
    return total / cost.shape[0]


def masked_dtw_mje(pred: np.ndarray, ref: np.ndarray, *, scale: float) -> float:
    """nDTW-MJE (:data:`VARIANT`) of (Tp, K, 2) ``pred`` against (Tr, K, 2) ``ref``, NaN = not
    found, normalised x, y of a square frame.

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
    return dtw_mean_cost(frame_costs(pred, ref, scale=scale))
