"""FVD: the Fréchet distance, I3D preprocessing, and the full path with a stand-in detector."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from scipy import linalg

from text2sign.metrics import Metric
from text2sign.metrics.fvd import (
    NO_WEIGHTS,
    TOO_FEW,
    feature_stats,
    frechet_distance,
    fvd,
    i3d_features,
    load_i3d,
    preprocess_for_i3d,
)

# The module itself (text2sign.metrics.fvd is the function the package re-exports).
fvd_mod = importlib.import_module("text2sign.metrics.fvd")

# Fréchet distance


def _gaussians(seed: int = 0, n: int = 300, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    y = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 0.7
    return x, y


def test_frechet_distance_matches_direct_formula():
    x, y = _gaussians()
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(*feature_stats(x), *feature_stats(y)) == pytest.approx(expected)
    assert expected > 1.0


def test_frechet_distance_is_zero_for_identical_sets_and_symmetric():
    x, y = _gaussians(1)
    assert abs(frechet_distance(*feature_stats(x), *feature_stats(x))) < 1e-6
    d_xy = frechet_distance(*feature_stats(x), *feature_stats(y))
    d_yx = frechet_distance(*feature_stats(y), *feature_stats(x))
    assert d_xy == pytest.approx(d_yx, rel=1e-9)


def test_frechet_distance_of_one_dimensional_gaussians():
    # In 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s.
    assert frechet_distance(
        np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])
    ) == (pytest.approx(4.0 + 1.0))


def test_singular_covariances_give_a_finite_distance():
    # Fewer samples (5) than dimensions (16): rank-deficient covariances.
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 16)), rng.normal(size=(5, 16)) + 0.5
    d = frechet_distance(*feature_stats(x), *feature_stats(y))
    assert np.isfinite(d) and d > 0
    assert abs(frechet_distance(*feature_stats(x), *feature_stats(x))) < 1e-5


def test_failed_square_root_is_retried_with_eps_on_both_covariances(monkeypatch):
    x, y = _gaussians(3)
    (mu1, s1), (mu2, s2) = feature_stats(x), feature_stats(y)
    calls = []
    real_sqrtm = linalg.sqrtm

    def flaky_sqrtm(a):  # the first root "fails" (non-finite), as on a singular product
        calls.append(a.copy())
        return np.full_like(a, np.inf) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(fvd_mod.linalg, "sqrtm", flaky_sqrtm)
    eps = 1e-3
    d = frechet_distance(mu1, s1, mu2, s2, eps=eps)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + eps * np.eye(6)) @ (s2 + eps * np.eye(6)))
    assert np.isfinite(d)


def test_large_imaginary_root_is_an_error():
    # sqrtm(-I) = i I: not numerical noise, so no distance.
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2))


# Preprocessing


def test_preprocess_resizes_crops_and_scales_to_minus_one_one():
    videos = np.zeros((2, 4, 16, 24, 3), np.uint8)  # N, T, H, W, 3; wider than tall
    videos[..., 0] = 255  # pure red
    videos[:, :, :, 4:20, 1] = 255  # a green stripe over the 16 central columns
    x = preprocess_for_i3d(videos)
    assert x.shape == (2, 3, 4, 224, 224) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert torch.allclose(x[:, 0], torch.tensor(1.0))  # red channel first, 255 -> 1
    assert torch.allclose(x[:, 2], torch.tensor(-1.0))  # blue 0 -> -1
    # 16 x 24 -> 224 x 336: the centre crop keeps source columns 4..20, the stripe.
    assert torch.allclose(x[:, 1, :, :, 8:-8], torch.tensor(1.0))


# The full FVD path, with a stand-in for the real I3D detector


class StandInI3D(torch.nn.Module):
    """A STAND-IN for the real I3D TorchScript detector (whose weights cannot be fetched here).

    Same call signature; checks that it gets (N, 3, T, 224, 224) inputs in [-1, 1] with the
    StyleGAN-V flags, records the last input's shape and range, and returns 16-d features:
    per-channel mean and std through a fixed random projection and tanh.
    """

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(6, 16, generator=g))
        self.register_buffer("last_shape", torch.zeros(5, dtype=torch.long))
        self.register_buffer("last_range", torch.zeros(2))

    def forward(
        self,
        x: torch.Tensor,
        rescale: bool = False,
        resize: bool = False,
        return_features: bool = True,
    ) -> torch.Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("stand-in I3D: expected rescale=False, resize=False, features")
        if x.dim() != 5 or x.shape[1] != 3 or x.shape[3] != 224 or x.shape[4] != 224:
            raise RuntimeError("stand-in I3D: expected (N, 3, T, 224, 224)")
        if bool(x.min() < -1.0) or bool(x.max() > 1.0):
            raise RuntimeError("stand-in I3D: expected inputs in [-1, 1]")
        self.last_shape.copy_(torch.tensor(x.shape))
        self.last_range.copy_(torch.stack([x.min(), x.max()]))
        stats = torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], dim=1)  # (N, 6)
        return torch.tanh(stats @ self.proj)  # (N, 16)


@pytest.fixture(scope="module")
def stand_in_i3d(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("i3d") / "stand_in_i3d_torchscript.pt"
    torch.jit.script(StandInI3D()).save(str(path))
    return str(path)


def _videos(n: int, seed: int) -> np.ndarray:
    """n uint8 (T=3, 8, 8, 3) videos spanning 0..255 with varied brightness and contrast."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 3, 8, 8, 3)).astype(float)
    gain = rng.uniform(0.3, 1.0, (n, 1, 1, 1, 3))
    return np.clip(base * gain + rng.uniform(0, 80, (n, 1, 1, 1, 1)), 0, 255).astype(np.uint8)


