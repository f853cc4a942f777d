"""Paired one-sided tests (other > correct): against scipy and against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from text2sign.metrics import paired_test

CORRECT = [0.10, 0.12, 0.08, 0.11, 0.09, 0.13, 0.10, 0.07]
OTHER = [0.15, 0.14, 0.13, 0.12, 0.16, 0.12, 0.18, 0.11]


def test_matches_scipy_on_known_data():
    out = paired_test(CORRECT, OTHER)
    diff = np.subtract(OTHER, CORRECT)
    assert out["n"] == 8 and out["reason"] == ""
    assert out["mean_diff"] == pytest.approx(diff.mean())
    assert out["wilcoxon_p"] == pytest.approx(
        stats.wilcoxon(OTHER, CORRECT, alternative="greater").pvalue
    )
    assert out["ttest_p"] == pytest.approx(
        stats.ttest_rel(OTHER, CORRECT, alternative="greater").pvalue
    )
    assert out["wilcoxon_p"] < 0.05 and out["ttest_p"] < 0.05


def test_direction_is_other_greater_than_correct():
    out = paired_test(OTHER, CORRECT)  # swapped: "other" is now the smaller one
    assert out["mean_diff"] < 0
    assert out["wilcoxon_p"] > 0.9 and out["ttest_p"] > 0.9


def test_exact_wilcoxon_hand_computed():
    # 5 distinct positive differences: only the all-positive sign pattern (of 2^5) reaches
    # the observed rank sum 15, so the exact one-sided p-value is 1/32.
    out = paired_test([0.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert out["wilcoxon_p"] == pytest.approx(1 / 32)
    assert out["mean_diff"] == 3.0


def test_degenerate_inputs_give_none_with_a_reason():
    one = paired_test([1.0], [2.0])
    assert one["wilcoxon_p"] is None and one["ttest_p"] is None and "2 pairs" in one["reason"]
    assert one["mean_diff"] == 1.0
    empty = paired_test([], [])
    assert empty["n"] == 0 and empty["mean_diff"] is None and empty["reason"]
    zero = paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert zero["wilcoxon_p"] is None and zero["ttest_p"] is None
    assert zero["reason"] == "all differences are zero" and zero["mean_diff"] == 0.0
    constant = paired_test([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0])
    assert constant["ttest_p"] is None and "zero variance" in constant["reason"]
    assert constant["wilcoxon_p"] is not None


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="equal-length"):
        paired_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_test([1.0, float("nan")], [1.0, 2.0])
