"""Successive halving over a study's points, decided by paired evidence (issue 24): the rule.

Pure functions, no I/O: the decider job reads a rung's run dirs and calls :func:`decide`.

At a rung every point has, per seed, one value of the rung's metric, and where the evaluation
gives them, the per-clip values with each clip's recording. The rule:

1. **The best point**: the best mean over its seeds (``better``: ``lower`` or ``higher``).
2. **A paired test of every other point against the best**, one-sided ("is it worse?"), over the
   seeds both have: the per-clip differences (oriented so that > 0 means worse) are clustered by
   *seed × recording* (clips of one recording are not independent, as the evaluation's audit
   says; a seed is an independent training run), and the cluster means go through the exact
   sign-flip permutation test (:func:`text2sign.metrics.stats.clustered_sign_flip`). Without
   per-clip values, each seed is one cluster (so 2 seeds can never reach p < 0.25).
3. **Holm's correction** over the points tested (:func:`text2sign.metrics.stats.holm`), at
   ``alpha``. A point is **dropped** only when its Holm p < ``alpha`` *and* it is worse in every
   matched seed (the mean over that seed's clips): one bad seed cannot carry the evidence.
4. **A point without evidence is kept**: a failed run is missing evidence, never "worse"; a point
   with no value at all is kept, and says so.
5. **The cap**: keep at least ``ceil(n / eta)`` points (the dropped ones with the weakest
   evidence come back first) and at most ``max_keep`` (the budget; the kept points with the
   strongest evidence against them go first, points without evidence last; the best never).

Every decision carries its evidence: the metric, the effect (mean difference point − best with a
95 % Student-t interval over the cluster means), n (seeds, clusters, clips), p raw, p Holm, and
the compute a dropped point does not spend (its seeds × the steps left to the final budget).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from text2sign.metrics.stats import clustered_sign_flip, holm

CLUSTER_UNIT = "seed × recording"


@dataclass(frozen=True)
class Clip:
    """One evaluated clip of one run: its name, its recording (the cluster) and its value."""

    name: str
    recording: str
    value: float


@dataclass(frozen=True)
class RunValue:
    """One run's (point × seed) value of the rung's metric; ``value`` None = missing evidence
    (the run failed, or its metric is N/A: ``reason`` says why)."""

    value: float | None
    clips: tuple[Clip, ...] = ()
    reason: str = ""


@dataclass
class Decision:
    """What the rule decided for one point, with its evidence."""

    point: str
    keep: bool
    why: str
    metric: str
    better: str
    mean: float | None
    seeds_with_value: int
    effect: float | None = None  # mean difference point − best (the metric's unit)
    ci95: tuple[float, float] | None = None
    n_seeds: int = 0  # matched seeds
    n_clusters: int = 0
    n_clips: int = 0
    worse_in_every_seed: bool | None = None
    p: float | None = None  # one-sided, raw
    p_holm: float | None = None
    steps_not_spent: int = 0  # run-steps this point does not train if dropped now
    missing: list[str] = field(default_factory=list)  # "seed1: run FAILED: …"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = list(self.ci95) if self.ci95 else None
        return d


@dataclass(frozen=True)
class Rung:
    """Where the decision is taken: the rung index, the steps every run has now, the final
    steps of the study, and how many seeds each point has planned."""

    index: int
    steps: int
    final_steps: int
    seeds: int


def min_keep(n_points: int, eta: float) -> int:
    """The fewest points a rung keeps: ceil(n / eta), at least 1."""
    return max(1, math.ceil(n_points / eta))


def _mean(r: RunValue) -> float | None:
    """A run's value: the mean over its clips when it has them, else its value."""
    if r.clips:
        vals = [c.value for c in r.clips if math.isfinite(c.value)]
        return float(np.mean(vals)) if vals else None
    return r.value if r.value is not None and math.isfinite(r.value) else None


def _point_mean(runs: dict[int, RunValue]) -> float | None:
    vals = [v for v in (_mean(r) for r in runs.values()) if v is not None]
    return float(np.mean(vals)) if vals else None


