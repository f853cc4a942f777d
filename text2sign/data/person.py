"""Clips of a real person with known motion: a camera moving over ``skimage.data.astronaut()``.

The photograph (512 x 512, NASA, public domain; shipped with scikit-image) shows a person from
the waist up: head, shoulders, arms, hands holding a helmet. A square crop window moves over it
(pan, tilt, zoom, rotation), so every frame's content is known exactly: a point at image
coordinates ``p`` appears in frame t at ``crop_t(p)``. Tests check that the pose estimator's
keypoints follow that motion, and that the conditioning audit separates these clips (their
captions name the motion) or not (a caption-blind stand-in). Nothing here is drawn: the pixels
are the photograph's, resampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The camera motions: caption → (dx, dy in px/frame of the 512 px photo, zoom factor per frame,
#: rotation in degrees per frame). Image content moves the opposite way of the window.
MOTIONS: dict[str, tuple[float, float, float, float]] = {
    "pan left": (-8.0, 0.0, 1.0, 0.0),
    "pan right": (8.0, 0.0, 1.0, 0.0),
    "tilt up": (0.0, -6.0, 1.0, 0.0),
    "tilt down": (0.0, 6.0, 1.0, 0.0),
    "zoom in": (0.0, 0.0, 0.96, 0.0),
    "zoom out": (0.0, 0.0, 1.04, 0.0),
    "rotate left": (0.0, 0.0, 1.0, -3.0),
    "rotate right": (0.0, 0.0, 1.0, 3.0),
}
#: The first frame's window: centre (x, y) and side in px of the photo (head to waist).
START = (256.0, 250.0, 400.0)


@dataclass(frozen=True)
class Window:
    """A square crop of the photo: centre, side (px) and rotation (degrees)."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        """Photo pixel (x, y) → normalised (x, y) in this window's frame."""
        a = math.radians(self.angle)
        dx, dy = x - self.cx, y - self.cy
        u = (math.cos(a) * dx + math.sin(a) * dy) / self.side + 0.5
        v = (-math.sin(a) * dx + math.cos(a) * dy) / self.side + 0.5
        return u, v


def windows(
    motion: str,
    frames: int,
    offset: tuple[float, float] = (0.0, 0.0),
    start: tuple[float, float, float] = START,
) -> list[Window]:
    """The crop window of each frame of ``motion`` (``offset`` moves the whole path: a signer;
    ``start``: the first window's centre and side, for another photo)."""
    dx, dy, zoom, rot = MOTIONS[motion]
    cx, cy, side = start[0] + offset[0], start[1] + offset[1], start[2]
    return [Window(cx + dx * t, cy + dy * t, side * zoom**t, rot * t) for t in range(frames)]


def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # (512, 512, 3) uint8


def render(win: Window, size: int, image: np.ndarray | None = None) -> np.ndarray:
    """One frame: the window resampled to size x size (bilinear, after a Gaussian blur of the
    photo when shrinking, so that small frames are not aliased)."""
    from skimage.filters import gaussian
    from skimage.transform import AffineTransform, warp

    img = photo() if image is None else image
    a = math.radians(win.angle)
    s = win.side / size
    if s > 1:  # sigma as skimage.transform.rescale's anti-aliasing uses
        img = gaussian(img, sigma=(s - 1) / 2, channel_axis=-1, preserve_range=True)
    # output pixel (c, r) → photo (x, y): rotate/scale about the window centre
    c, si = math.cos(a) * s, math.sin(a) * s
    x0 = win.cx - (c * size / 2 - si * size / 2)
    y0 = win.cy - (si * size / 2 + c * size / 2)
    tf = AffineTransform(matrix=np.array([[c, -si, x0], [si, c, y0], [0, 0, 1]]))
    out = warp(img, tf, output_shape=(size, size), order=1, mode="edge", preserve_range=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def clip(
    motion: str,
    frames: int,
    size: int,
    offset: tuple[float, float] = (0.0, 0.0),
    image: np.ndarray | None = None,
    start: tuple[float, float, float] = START,
) -> np.ndarray:
    """uint8 (frames, size, size, 3): the photo (the astronaut unless ``image``) under the camera
    ``motion``."""
    img = photo() if image is None else image
    return np.stack([render(w, size, img) for w in windows(motion, frames, offset, start)])


def write_folder(out: Path, *, frames: int = 8, size: int = 64, signers: int = 3) -> list[str]:
    """A dataset folder: every motion for each signer (a small offset of the path), as
    ``s<k>_<motion>.gif`` + ``.txt`` (the caption is the motion's name). Returns the names."""
    import imageio.v3 as iio

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(signers):
        offset = (12.0 * (k - (signers - 1) / 2), 6.0 * k)
        for motion in MOTIONS:
            name = f"s{k}_{motion.replace(' ', '_')}"
            iio.imwrite(
                out / f"{name}.gif", clip(motion, frames, size, offset), duration=125, loop=0
            )
            (out / f"{name}.txt").write_text(motion + "\n")
            names.append(name)
    return names
