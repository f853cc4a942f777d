"""Keypoints from coloured blobs, and DTW-MJE: how far generated hands are from the reference.

Coordinates follow ``text2sign.data.synth``: normalised x, y in [0, 1] of the frame width and
height, pixel ``i`` covering ``[i, i+1) / W``, so pixel index ~= ``x * W - 0.5``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Where a keypoint that was not found in a generated frame is placed before DTW-MJE: the frame
#: centre. A missing hand is thereby penalised by its distance to the reference, never skipped.
MISSING_FILL: tuple[float, float] = (0.5, 0.5)

# A blob's core: pixels at least this much "blob colour" (see detect_blobs). Its rim (partial
# coverage) is the ring of pixels touching the core, in 3 x 3 neighbourhoods within a frame.
_CORE_COVERAGE = 0.5
_RIM = np.zeros((3, 3, 3), dtype=bool)
_RIM[1] = True  # dilate within a frame (H, W), never across frames (T)
# The RGB distance from the background to a blob colour is floored at this, so that a frame
# whose background is close to a blob colour does not turn faint noise into a full-weight blob.
_MIN_CONTRAST = 64.0


# Blob detection


def detect_blobs(
    video_uint8: np.ndarray,
    colours: dict[str, tuple[int, int, int]],
    names: list[str] | tuple[str, ...],
) -> np.ndarray:
    """Centre of the blob of each keypoint colour per frame: float (T, K, 2), normalised x, y.

    For keypoint colour ``c`` and per-frame background ``b`` (the median colour of the frame,
    since the background covers most of it), a pixel ``p`` gets the soft weight::

        w = clip(1 - |p - c| / |b - c|, 0, 1)        (RGB Euclidean distances)

    An anti-aliased rim pixel ``p = b + a (c - b)`` gets exactly ``w = a``, its coverage, so the
    weighted centroid is the centre of the drawn disc; the background gets ``w ~ 0`` and other
    saturated colours, farther from ``c`` than the background is, get 0. Only the blob's core
    (``w >= 0.5``) and the pixels touching it count, so isolated noisy pixels of a generated
    frame do not pull the centroid. A keypoint without any core pixel in a frame is absent
    there: NaN. ``dtw_mje`` places absent generated keypoints at the frame centre, so a lost
    hand is penalised, not ignored (``fill_missing``).

    On the synthetic generator's own frames the error is at most 0.0071 of the frame at 32 px
    and 0.0078 at 16 px (measured over all 64 captions; tests/unit/metrics/test_keypoints.py).
    The residual is the head disc clipped by the top border at some signer offsets, and GIF
    quantisation / downscaling.
    """
    video = np.asarray(video_uint8)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"expected a (T, H, W, 3) video, got shape {video.shape}")
    frames, height, width, _ = video.shape
    pix = video.astype(np.float64)  # (T, H, W, 3)
    background = np.median(pix.reshape(frames, -1, 3), axis=1)  # (T, 3)
    rows, cols = np.indices((height, width), dtype=np.float64)  # pixel indices
    out = np.full((frames, len(names), 2), np.nan)
    for k, name in enumerate(names):
        colour = np.asarray(colours[name], dtype=np.float64)  # (3,)
        contrast = np.maximum(np.linalg.norm(background - colour, axis=-1), _MIN_CONTRAST)  # (T,)
        dist = np.linalg.norm(pix - colour, axis=-1)  # (T, H, W)
        weight = np.clip(1.0 - dist / contrast[:, None, None], 0.0, 1.0)  # (T, H, W)
        # Keep the blob's core and the one-pixel rim around it (where anti-aliasing puts the
        # partial coverage); pixels away from any core are background noise.
        core = weight >= _CORE_COVERAGE
        weight[~ndimage.binary_dilation(core, structure=_RIM)] = 0.0
        found = core.any(axis=(1, 2))  # (T,)
        mass = weight.sum(axis=(1, 2))  # (T,), >= 0.5 where found
        safe = np.where(found, mass, 1.0)
        cx = (weight * cols).sum(axis=(1, 2)) / safe  # pixel index units
        cy = (weight * rows).sum(axis=(1, 2)) / safe
        # Pixel index -> normalised coordinate: pixel i covers [i, i+1) / W, its centre i + 0.5.
        out[found, k, 0] = (cx[found] + 0.5) / width
        out[found, k, 1] = (cy[found] + 0.5) / height
    return out


def fill_missing(keypoints: np.ndarray, fill: tuple[float, float] = MISSING_FILL) -> np.ndarray:
    """A copy of (T, K, 2) ``keypoints`` with every NaN keypoint placed at ``fill``.

    The frame centre by default: a generated frame that lost a hand then costs that hand's
    distance to the reference, instead of being ignored (which would reward missing hands).
    """
    out = np.array(keypoints, dtype=np.float64, copy=True)
    missing = np.isnan(out).any(axis=-1)  # (T, K)
    out[missing] = np.asarray(fill, dtype=np.float64)
    return out


# Dynamic time warping


def _check_sequence(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 2 or x.shape[0] < 1:
        raise ValueError(f"{what}: expected (T >= 1, K, 2) keypoints, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: keypoints must be finite (fill missing ones first)")
    return x


def frame_costs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Ta, Tb) matrix of mean-over-joints Euclidean distances between frames of a and b."""
    a, b = _check_sequence(a, "a"), _check_sequence(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"different keypoint counts: {a.shape[1]} vs {b.shape[1]}")
    diff = a[:, None] - b[None, :]  # (Ta, Tb, K, 2)
    return np.linalg.norm(diff, axis=-1).mean(axis=-1)  # (Ta, Tb)


