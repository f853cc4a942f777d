"""Successive halving, simulated on real learning curves before it is trusted (issue 24).

The curves are recorded once (``python -m bench.halving_record``: an lr × EMA-decay sweep at
the tiny profile, several seeds, per-clip DTW-MJE at every rung budget) and committed as
``bench/recorded/halving_curves.json``. Each resample draws ``seeds`` of the recorded seeds and
``clips`` of the recorded clips (without replacement, the same for every point: the pairing is
kept), then replays every rule on that data:

- **paired** (ours, :func:`text2sign.study.halving.decide`): drop a point only on a one-sided
  sign-flip test against the best, clustered by seed × recording, Holm over the points, worse
  in every seed; keep at least ceil(n/eta); optionally at most ``max_keep`` (the budget);
- **ASHA** (reduction factor 3, one metric: the mean over seeds and clips); with every trial
  started at once it is synchronous successive halving: the top ceil(n/3) go on;
- **Wilcoxon** (like Optuna's WilcoxonPruner): a point is pruned at a rung when the one-sided
  Wilcoxon signed-rank test of its per-instance values (seed × clip) against the current best
  point's gives p < 0.1 (Optuna's default p_threshold).

Compute is in run-steps (a survivor resumes, so rung r costs its step increment); the rung
evaluations are not counted (state it). "Winner dropped": the point with the best mean at the
final budget under the same resample (what the full grid would pick) did not reach the final
budget.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from bench.common import Goal, Section
from text2sign.study.halving import Clip, Rung, RunValue, decide, min_keep

RECORDED = Path(__file__).parent / "recorded" / "halving_curves.json"
RESAMPLES = 300
P_THRESHOLD = 0.1  # Optuna WilcoxonPruner's default


@dataclass(frozen=True)
class Curves:
    """values[p, s, r, c]: point p, seed s, rung budget r, clip c (NaN: missing)."""

    points: list[str]
    seeds: list[int]
    steps: list[int]
    recordings: list[str]  # per clip
    values: np.ndarray  # (P, S, R, C)


def load(path: Path = RECORDED) -> Curves:
    """The recorded curves as one array; a run that failed before a step is NaN from there."""
    d = json.loads(path.read_text())
    steps = list(d["at"])
    points = sorted({(r["lr"], r["decay"]) for r in d["runs"]})
    seeds = sorted({r["seed"] for r in d["runs"]})
    first = next(c for r in d["runs"] for c in r["curve"] if "per_clip" in c)
    clips, recordings = first["clips"], first["recordings"]
    v = np.full((len(points), len(seeds), len(steps), len(clips)), np.nan)
    for r in d["runs"]:
        p, s = points.index((r["lr"], r["decay"])), seeds.index(r["seed"])
        for c in r["curve"]:
            if "per_clip" in c:
                assert c["clips"] == clips, "every run must be evaluated on the same clips"
                v[p, s, steps.index(c["step"])] = c["per_clip"]
    names = [f"lr{lr:g}__decay{dc:g}" for lr, dc in points]
    return Curves(names, seeds, steps, list(recordings), v)


# ----------------------------------------------------------------------------------------------
# The rules: each takes (values (P, S, R, C) of one resample, recordings, rung indices) and
# returns the points alive after each rung decision (a list of sets), the last one = finalists.
# ----------------------------------------------------------------------------------------------


def _run_values(v: np.ndarray, recs: list[str]) -> dict[int, RunValue]:
    """(S, C) of one point at one rung → the rule's input."""
    out = {}
    for s in range(v.shape[0]):
        row = v[s]
        if np.isnan(row).all():
            out[s] = RunValue(None, reason="missing")
            continue
        clips = tuple(Clip(f"c{i}", recs[i], float(x)) for i, x in enumerate(row) if np.isfinite(x))
        out[s] = RunValue(float(np.nanmean(row)), clips)
    return out


