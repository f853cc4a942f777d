"""Evaluation metrics: pure functions on uint8 videos and keypoints, one concept per module.

A metric that cannot be measured here (no weights, too few videos) is ``Metric.na(reason)``,
never a stand-in number under the metric's name.
"""

from text2sign.metrics.fvd import (
    feature_stats,
    frechet_distance,
    fvd,
    i3d_features,
    load_i3d,
    preprocess_for_i3d,
)
from text2sign.metrics.image import psnr, ssim, temporal_consistency
from text2sign.metrics.keypoints import detect_blobs, dtw, dtw_mje, fill_missing
from text2sign.metrics.lpips_metric import lpips_distance
from text2sign.metrics.result import Metric
from text2sign.metrics.stats import clustered_sign_flip

__all__ = [
    "Metric",
    "clustered_sign_flip",
    "detect_blobs",
    "dtw",
    "dtw_mje",
    "feature_stats",
    "fill_missing",
    "frechet_distance",
    "fvd",
    "i3d_features",
    "load_i3d",
    "lpips_distance",
    "preprocess_for_i3d",
    "psnr",
    "ssim",
    "temporal_consistency",
]
