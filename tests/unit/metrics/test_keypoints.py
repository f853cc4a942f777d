"""The blob keypoint detector against the synthetic generator's truth, and DTW / DTW-MJE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from text2sign.data import BLOB_COLOURS, KEYPOINT_NAMES, generate, load_path
from text2sign.metrics import detect_blobs, dtw, dtw_mje, fill_missing

FRAMES = 8
NAMES = list(KEYPOINT_NAMES)

# Measured worst errors over all 64 captions x 6 signers (fractions of the frame): 0.0071 at
# 32 px (0.23 px; hands alone 0.0018) and 0.0078 at 16 px (0.12 px). The largest ones are
# the head disc, which some signer offsets push past the top border, so its visible part's
# centre is not the drawn centre; the rest is GIF quantisation and the 32 -> 16 box resize.
# 0.01 of the frame (1/3 px at 32 px, 1/6 px at 16 px) leaves a margin for those.
TOLERANCE = {32: 0.01, 16: 0.01}


@pytest.fixture(scope="module")
def synth32(tmp_path_factory) -> tuple[Path, list[str]]:
    """One sample per caption (64), cycling through all 6 signers, at 32 px."""
    root = tmp_path_factory.mktemp("synth32")
    return root, generate(root, 64, frames=FRAMES, size=32, num_signers=6)


def _truth(root: Path, name: str) -> np.ndarray:
    record = json.loads((root / f"{name}.keypoints.json").read_text())
    assert record["names"] == NAMES
    return np.asarray(record["xy"])


# Blob detection


@pytest.mark.parametrize("size", [32, 16])
def test_detector_recovers_the_generators_keypoints(synth32, size):
    root, names = synth32
    worst = 0.0
    for name in names:
        video = load_path(root / f"{name}.gif", FRAMES, size)  # 16: the tiny profile's size
        found = detect_blobs(video, BLOB_COLOURS, NAMES)
        assert found.shape == (FRAMES, len(NAMES), 2) and not np.isnan(found).any()
        worst = max(worst, float(np.abs(found - _truth(root, name)).max()))
    assert worst < TOLERANCE[size], worst


def test_detector_tolerates_noise_of_generated_frames(synth32):
    # Gaussian noise (sigma 10 grey levels) everywhere: isolated noisy pixels must not pull
    # the centroids (measured worst: 0.0084 of the frame).
    root, names = synth32
    rng = np.random.default_rng(0)
    for name in names[:16]:
        video = load_path(root / f"{name}.gif", FRAMES, 32).astype(float)
        noisy = np.clip(video + rng.normal(0, 10, video.shape), 0, 255).round().astype(np.uint8)
        found = detect_blobs(noisy, BLOB_COLOURS, NAMES)
        assert np.abs(found - _truth(root, name)).max() < 0.02


@pytest.mark.filterwarnings("error")  # NaN by design, not by a 0 / 0 warning
def test_missing_blob_is_nan_and_other_colours_are_ignored():
    video = np.full((2, 16, 16, 3), 20, np.uint8)
    video[:, 4:7, 9:12] = BLOB_COLOURS["left_hand"]  # only a green blob, centred on pixel 10, 5
    video[1, 12:15, 2:5] = BLOB_COLOURS["right_hand"]  # a red one in frame 1 only
    found = detect_blobs(video, BLOB_COLOURS, NAMES)
    k_right, k_left, k_head = (NAMES.index(n) for n in ("right_hand", "left_hand", "head"))
    np.testing.assert_allclose(found[:, k_left], [[10.5 / 16, 5.5 / 16]] * 2)
    assert np.isnan(found[0, k_right]).all() and np.isnan(found[:, k_head]).all()
    np.testing.assert_allclose(found[1, k_right], [3.5 / 16, 13.5 / 16])


def test_fill_missing_places_nan_keypoints_at_the_frame_centre():
    kp = np.array([[[0.2, 0.3], [np.nan, np.nan]]])
    np.testing.assert_array_equal(fill_missing(kp), [[[0.2, 0.3], [0.5, 0.5]]])
    assert np.isnan(kp[0, 1]).all()  # the input is not modified


# DTW and DTW-MJE


def _walk(frames: int = 5, joints: int = 3) -> np.ndarray:
    """Joints moving right by 0.1 per frame: (T, K, 2)."""
    t = np.arange(frames, dtype=float)[:, None]
    x = 0.1 + 0.1 * t + 0.05 * np.arange(joints)[None, :]
    y = np.broadcast_to(0.2 + 0.2 * np.arange(joints)[None, :], x.shape)
    return np.stack([x, y], axis=-1)


def test_dtw_of_identical_sequences_is_zero_on_the_diagonal():
    ref = _walk()
    cost, path = dtw(ref, ref)
    assert cost == 0.0
    assert path == [(t, t) for t in range(len(ref))]
    assert dtw_mje(ref, ref) == 0.0


def test_repeated_frame_aligns_to_the_same_reference_frame_for_free():
    ref = _walk(4)
    pred = ref[[0, 1, 1, 2, 3]]  # frame 1 held for two frames
    cost, path = dtw(pred, ref)
    assert cost == 0.0
    assert path == [(0, 0), (1, 1), (2, 1), (3, 2), (4, 3)]


def test_dtw_hand_computed_alignment():
    # One joint on the x axis: a = 0, 1, 2 and b = 0, 2. Cost matrix |a_i - b_j|:
    # [[0, 2], [1, 1], [2, 0]]; best path (0,0) (1,0) (2,1) of cost 1 (ties prefer the diagonal).
    a = np.array([[[0.0, 0.0]], [[1.0, 0.0]], [[2.0, 0.0]]])
    b = np.array([[[0.0, 0.0]], [[2.0, 0.0]]])
    cost, path = dtw(a, b)
    assert cost == 1.0 and path == [(0, 0), (1, 0), (2, 1)]
    assert dtw_mje(a, b) == pytest.approx(1 / 3)


def test_dtw_mje_of_a_constant_offset_is_the_offset():
    # Offset perpendicular to the motion (and smaller than a frame's step), so the
    # diagonal stays the best alignment and every pair errs by exactly d.
    ref, d = _walk(), 0.03
    pred = ref + np.array([0.0, d])
    assert dtw_mje(pred, ref) == pytest.approx(d)
    assert dtw(pred, ref)[0] == pytest.approx(d * len(ref))


def test_dtw_mje_penalises_missing_generated_keypoints():
    ref = np.full((3, 2, 2), 0.2)
    pred = ref.copy()
    pred[1, 0] = np.nan  # one hand lost in one frame: placed at (0.5, 0.5)
    lost = np.hypot(0.3, 0.3) / 2  # that frame's mean joint error
    assert dtw_mje(pred, ref) == pytest.approx(lost / 3)
    with pytest.raises(ValueError, match="reference"):
        dtw_mje(ref, pred)


def test_dtw_rejects_bad_inputs():
    with pytest.raises(ValueError, match="finite"):
        dtw(np.full((2, 1, 2), np.nan), np.zeros((2, 1, 2)))
    with pytest.raises(ValueError, match="keypoint counts"):
        dtw(np.zeros((2, 1, 2)), np.zeros((2, 3, 2)))
