"""The audit's clustered test (other > correct, clips clustered by recording): hand-computed
p-values, the recording (not the clip) as the unit, and no test with one recording."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from text2sign.metrics import clustered_sign_flip


def test_the_unit_is_the_recording_not_the_clip():
    """32 clips, every one worse shuffled, but from 3 recordings: the exact one-sided p over
    recordings is 1/2^3 (only the all-positive signs reach the observed sum), not the 2^-32 a
    test treating the clips as independent would claim."""
    diffs = [0.1 + 0.01 * i for i in range(32)]
    recs = [f"r{i % 3}" for i in range(32)]
    out = clustered_sign_flip(diffs, recs)
    assert out["p"] == pytest.approx(1 / 8)
    assert (out["n_clips"], out["n_clusters"]) == (32, 3)
    assert out["cluster_sizes"] == {"r0": 11, "r1": 11, "r2": 10}
    means = [np.mean(diffs[k::3]) for k in range(3)]
    assert out["mean_diff"] == pytest.approx(np.mean(means))  # each recording weighs the same
    assert stats.wilcoxon(diffs, alternative="greater").pvalue < 1e-9  # what clips would claim
    assert out["wilcoxon_p"] == pytest.approx(stats.wilcoxon(means, alternative="greater").pvalue)


def test_exact_p_counts_sign_assignments_by_hand():
    """Recording means (+3, +2, −1, +4), observed sum 8: of the 16 sign vectors only (+,+,+,+)
    (sum 8) and (+,+,−,+) (sum 10) reach it, so p = 2/16 (counted again by brute force)."""
    means = np.array([3.0, 2.0, -1.0, 4.0])
    hits = sum(np.dot(s, means) >= means.sum() for s in itertools.product((-1, 1), repeat=4))
    diffs = [3.0, 3.0, 2.0, -1.0, -1.0, -1.0, 4.0]  # clips of a, a, b, c, c, c, d
    out = clustered_sign_flip(diffs, ["a", "a", "b", "c", "c", "c", "d"])
    assert out["cluster_means"] == {"a": 3.0, "b": 2.0, "c": -1.0, "d": 4.0}
    assert out["p"] == pytest.approx(hits / 16) and hits == 2


def test_direction_is_one_sided():
    assert clustered_sign_flip([-1.0, -2.0, -3.0], ["a", "b", "c"])["p"] == 1.0
    assert clustered_sign_flip([0.0, 0.0, 0.0], ["a", "b", "c"])["p"] == 1.0  # no evidence


def test_one_recording_gives_no_test_and_says_why():
    out = clustered_sign_flip([0.2] * 8, ["rec"] * 8)
    assert out["p"] is None and out["reason"] == "all 8 clips come from 1 recording: no test " \
        "across recordings"  # fmt: skip
    assert out["mean_diff"] == pytest.approx(0.2)
    none = clustered_sign_flip([], [])
    assert none["p"] is None and none["mean_diff"] is None and "no clip" in none["reason"]


def test_many_recordings_use_fixed_seed_random_signs():
    diffs = list(np.linspace(0.01, 0.2, 20))
    out = clustered_sign_flip(diffs, [str(i) for i in range(20)])
    assert out["p"] == pytest.approx(1 / 10_001)  # no random sign vector reaches all-positive
    assert clustered_sign_flip(diffs, [str(i) for i in range(20)])["p"] == out["p"]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="one cluster per difference"):
        clustered_sign_flip([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="finite"):
        clustered_sign_flip([1.0, float("nan")], ["a", "b"])