def paired_rule(
    alpha: float = 0.05,
    eta: float = 3.0,
    max_keep: Callable[[int], int] | None = None,
    margin: float = 0.0,
):
    def rule(v: np.ndarray, recs: list[str], rungs: list[int], steps: list[int]) -> list[set[int]]:
        alive = set(range(v.shape[0]))
        trail = []
        for k, r in enumerate(rungs[:-1]):
            pts = sorted(alive)
            values = {str(p): _run_values(v[p, :, r], recs) for p in pts}
            cap = max_keep(len(pts)) if max_keep else None
            rung = Rung(index=k, steps=steps[r], final_steps=steps[rungs[-1]], seeds=v.shape[1])
            ds = decide(values, metric="dtw_mje", better="lower", alpha=alpha, eta=eta, rung=rung,
                        max_keep=cap, margin=margin)  # fmt: skip
            alive = {int(d.point) for d in ds if d.keep}
            trail.append(set(alive))
        return trail

    return rule


def asha_rule(eta: float = 3.0):
    def rule(v: np.ndarray, recs: list[str], rungs: list[int], steps: list[int]) -> list[set[int]]:
        alive = set(range(v.shape[0]))
        trail = []
        for r in rungs[:-1]:
            score = {p: float(np.nanmean(v[p, :, r])) for p in alive}
            keep = min_keep(len(alive), eta)
            alive = set(sorted(alive, key=lambda p: score[p])[:keep])
            trail.append(set(alive))
        return trail

    return rule


def wilcoxon_rule(p_threshold: float = P_THRESHOLD):
    def rule(v: np.ndarray, recs: list[str], rungs: list[int], steps: list[int]) -> list[set[int]]:
        alive = set(range(v.shape[0]))
        trail = []
        for r in rungs[:-1]:
            score = {p: float(np.nanmean(v[p, :, r])) for p in alive}
            best = min(alive, key=lambda p: score[p])
            keep = {best}
            for p in alive - {best}:
                d = (v[p, :, r] - v[best, :, r]).ravel()  # instances: seed × clip
                d = d[np.isfinite(d)]
                if d.size == 0 or not d.any():
                    keep.add(p)
                    continue
                pv = float(stats.wilcoxon(d, alternative="greater").pvalue)
                if not pv < p_threshold:
                    keep.add(p)
            alive = keep
            trail.append(set(alive))
        return trail

    return rule


def cost(
    trail: list[set[int]], n_points: int, seeds: int, steps: list[int], rungs: list[int]
) -> int:
    """Run-steps spent: every point to the first rung, then each rung's survivors resumed."""
    budgets = [steps[r] for r in rungs]
    spent = n_points * budgets[0]
    for alive, (lo, hi) in zip(trail, zip(budgets[:-1], budgets[1:], strict=True), strict=True):
        spent += len(alive) * (hi - lo)
    return spent * seeds


def simulate(curves: Curves, rules: dict[str, tuple], *, seeds: int, clips: int,
             resamples: int, rng_seed: int = 0) -> list[dict]:  # fmt: skip
    """Replay each rule (name → (rule, rung indices)) under ``resamples`` draws of seeds and
    clips; per rule: mean compute share of the full grid, share of resamples where the winner was
    dropped, finalists."""
    rng = np.random.default_rng(rng_seed)
    P, S, R, C = curves.values.shape
    last = R - 1
    full = P * seeds * curves.steps[last]
    acc = {name: {"cost": [], "dropped": 0, "finalists": []} for name in rules}
    for _ in range(resamples):
        si = np.sort(rng.choice(S, size=seeds, replace=False))
        ci = np.sort(rng.choice(C, size=clips, replace=False))
        v = curves.values[:, si][:, :, :, ci]  # (P, seeds, R, clips)
        recs = [curves.recordings[i] for i in ci]
        final = np.nanmean(v[:, :, last].reshape(P, -1), axis=1)
        winner = int(np.nanargmin(final))
        for name, (rule, rungs) in rules.items():
            trail = rule(v, recs, rungs, curves.steps)
            a = acc[name]
            a["cost"].append(cost(trail, P, seeds, curves.steps, rungs) / full)
            a["dropped"] += winner not in trail[-1]
            a["finalists"].append(len(trail[-1]))
    return [{"rule": name, "compute": float(np.mean(a["cost"])),
             "saved": 1 - float(np.mean(a["cost"])), "winner_dropped": a["dropped"] / resamples,
             "finalists": float(np.mean(a["finalists"]))} for name, a in acc.items()]  # fmt: skip


