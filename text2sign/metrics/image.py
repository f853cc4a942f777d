"""Pixel-level video metrics: PSNR, SSIM and frame-to-frame temporal consistency.

Videos are (T, H, W, C) arrays (uint8, or float in the same 0..255 units); (N, T, H, W, C)
batches are treated as N*T frames, a 3-D array as one (H, W, C) image, a 2-D one as greyscale.
Per-frame scores are averaged over frames, as in the common video-metric code
(e.g. common_metrics_on_video_quality), rather than pooled over the whole clip.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

# SSIM constants of Wang et al. 2004 (and scikit-image's gaussian_weights=True defaults).
_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: an 11 x 11 window
_SSIM_WIN = 11
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def _as_frames(x: np.ndarray) -> np.ndarray:
    """Any supported layout -> float64 (F, H, W, C)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return x[None, :, :, None]
    if x.ndim == 3:
        return x[None]
    if x.ndim >= 4:
        return x.reshape(-1, *x.shape[-3:])
    raise ValueError(f"expected an image or a video array, got shape {x.shape}")


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.shape(a) != np.shape(b):
        raise ValueError(f"shape mismatch: {np.shape(a)} vs {np.shape(b)}")
    return _as_frames(a), _as_frames(b)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean over frames of ``10 log10(data_range**2 / MSE)``, in dB.

    Returns ``math.inf`` when the two are identical (MSE 0 in some frame makes that frame's
    PSNR, and so the mean, infinite): the evaluation reports it as is or caps it, visibly.
    """
    fa, fb = _pair(a, b)
    mse = ((fa - fb) ** 2).mean(axis=(1, 2, 3))  # (F,)
    if (mse == 0).any():
        return math.inf
    return float(np.mean(10.0 * np.log10(data_range**2 / mse)))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean SSIM (Wang et al. 2004): 11 x 11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03.

    Computed per frame and channel on float64 with ``scipy.ndimage.gaussian_filter``
    (mode "reflect", truncate 3.5, i.e. radius 5) and population (co)variances; the SSIM map is
    averaged over the valid region only (a border of 5 pixels is cropped, where the window
    would reach past the frame), then over channels and frames. This is scikit-image's
    ``structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=..., channel_axis=-1)`` per frame, so numbers are
    comparable with that widely used reference. Frames must be at least 11 x 11.
    """
    fa, fb = _pair(a, b)
    if min(fa.shape[1:3]) < _SSIM_WIN:
        raise ValueError(f"SSIM needs frames of at least {_SSIM_WIN} x {_SSIM_WIN} pixels")

    def blur(x: np.ndarray) -> np.ndarray:
        # Filter over H and W only (sigma 0 leaves the frame and channel axes untouched).
        sigma = (0.0, _SSIM_SIGMA, _SSIM_SIGMA, 0.0)
        return ndimage.gaussian_filter(x, sigma=sigma, mode="reflect", truncate=_SSIM_TRUNCATE)

    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    mu_a, mu_b = blur(fa), blur(fb)
    var_a = blur(fa * fa) - mu_a * mu_a
    var_b = blur(fb * fb) - mu_b * mu_b
    cov = blur(fa * fb) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    pad = (_SSIM_WIN - 1) // 2
    valid = (num / den)[:, pad:-pad, pad:-pad, :]  # (F, H-10, W-10, C)
    # Mean over pixels, then channels, then frames: all equal-sized, so one mean is the same.
    return float(valid.mean())


def temporal_consistency(video: np.ndarray) -> dict[str, float]:
    """How much consecutive frames agree: ``{"cosine": ..., "l1": ...}`` over T-1 pairs.

    * ``cosine``: mean over t of the cosine similarity of frames t and t+1, each flattened and
      scaled ``x / 127.5 - 1`` to [-1, 1] (so a frame and its negative score -1). A frame of
      all zeros after scaling (impossible for uint8) has similarity 0 with anything.
    * ``l1``: mean over t of the mean absolute difference of frames t and t+1, in 0..255 units.

    Input: uint8 (T, H, W, C), or float in 0..255 units; needs T >= 2.
    """
    x = np.asarray(video, dtype=np.float64)
    if x.ndim != 4 or x.shape[0] < 2:
        raise ValueError(f"expected a (T >= 2, H, W, C) video, got shape {x.shape}")
    flat = x.reshape(x.shape[0], -1)  # (T, H*W*C)
    l1 = np.abs(flat[1:] - flat[:-1]).mean(axis=1)  # (T-1,)
    z = flat / 127.5 - 1.0
    dot = (z[1:] * z[:-1]).sum(axis=1)
    norms = np.linalg.norm(z[1:], axis=1) * np.linalg.norm(z[:-1], axis=1)
    cos = np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)  # (T-1,)
    return {"cosine": float(cos.mean()), "l1": float(l1.mean())}
