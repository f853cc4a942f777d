"""The joints DTW-MJE scores on real signers, read from MediaPipe Holistic ``.pose`` files.

49 joints: 7 of the upper body (nose, both shoulders, elbows and wrists) and the 21 landmarks of
each hand, as normalised x, y in [0, 1] of the frame (the estimator's pixel coordinates divided by
the frame's width and height, as the synthetic keypoints are). A joint the estimator did not find
in a frame is NaN there: a body joint whose MediaPipe visibility is below 0.5 (out of the frame or
occluded: MediaPipe then guesses where it would be), a hand whose detector found nothing.
Distances are divided by the reference clip's shoulder width (the median over its frames of the
distance between both shoulders), so DTW-MJE is in shoulder widths, whatever the framing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

BODY = ("NOSE", "LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST",
        "RIGHT_WRIST")  # fmt: skip
HANDS = ("LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS")
HAND_POINTS = 21
VISIBILITY = 0.5  # a body joint below this MediaPipe visibility counts as not found
SHOULDERS = (1, 2)  # indices of LEFT_SHOULDER, RIGHT_SHOULDER in the joints
LEFT_HAND = slice(len(BODY), len(BODY) + HAND_POINTS)
RIGHT_HAND = slice(len(BODY) + HAND_POINTS, len(BODY) + 2 * HAND_POINTS)
NUM_JOINTS = len(BODY) + 2 * HAND_POINTS


@dataclass(frozen=True)
class Joints:
    """(T, 49, 2) normalised x, y; NaN where the joint was not found in that frame."""

    xy: np.ndarray

    @property
    def body_found(self) -> np.ndarray:
        """(T,) frames where any upper-body joint was found."""
        return ~np.isnan(self.xy[:, : len(BODY), 0]).all(axis=1)

    @property
    def left_found(self) -> np.ndarray:
        return ~np.isnan(self.xy[:, LEFT_HAND, 0]).all(axis=1)

    @property
    def right_found(self) -> np.ndarray:
        return ~np.isnan(self.xy[:, RIGHT_HAND, 0]).all(axis=1)

    def detection(self) -> dict[str, float]:
        """Share of frames in which the body and each hand were found."""
        return {
            "body": float(self.body_found.mean()),
            "left_hand": float(self.left_found.mean()),
            "right_hand": float(self.right_found.mean()),
        }

    def shoulder_width(self) -> float | None:
        """Median distance between the shoulders over the frames that have both (None: none)."""
        a, b = self.xy[:, SHOULDERS[0]], self.xy[:, SHOULDERS[1]]
        d = np.linalg.norm(a - b, axis=-1)
        d = d[np.isfinite(d) & (d > 0)]
        return float(np.median(d)) if len(d) else None


def from_pose(pose) -> Joints:
    """A pose_format ``Pose`` of MediaPipe Holistic → :class:`Joints`."""
    header = pose.header
    names = [c.name for c in header.components]
    starts = np.cumsum([0] + [len(c.points) for c in header.components])
    data = np.asarray(pose.body.data.filled(0) if hasattr(pose.body.data, "filled")
                      else pose.body.data, dtype=np.float64)[:, 0, :, :2]  # fmt: skip
    conf = np.asarray(pose.body.confidence, dtype=np.float64)[:, 0]  # (T, points)
    scale = np.array([header.dimensions.width, header.dimensions.height], dtype=np.float64)
    body_c = names.index("POSE_LANDMARKS")
    body_points = list(header.components[body_c].points)
    cols = [starts[body_c] + body_points.index(p) for p in BODY]
    thresholds = [VISIBILITY] * len(BODY)
    for hand in HANDS:
        c = names.index(hand)
        cols += list(range(starts[c], starts[c] + HAND_POINTS))
        thresholds += [0.0] * HAND_POINTS  # a hand is found (confidence 1) or not (0)
    xy = data[:, cols] / scale  # (T, 49, 2)
    absent = conf[:, cols] <= np.asarray(thresholds)
    xy[absent] = np.nan
    return Joints(xy)


def read(path: Path) -> Joints:
    """The joints of one ``.pose`` file written by the pose worker."""
    from pose_format import Pose

    return from_pose(Pose.read(Path(path).read_bytes()))