def test_i3d_features_call_the_detector_as_stylegan_v_does(stand_in_i3d):
    detector, reason = load_i3d(stand_in_i3d)
    assert detector is not None and reason == ""
    videos = _videos(5, 0)
    videos[0, 0, 0, 0] = (0, 0, 0)
    videos[0, 0, 0, 1] = (255, 255, 255)
    feats = i3d_features(detector, videos, batch_size=2)  # batches of 2, 2, 1
    assert feats.shape == (5, 16)
    assert detector.last_shape.tolist() == [1, 3, 3, 224, 224]
    assert detector.last_range.tolist() != [0.0, 0.0]
    first = i3d_features(detector, videos[:1])
    assert detector.last_range.tolist() == pytest.approx([-1.0, 1.0])
    np.testing.assert_allclose(first, feats[:1], rtol=1e-5)  # batching does not change features


def test_fvd_with_stand_in_detector(stand_in_i3d):
    real = _videos(12, 1)
    same = fvd(real, real, stand_in_i3d)
    assert same.value is not None and abs(same.value) < 1e-6
    brighter = np.clip(real.astype(int) + 60, 0, 255).astype(np.uint8)
    shifted = fvd(real, brighter, stand_in_i3d)
    assert shifted.value is not None and shifted.value > 0.1
    other = fvd(real, _videos(12, 2), stand_in_i3d)
    assert other.value is not None and 0 < other.value < shifted.value


def test_fvd_is_na_without_weights_or_with_too_few_videos(tmp_path, stand_in_i3d):
    real = _videos(3, 0)
    for path in (None, "", str(tmp_path / "missing.pt")):
        assert fvd(real, real, path) == Metric.na(NO_WEIGHTS)
    assert fvd(real[:1], real, stand_in_i3d).reason == TOO_FEW
    assert fvd(real, real[:1], stand_in_i3d).reason == TOO_FEW


def test_unreadable_weights_are_na_with_the_error(tmp_path):
    bad = tmp_path / "i3d_torchscript.pt"
    bad.write_bytes(b"not a torchscript archive")
    detector, reason = load_i3d(str(bad))
    assert detector is None and reason.startswith("I3D weights unreadable: ")
    result = fvd(_videos(2, 0), _videos(2, 1), str(bad))
    assert result.is_na and result.reason.startswith("I3D weights unreadable: ")