def paired_evidence(
    point: dict[int, RunValue], best: dict[int, RunValue], better: str, margin: float = 0.0
) -> dict[str, Any]:
    """The one-sided paired test "is ``point`` worse than ``best`` by more than ``margin``?"
    (in the metric's unit) over their matched seeds.

    Per-clip differences where both runs of a seed have the clip, clustered by seed × recording;
    a seed without clips on either side contributes its one value as its own cluster. The test
    runs on the differences minus ``margin``; the effect and its interval are reported as they
    are."""
    sign = 1.0 if better == "lower" else -1.0  # diff > 0: the point is worse
    diffs: list[float] = []
    clusters: list[str] = []
    per_seed: list[float] = []
    seeds = sorted(s for s in point if s in best and _mean(point[s]) is not None
                   and _mean(best[s]) is not None)  # fmt: skip
    for s in seeds:
        a, b = point[s], best[s]
        mine = {c.name: c for c in a.clips if math.isfinite(c.value)}
        theirs = {c.name: c for c in b.clips if math.isfinite(c.value)}
        shared = sorted(set(mine) & set(theirs))
        if shared:
            d = [sign * (mine[n].value - theirs[n].value) for n in shared]
            diffs += d
            clusters += [f"seed{s}/{mine[n].recording}" for n in shared]
            per_seed.append(float(np.mean(d)))
        else:
            d0 = sign * (float(_mean(a)) - float(_mean(b)))  # type: ignore[arg-type]
            diffs.append(d0)
            clusters.append(f"seed{s}")
            per_seed.append(d0)
    out: dict[str, Any] = {"n_seeds": len(seeds), "n_clips": len(diffs), "n_clusters": 0,
                           "p": None, "effect": None, "ci95": None, "worse_in_every_seed": None,
                           "reason": ""}  # fmt: skip
    if not seeds:
        out["reason"] = "no seed where both runs have a value"
        return out
    test = clustered_sign_flip([d - margin for d in diffs], clusters, unit=CLUSTER_UNIT)
    means = np.array(list(test["cluster_means"].values())) + margin  # (clusters,)
    out["n_clusters"] = int(means.size)
    out["effect"] = sign * float(means.mean())  # back in the metric's direction: point − best
    if means.size > 1:
        half = float(stats.t.ppf(0.975, means.size - 1) * means.std(ddof=1) / math.sqrt(means.size))
        lo, hi = sign * (means.mean() - half), sign * (means.mean() + half)
        out["ci95"] = (float(min(lo, hi)), float(max(lo, hi)))
    out["p"] = test["p"]
    out["reason"] = test["reason"]
    out["worse_in_every_seed"] = all(d > margin for d in per_seed)
    return out