def dtw(a: np.ndarray, b: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Classic DTW of (Ta, K, 2) and (Tb, K, 2) keypoints: (total cost, alignment path).

    Frame cost: the mean over joints of the Euclidean distance (inputs must be finite); the
    alignment itself is :func:`dtw_path`.
    """
    return dtw_path(frame_costs(a, b))


def dtw_path(cost: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """DTW over a (Ta, Tb) frame-cost matrix: (total cost, alignment path).

    Steps: (1, 0), (0, 1), (1, 1); the path runs from (0, 0) to (Ta-1, Tb-1) and, among
    equal-cost predecessors, prefers the diagonal.
    """
    ta, tb = cost.shape
    acc = np.full((ta + 1, tb + 1), np.inf)  # acc[i+1, j+1]: best cost ending at (i, j)
    acc[0, 0] = 0.0
    for i in range(ta):
        for j in range(tb):
            acc[i + 1, j + 1] = cost[i, j] + min(acc[i, j], acc[i, j + 1], acc[i + 1, j])
    # Backtrack from the end; the diagonal comes first so that ties keep the path short.
    path = [(ta - 1, tb - 1)]
    i, j = ta - 1, tb - 1
    while (i, j) != (0, 0):
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min(
            (s for s in steps if s[0] >= 0 and s[1] >= 0), key=lambda s: acc[s[0] + 1, s[1] + 1]
        )
        path.append((i, j))
    path.reverse()
    return float(acc[ta, tb]), path


def dtw_mje(pred: np.ndarray, ref: np.ndarray) -> float:
    """DTW-MJE: the mean joint error over the DTW alignment of ``pred`` to ``ref``.

    As in sign language production (Saunders et al. 2020, "Progressive Transformers"; Huang et
    al. 2021): align the sequences by DTW (frame cost = mean joint Euclidean distance), then
    average the per-pair mean joint error over the aligned path, i.e. ``dtw cost / len(path)``.
    Coordinates are normalised, so the unit is a fraction of the frame size.

    Missing (NaN) keypoints in ``pred`` are placed at the frame centre (``fill_missing``) and so
    penalised; ``ref`` must be complete (the ground truth), else ValueError.
    """
    ref = np.asarray(ref, dtype=np.float64)
    if np.isnan(ref).any():
        raise ValueError("reference keypoints contain NaN: DTW-MJE needs a complete reference")
    total, path = dtw(fill_missing(pred), ref)
    return total / len(path)
