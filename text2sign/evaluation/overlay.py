"""The estimated skeleton drawn over a clip: upper body and both hands, as the metric sees them.

The joints are :mod:`text2sign.pose.joints`' 49 (7 of the upper body, 21 per hand, x and y in
[0, 1] of the frame). A joint the estimator did not find in a frame is NaN and is **not drawn**,
nor is any bone that touches it: a missing hand is visibly missing, as it is for DTW-MJE.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from text2sign.pose.joints import BODY, HAND_POINTS, LEFT_HAND, RIGHT_HAND

# Upper body: shoulders, each arm (shoulder → elbow → wrist); indices into BODY.
BODY_BONES = ((1, 2), (1, 3), (3, 5), (2, 4), (4, 6))
# MediaPipe's 21 hand landmarks: the palm and the five fingers (wrist = 0).
HAND_BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10),
              (10, 11), (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (17, 18),
              (18, 19), (19, 20), (0, 17))  # fmt: skip
COLOURS = {"body": (255, 214, 0), "left": (0, 220, 255), "right": (255, 64, 200)}


def _bones() -> list[tuple[int, int, str]]:
    """(joint a, joint b, part) over the 49 joints, wrists joined to their hands."""
    out = [(a, b, "body") for a, b in BODY_BONES]
    for part, hand, wrist in (("left", LEFT_HAND, 5), ("right", RIGHT_HAND, 6)):
        out += [(hand.start + a, hand.start + b, part) for a, b in HAND_BONES]
        out.append((wrist, hand.start, part))
    return out


BONES = _bones()


def _part(j: int) -> str:
    if j < len(BODY):
        return "body"
    return "left" if j < LEFT_HAND.start + HAND_POINTS else "right"


def draw(frames: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3) frames with the skeleton of (T', 49, 2) normalised joints drawn over
    them; frame t uses the joints of frame min(t, T'-1). A copy; the input is unchanged."""
    out = np.array(frames, copy=True)
    h, w = out.shape[1:3]
    width = max(2, round(min(h, w) / 64))
    radius = max(1, width)
    for t in range(len(out)):
        pts = xy[min(t, len(xy) - 1)] * (w, h)  # (49, 2) in pixels
        found = np.isfinite(pts).all(axis=1)
        image = Image.fromarray(out[t])
        pen = ImageDraw.Draw(image)
        for a, b, part in BONES:
            if found[a] and found[b]:
                pen.line([tuple(pts[a]), tuple(pts[b])], fill=COLOURS[part], width=width)
        for j in np.flatnonzero(found):
            x, y = pts[j]
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=COLOURS[_part(j)])
        out[t] = np.asarray(image)
    return out
