"""FVD: the Fréchet distance between I3D features of real and generated videos.

Conventions follow StyleGAN-V / common_metrics_on_video_quality: frames are resized to 224 and
scaled to [-1, 1] here, and the TorchScript I3D detector (``i3d_torchscript.pt``) is called
with ``rescale=False, resize=False, return_features=True`` (400-d logits-layer features).
The weights are never downloaded: without a local file, FVD is N/A.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

from text2sign.metrics.result import Metric

I3D_SIZE = 224  # the detector's input resolution
NO_WEIGHTS = "no I3D weights"
TOO_FEW = "needs >= 2 videos per set"

# sqrtm's relative residual ||X X - A||_F / ||A||_F above which the product is retried with
# eps * I added to both covariances (nearly singular products give inaccurate roots).
_SQRTM_MAX_ERROR = 1e-3
# Largest imaginary part of the root's diagonal that is still numerical noise (pytorch-fid).
_MAX_IMAG = 1e-3


# Fréchet distance


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features, one row per video."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"expected (N, D) features, got shape {feats.shape}")
    return feats.mean(axis=0), np.atleast_2d(np.cov(feats, rowvar=False))


def _sqrtm(a: np.ndarray) -> tuple[np.ndarray, float]:
    """Matrix square root and its relative residual (scipy >= 1.16 no longer returns it)."""
    root = linalg.sqrtm(a)
    norm = np.linalg.norm(a)
    with np.errstate(invalid="ignore", over="ignore"):  # a failed root is inf/NaN: caught later
        err = np.linalg.norm(root @ root - a) / norm if norm > 0 else 0.0
    return root, float(err)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
) -> float:
    """``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))``.

    As in pytorch-fid: when the root of the product is not finite or inaccurate (singular
    covariances, e.g. fewer samples than dimensions), ``eps * I`` is added to both covariances
    and the root retried; a complex root with a negligible imaginary diagonal is replaced by
    its real part, a large imaginary part raises ValueError.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"shape mismatch: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean, err = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all() or err > _SQRTM_MAX_ERROR:
        offset = np.eye(sigma1.shape[0]) * eps
        covmean, _ = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=_MAX_IMAG):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
        covmean = covmean.real
    dist = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(dist)


# I3D features


def preprocess_for_i3d(videos_uint8: np.ndarray) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) -> float32 (N, 3, T, 224, 224) in [-1, 1].

    Each frame is resized bilinearly (``align_corners=False``) so its shorter side is 224, the
    longer side rounded up as in VideoGPT / common_metrics_on_video_quality, then centre-cropped
    to 224 x 224 and scaled ``x / 127.5 - 1``.
    """
    v = np.asarray(videos_uint8)
    if v.ndim != 5 or v.shape[-1] != 3:
        raise ValueError(f"expected (N, T, H, W, 3) videos, got shape {v.shape}")
    n, t, h, w, _ = v.shape
    x = torch.from_numpy(np.ascontiguousarray(v)).float()  # (N, T, H, W, 3)
    x = x.reshape(n * t, h, w, 3).permute(0, 3, 1, 2)  # (N*T, 3, H, W)
    # The shorter side becomes exactly 224 (no float round-off), the longer one is rounded up.
    if h <= w:
        size = (I3D_SIZE, math.ceil(w * I3D_SIZE / h))
    else:
        size = (math.ceil(h * I3D_SIZE / w), I3D_SIZE)
    # Bilinear interpolation stays within the range of its inputs up to float32 round-off.
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - I3D_SIZE) // 2, (size[1] - I3D_SIZE) // 2
    x = x[:, :, top : top + I3D_SIZE, left : left + I3D_SIZE]  # (N*T, 3, 224, 224)
    # The clamp removes that round-off (255 -> 1.0000001), which strict detectors may refuse.
    x = (x / 127.5 - 1.0).clamp_(-1.0, 1.0)
    x = x.reshape(n, t, 3, I3D_SIZE, I3D_SIZE).permute(0, 2, 1, 3, 4)  # (N, 3, T, 224, 224)
    return x.contiguous()


def load_i3d(path: str | os.PathLike | None) -> tuple[torch.nn.Module | None, str]:
    """The TorchScript I3D detector on CPU in eval mode, or (None, reason) when unavailable."""
    if not path or not Path(path).is_file():
        return None, NO_WEIGHTS
    try:
        detector = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:  # a truncated or foreign file raises RuntimeError, ValueError, ...
        return None, f"I3D weights unreadable: {e}"
    return detector, ""


def i3d_features(
    detector: torch.nn.Module, videos_uint8: np.ndarray, batch_size: int = 8
) -> np.ndarray:
    """(N, D) float64 I3D features of uint8 (N, T, H, W, 3) videos, ``batch_size`` at a time."""
    feats = []
    with torch.no_grad():
        for start in range(0, len(videos_uint8), batch_size):
            x = preprocess_for_i3d(videos_uint8[start : start + batch_size])  # (B, 3, T, 224, 224)
            out = detector(x, rescale=False, resize=False, return_features=True)  # (B, D)
            feats.append(out.detach().cpu().double().numpy())
    return np.concatenate(feats, axis=0)


def fvd(real_uint8: np.ndarray, fake_uint8: np.ndarray, i3d_path: str | None) -> Metric:
    """Fréchet Video Distance between two sets of uint8 (N, T, H, W, 3) videos.

    N/A without the I3D weights file, or with fewer than 2 videos in a set (no covariance).
    FVD over few videos is biased upwards and noisy: values are only comparable between
    evaluations that use the same number of videos (and frames and resolution).
    """
    if len(real_uint8) < 2 or len(fake_uint8) < 2:
        return Metric.na(TOO_FEW)  # checked first: it needs no file I/O
    detector, reason = load_i3d(i3d_path)
    if detector is None:
        return Metric.na(reason)
    mu_r, sigma_r = feature_stats(i3d_features(detector, real_uint8))
    mu_f, sigma_f = feature_stats(i3d_features(detector, fake_uint8))
    return Metric.of(frechet_distance(mu_r, sigma_r, mu_f, sigma_f))
