"""Paired significance tests: the conditioning audit (is a metric larger with wrong captions than
with correct ones?) and the collector's comparison of two points over matched seeds."""

from __future__ import annotations

import functools
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


# ----------------------------------------------------------------------------------------------
# Comparing two points of a study over matched seeds (the collector)
# ----------------------------------------------------------------------------------------------

MIN_PAIRS = 3  # fewer matched seeds: no test (a paired t-test on 2 pairs has 1 degree of freedom)
SIGN_FLIP_EXACT_MAX_N = 16  # 2^16 sign vectors; above, a fixed-seed Monte Carlo sample of them
SIGN_FLIP_DRAWS = 10_000


@functools.lru_cache(maxsize=SIGN_FLIP_EXACT_MAX_N + 1)
def _all_signs(n: int) -> np.ndarray:
    """(2^n, n): every ±1 sign vector of length n."""
    bits = (np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1
    return (1 - 2 * bits).astype(np.float64)


@functools.lru_cache(maxsize=4)
def _random_signs(n: int) -> np.ndarray:
    """(SIGN_FLIP_DRAWS, n) fixed-seed random ±1 sign vectors (one study reuses its n)."""
    return np.random.default_rng(0).choice([-1.0, 1.0], size=(SIGN_FLIP_DRAWS, n))


def sign_flip_p(diffs: list[float] | np.ndarray) -> float:
    """Two-sided sign-flip permutation p-value of ``mean(diffs) == 0``.

    Under the null each paired difference is as likely negative as positive; the p-value is the
    share of the 2^n sign assignments whose |mean| is at least the observed |mean| (the observed
    one included, so p ≥ 2/2^n: with n = 3 it is never below 0.25). Exact up to n = 16; above,
    10,000 fixed-seed random sign vectors, p = (k + 1) / (draws + 1).
    """
    d = np.asarray(diffs, dtype=np.float64)
    n = d.size
    if n == 0:
        return math.nan
    observed = abs(d.sum()) * (1 - 1e-12)  # equal sums in another order may round lower
    if n <= SIGN_FLIP_EXACT_MAX_N:
        return int(np.count_nonzero(np.abs(_all_signs(n) @ d) >= observed)) / (1 << n)
    signs = _random_signs(n)
    return (int(np.count_nonzero(np.abs(signs @ d) >= observed)) + 1) / (SIGN_FLIP_DRAWS + 1)


def paired_t_p(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    """Two-sided paired t-test p-value of ``a`` vs ``b`` (NaN when the differences are constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = a - b
    # Constant differences (to rounding: 0.11 - 0.1 != 0.06 - 0.05 in floating point): the t
    # statistic is ±inf or a huge number from rounding noise, its p-value meaningless.
    if d.size < 2 or np.ptp(d) <= 1e-9 * max(np.abs(a).max(), np.abs(b).max(), 1e-300):
        return math.nan
    return float(stats.ttest_rel(a, b).pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not in the family).

    Sort the m p-values ascending; the i-th smallest (i = 0…m−1) is multiplied by (m − i); the
    adjusted values are made non-decreasing along that order (running maximum) and capped at 1.
    Rejecting where the adjusted p < α controls the family-wise error rate at α.
    Example: [0.01, 0.04, 0.03, 0.005] → [0.03, 0.06, 0.06, 0.02].
    """
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (len(idx) - rank) * pvalues[i]))
        out[i] = running
    return out
