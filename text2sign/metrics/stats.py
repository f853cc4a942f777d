"""Paired significance tests: is a metric larger with wrong captions than with correct ones?"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def paired_test(correct: list[float], other: list[float]) -> dict[str, float | int | str | None]:
    """One-sided paired tests of ``other > correct`` over samples paired by index.

    Returns ``{"n", "mean_diff", "wilcoxon_p", "ttest_p", "reason"}``: ``mean_diff`` is the
    mean of ``other - correct``; the p-values are scipy's Wilcoxon signed-rank test (default
    ``zero_method="wilcox"``: zero differences are dropped) and paired t-test, both with
    ``alternative="greater"``. A p-value that cannot be computed (n < 2, all differences zero,
    constant differences for the t-test) is None and ``reason`` says why ("" when both exist).
    Values must be finite (ValueError otherwise): an N/A metric is no sample.
    """
    a = np.asarray(correct, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equal-length lists, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired_test needs finite values; leave N/A samples out of both lists")
    n = int(a.size)
    diff = b - a
    result: dict[str, float | int | str | None] = {
        "n": n,
        "mean_diff": float(diff.mean()) if n else None,
        "wilcoxon_p": None,
        "ttest_p": None,
        "reason": "",
    }
    if n < 2:
        result["reason"] = f"needs >= 2 pairs, got {n}"
        return result
    if not diff.any():
        result["reason"] = "all differences are zero"
        return result
    reasons = []
    try:
        p = float(stats.wilcoxon(b, a, alternative="greater").pvalue)
        result["wilcoxon_p"] = p if math.isfinite(p) else None
        if result["wilcoxon_p"] is None:
            reasons.append("wilcoxon: undefined p-value")
    except ValueError as e:  # e.g. too few non-zero differences
        reasons.append(f"wilcoxon: {e}")
    if np.ptp(diff) == 0:
        # Zero variance: the t statistic is +-inf, its p-value meaningless.
        reasons.append("t-test: constant differences (zero variance)")
    else:
        result["ttest_p"] = float(stats.ttest_rel(b, a, alternative="greater").pvalue)
    result["reason"] = "; ".join(reasons)
    return result
