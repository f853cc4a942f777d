"""Metric (the N/A convention) and the pixel metrics: PSNR, SSIM, temporal consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from text2sign.metrics import Metric, psnr, ssim, temporal_consistency

# Metric


def test_metric_measured_and_na_serialise_to_value_and_reason():
    assert Metric.of(3).to_json() == {"value": 3.0, "reason": ""}
    assert Metric.na("no I3D weights").to_json() == {"value": None, "reason": "no I3D weights"}
    assert Metric.na("x").is_na and not Metric.of(0.0).is_na
    assert Metric.of(math.inf).value == math.inf  # e.g. PSNR of identical videos


def test_metric_refuses_nan_and_reasonless_na():
    with pytest.raises(ValueError):
        Metric.of(float("nan"))
    with pytest.raises(ValueError):
        Metric.na("")


# PSNR


@pytest.mark.filterwarnings("error")  # inf by design, not by a division-by-zero warning
def test_psnr_known_value_and_identical_is_inf():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = np.full_like(a, 10)  # MSE 100 in every frame
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    assert psnr(a, a) == math.inf
    assert psnr(a / 255.0, b / 255.0, data_range=1.0) == pytest.approx(psnr(a, b))


def test_psnr_averages_per_frame_not_pooled_mse():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0] += 1  # frame MSE 1
    b[1] += 10  # frame MSE 100
    per_frame = [10 * math.log10(255**2 / m) for m in (1.0, 100.0)]
    assert psnr(a, b) == pytest.approx(np.mean(per_frame))
    with pytest.raises(ValueError):
        psnr(a, b[:1])


# SSIM


def _pattern_pair(t: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic textured video and a perturbed copy (no RNG: stable across versions)."""
    ti, i, j, c = np.indices((t, h, w, 3))
    a = (7 * i + 13 * j + 50 * c + 31 * ti) % 256
    b = np.clip(a + ((i * j + 5 * c + ti) % 21 - 10) * 3, 0, 255)
    return a.astype(np.uint8), b.astype(np.uint8)


def test_ssim_matches_scikit_image_reference_value():
    # Computed once with scikit-image 0.26.0, averaged over the 3 frames:
    # structural_similarity(a[t], b[t], gaussian_weights=True, sigma=1.5,
    #                       use_sample_covariance=False, data_range=255, channel_axis=-1)
    a, b = _pattern_pair(3, 16, 20)
    assert ssim(a, b) == pytest.approx(0.8784521002096567, abs=1e-12)
    assert ssim(a / 255.0, b / 255.0, data_range=1.0) == pytest.approx(0.8784521002096567)


def test_ssim_identical_is_one_and_symmetric():
    a, b = _pattern_pair(2, 16, 16)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-15)
    assert ssim(a, b) < 1.0


@pytest.mark.parametrize(("x", "y"), [(100, 120), (20, 200), (0, 255)])
def test_ssim_of_constant_images_is_the_luminance_term(x, y):
    # No variance anywhere: contrast-structure term (0 + C2) / (0 + C2) = 1.
    a = np.full((1, 16, 16, 3), x, np.uint8)
    b = np.full_like(a, y)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * x * y + c1) / (x**2 + y**2 + c1), rel=1e-12)


def test_ssim_falls_monotonically_with_noise():
    a, _ = _pattern_pair(2, 24, 24)
    noise = np.random.default_rng(0).normal(size=a.shape)
    scores = [
        ssim(a, np.clip(a + s * noise, 0, 255).round().astype(np.uint8)) for s in (0, 5, 15, 40)
    ]
    assert scores[0] == pytest.approx(1.0)
    assert all(hi > lo for hi, lo in zip(scores, scores[1:], strict=False)), scores


def test_ssim_needs_the_full_window():
    a = np.zeros((1, 10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="11"):
        ssim(a, a)


# Temporal consistency


def test_static_video_is_perfectly_consistent():
    frame = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = temporal_consistency(np.stack([frame] * 4))
    assert out["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert out["l1"] == 0.0


def test_alternating_frame_and_negative_scores_minus_one():
    # p and 255 - p are x and -x after scaling x / 127.5 - 1.
    frame = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    video = np.stack([frame, 255 - frame, frame])
    out = temporal_consistency(video)
    assert out["cosine"] == pytest.approx(-1.0, abs=1e-12)
    assert out["l1"] == pytest.approx(np.abs(255 - 2 * frame.astype(float)).mean())


def test_temporal_consistency_hand_computed():
    # Two one-pixel frames; after x / 127.5 - 1 they are z0 = (-1, 0.2, 1) and z1 = (1, 0.2, -1).
    f0 = np.array([0.0, 153.0, 255.0]).reshape(1, 1, 1, 3)
    f1 = np.array([255.0, 153.0, 0.0]).reshape(1, 1, 1, 3)
    out = temporal_consistency(np.concatenate([f0, f1]))
    z0, z1 = np.array([-1, 0.2, 1]), np.array([1, 0.2, -1])
    assert out["cosine"] == pytest.approx(z0 @ z1 / (z0 @ z0))
    assert out["l1"] == pytest.approx((255 + 0 + 255) / 3)
    with pytest.raises(ValueError):
        temporal_consistency(f0)  # one frame: no pair
