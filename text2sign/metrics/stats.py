"""Paired significance tests: the conditioning audit (is a metric larger with wrong captions than
with correct ones, clips clustered by recording?) and the collector's comparison of two points
over matched seeds."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy import stats

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


def clustered_sign_flip(
    diffs: list[float], clusters: list[str], *, unit: str = "recording"
) -> dict[str, Any]:
    """One-sided test of ``diffs > 0`` (per clip: other − correct) where clips of one cluster
    (``unit``: the recording they were cut from) are not independent.

    A cluster-level summary analysis (Donner & Klar 2000; Galbraith, Daniel & Vissel 2010): each
    cluster is reduced to the mean of its clips' differences, and the cluster means are tested
    with the exact one-sided sign-flip permutation test: under the null the sign of each cluster
    mean is as likely + as −, so ``p`` is the share of the 2^m sign assignments whose sum is at
    least the observed one (≥ 1/2^m: 0.125 with 3 recordings; 1 when every mean is 0). Above
    16 clusters, 10,000 fixed-seed random sign vectors, p = (k + 1) / (draws + 1).
    ``wilcoxon_p``: scipy's one-sided Wilcoxon signed-rank test over the same cluster means, for
    comparison. With fewer than 2 clusters there is no test: ``p`` is None and ``reason`` says
    why. ``mean_diff`` is the mean of the cluster means (each cluster weighs the same).
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or len(clusters) != d.size:
        raise ValueError(f"need one cluster per difference, got {d.shape} and {len(clusters)}")
    if not np.isfinite(d).all():
        raise ValueError("clustered_sign_flip needs finite differences; leave N/A clips out")
    sizes: dict[str, int] = {}
    sums: dict[str, float] = {}
    for x, c in zip(d, clusters, strict=True):
        sizes[c] = sizes.get(c, 0) + 1
        sums[c] = sums.get(c, 0.0) + float(x)
    means = {c: sums[c] / sizes[c] for c in sizes}
    m = np.array(list(means.values()))  # (clusters,)
    out: dict[str, Any] = {
        "test": f"exact one-sided sign-flip permutation test over {unit} means",
        "n_clips": int(d.size), "n_clusters": len(means), "cluster_sizes": sizes,
        "cluster_means": means, "mean_diff": float(m.mean()) if m.size else None,
        "p": None, "wilcoxon_p": None, "reason": "",
    }  # fmt: skip
    if m.size == 0:
        out["reason"] = "no clip was scored in both passes"
        return out
    if m.size == 1:
        clips = "1 clip comes" if d.size == 1 else f"all {d.size} clips come"
        out["reason"] = f"{clips} from 1 {unit}: no test across {unit}s"
        return out
    observed = m.sum() - 1e-12 * np.abs(m).sum()  # equal sums in another order may round lower
    if m.size <= SIGN_FLIP_EXACT_MAX_N:
        out["p"] = int(np.count_nonzero(_all_signs(m.size) @ m >= observed)) / (1 << m.size)
    else:
        k = int(np.count_nonzero(_random_signs(m.size) @ m >= observed))
        out["p"] = (k + 1) / (SIGN_FLIP_DRAWS + 1)
    if m.any():
        w = float(stats.wilcoxon(m, alternative="greater").pvalue)
        out["wilcoxon_p"] = w if math.isfinite(w) else None
    return out


# ----------------------------------------------------------------------------------------------
# Comparing two points of a study over matched seeds (the collector)
# ----------------------------------------------------------------------------------------------


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