def decide(
    values: dict[str, dict[int, RunValue]],
    *,
    metric: str,
    better: str,
    alpha: float,
    eta: float,
    rung: Rung,
    max_keep: int | None = None,
    margin: float = 0.0,
) -> list[Decision]:
    """Decide which points of a rung go on; one :class:`Decision` per point, in input order.

    ``values``: point → seed → :class:`RunValue` (a seed that did not run is simply absent).
    ``margin``: how much worse than the best a point must be shown to be, as a share of the
    best's mean (0: any amount); early in training points differ by little, consistently, and
    such differences need not last to the final budget.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r} (metric {metric!r})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if eta <= 1:
        raise ValueError(f"eta must be > 1, got {eta!r}")
    if not margin >= 0:
        raise ValueError(f"margin must be ≥ 0, got {margin!r}")
    points = list(values)
    left = max(0, rung.final_steps - rung.steps) * rung.seeds
    means = {p: _point_mean(values[p]) for p in points}
    decisions: dict[str, Decision] = {}
    for p in points:
        missing = [f"seed{s}: {r.reason or 'no value'}" for s, r in sorted(values[p].items())
                   if _mean(r) is None]  # fmt: skip
        decisions[p] = Decision(
            point=p, keep=True, why="", metric=metric, better=better, mean=means[p],
            seeds_with_value=sum(_mean(r) is not None for r in values[p].values()),
            missing=missing,
        )  # fmt: skip
    scored = [p for p in points if means[p] is not None]
    if not scored:
        for d in decisions.values():
            d.why = "no evidence: no run of any point has a value of the metric"
        return list(decisions.values())
    pick = min if better == "lower" else max
    best = pick(scored, key=lambda p: means[p])  # type: ignore[arg-type,return-value]
    decisions[best].why = "best"
    tested: list[str] = []
    for p in points:
        d = decisions[p]
        if p == best:
            continue
        if means[p] is None:
            d.why = "no evidence (missing, never worse): " + "; ".join(d.missing)
            continue
        ev = paired_evidence(values[p], values[best], better, margin * abs(means[best]))
        d.effect, d.ci95, d.p = ev["effect"], ev["ci95"], ev["p"]
        d.n_seeds, d.n_clusters, d.n_clips = ev["n_seeds"], ev["n_clusters"], ev["n_clips"]
        d.worse_in_every_seed = ev["worse_in_every_seed"]
        if d.p is None:
            d.why = f"no test: {ev['reason']}"
        else:
            tested.append(p)
    adjusted = holm([float(decisions[p].p) for p in tested])  # type: ignore[arg-type]
    for p, ph in zip(tested, adjusted, strict=True):
        d = decisions[p]
        d.p_holm = ph
        if ph < alpha and d.worse_in_every_seed:
            d.keep, d.why = (
                False,
                f"worse than {best}: Holm p {ph:.3g} < {alpha} over {len(tested)}",
            )
        elif ph < alpha:
            d.why = f"Holm p {ph:.3g} < {alpha} but not worse in every matched seed: kept"
        else:
            d.why = f"not shown worse than {best}: Holm p {ph:.3g} ≥ {alpha}"
    _apply_cap(decisions, best, min_keep(len(points), eta), max_keep)
    for d in decisions.values():
        d.steps_not_spent = 0 if d.keep else left
    return list(decisions.values())


def _apply_cap(decisions: dict[str, Decision], best: str, low: int, high: int | None) -> None:
    """Keep at least ``low`` points and at most ``high`` (never below ``low``; the best stays)."""
    kept = [d for d in decisions.values() if d.keep]
    dropped = [d for d in decisions.values() if not d.keep]
    # Back first: the weakest evidence (largest Holm p), then the better mean.
    dropped.sort(key=lambda d: (-(d.p_holm or 0.0), -(d.p or 0.0)))
    while len(kept) < low and dropped:
        d = dropped.pop(0)
        d.keep = True
        d.why += f"; kept by the cap (at least {low} points go on)"
        kept.append(d)
    if high is None:
        return
    high = max(high, low)
    # Out first: the strongest evidence (smallest raw p); points without a test last.
    order = sorted((d for d in kept if d.point != best),
                   key=lambda d: (d.p is None, d.p if d.p is not None else 1.0))  # fmt: skip
    while len(kept) > high and order:
        d = order.pop(0)
        d.keep = False
        d.why += f"; dropped by the budget (at most {high} points go on)"
        kept.remove(d)


def survivors(decisions: list[Decision]) -> list[str]:
    """The points that go on to the next rung."""
    return [d.point for d in decisions if d.keep]


def rung_steps(final_steps: int, eta: float, rungs: int, first: int | None = None) -> list[int]:
    """The step budget of each rung: ``first``·eta^r (default final / eta^(rungs-1)), the last
    rung at the final budget; strictly increasing, each at least 1."""
    if rungs < 1:
        raise ValueError(f"rungs must be ≥ 1, got {rungs}")
    if rungs == 1:
        return [final_steps]
    base = first if first is not None else final_steps / eta ** (rungs - 1)
    out = [max(1, int(round(base * eta**r))) for r in range(rungs - 1)] + [final_steps]
    if any(b >= a for a, b in zip(out[1:], out[:-1], strict=True)):
        raise ValueError(
            f"rung budgets {out} do not grow: fewer rungs, a smaller first rung or more steps"
        )
    return out