def standard_rules(curves: Curves) -> dict[str, tuple]:
    """The rules the section compares, on the recorded budgets (3 rungs: b, 3b, 9b)."""
    all3 = list(range(len(curves.steps)))
    two = [len(curves.steps) - 2, len(curves.steps) - 1]  # 3b → 9b
    return {
        "ASHA, eta 3, 3 rungs": (asha_rule(3), all3),
        "Wilcoxon-like (p < 0.1), 3 rungs": (wilcoxon_rule(), all3),
        "paired (ours), alpha 0.05, 3 rungs": (paired_rule(0.05, 3), all3),
        "paired (ours), alpha 0.05, 2 rungs (3b, 9b)": (paired_rule(0.05, 3), two),
        "paired (ours), alpha 0.05, margin 1 %, 3 rungs": (paired_rule(0.05, 3, margin=0.01), all3),
        "paired (ours), alpha 0.05, margin 2 %, 3 rungs": (paired_rule(0.05, 3, margin=0.02), all3),
        "paired (ours) + budget = ASHA's, 3 rungs": (
            paired_rule(0.05, 3, max_keep=lambda n: min_keep(n, 3)), all3),
        "ASHA, eta 3, 2 rungs (3b, 9b)": (asha_rule(3), two),
    }  # fmt: skip


def run(path: Path = RECORDED, resamples: int = RESAMPLES) -> Section:
    t0 = time.perf_counter()
    curves = load(path)
    meta = json.loads(path.read_text())
    P, S, R, C = curves.values.shape
    rows, results = [], {}
    for seeds in sorted({2, S}):
        res = simulate(curves, standard_rules(curves), seeds=seeds, clips=min(12, C),
                       resamples=resamples)  # fmt: skip
        for r in res:
            results[(seeds, r["rule"])] = r
            rows.append([r["rule"], str(seeds), f"{r['compute']:.1%}", f"{r['saved']:.1%}",
                         f"{r['winner_dropped']:.1%}", f"{r['finalists']:.2f}"])  # fmt: skip
    ours = results[(2, "paired (ours), alpha 0.05, 3 rungs")]
    asha = results[(2, "ASHA, eta 3, 3 rungs")]
    capped = results[(2, "paired (ours) + budget = ASHA's, 3 rungs")]
    return Section(
        title="Successive halving on recorded learning curves (simulation)",
        method=(
            f"`python -m bench.halving_sim` replays `{path.name}` ({meta['made_by']}; "
            f"{P} points ({', '.join(curves.points)}) × {S} seeds, per-clip "
            f"DTW-MJE on {C} validation clips at steps {curves.steps}, recorded in "
            f"{meta['wall_s'] / 60:.0f} min on {meta['cpus']} CPUs) under {resamples} resamples "
            f"of seeds (a subset) and clips ({min(12, C)} of {C}, the same for every point). "
            "Compute: run-steps spent / the full grid's (survivors resume; rung evaluations not "
            "counted). Winner dropped: the best point at the final budget under the same "
            "resample did not reach it."
            + (
                f" Planned but not recorded: {'; '.join(meta['not_recorded'])}."
                if meta.get("not_recorded")
                else ""
            )
        ),
        columns=["rule", "seeds", "compute", "saved", "winner dropped", "finalists"],
        rows=rows,
        goals=[
            Goal(
                metric="paired rule (ours), 2 seeds: compute saved",
                value=f"{ours['saved']:.1%}",
                goal="≥ 50 %",
                met=ours["saved"] >= 0.5,
            ),
            Goal(
                metric="paired rule (ours), 2 seeds: winner dropped",
                value=f"{ours['winner_dropped']:.1%}",
                goal="≤ 5 %",
                met=ours["winner_dropped"] <= 0.05,
            ),
            Goal(
                metric="at ASHA's compute: ours vs ASHA, winner dropped",
                value=f"{capped['winner_dropped']:.1%} vs {asha['winner_dropped']:.1%}",
                goal="lower than ASHA",
                met=capped["winner_dropped"] < asha["winner_dropped"],
            ),
        ],  # fmt: skip
        notes=[],
        seconds=time.perf_counter() - t0,
    )


def main() -> int:
    s = run()
    print(s["method"])
    print(" | ".join(s["columns"]))
    for r in s["rows"]:
        print(" | ".join(r))
    for g in s["goals"]:
        print(f"{g['metric']}: {g['value']} (goal {g['goal']}: {g['met']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
