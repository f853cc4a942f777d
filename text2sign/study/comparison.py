"""Statistics of a study: one row per point (wide) and one row per run × metric (long).

Per point and metric, over its COMPLETED seeds: mean, sample std (ddof=1), n and the 95 %
Student-t CI of the mean. Against the study's reference point (:mod:`text2sign.study.records`):

- ``delta_pct``: Δ % of the means;
- seed k of every point shares initial weights, data order and noise, so the comparison is
  **paired** over the seeds both have a value for (``n_paired``, ``mean_diff`` = mean of
  point − reference): ``p_paired_t`` (paired t-test, ``scipy.stats.ttest_rel``) and
  ``p_signflip`` (exact two-sided sign-flip permutation test, no normality assumed);
- ``p_holm``: ``p_paired_t`` after Holm's step-down correction over the headline metrics of the
  same comparison (the findings' and LaTeX stars' verdicts use it);
- ``p_welch``: Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``), for seeds that are not
  matched.

Fewer than 3 matched seeds (3 values per side for Welch): no test, the p-values are NaN and
``<metric>_note`` says ``n = 2 matched seeds: no test (needs ≥ 3)``. It also says ``n<2`` (no
CI), ``zero variance``/``constant differences`` (a t-test is undefined) or, when no seed has a
value, the N/A reason (e.g. ``no I3D weights``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from text2sign.metrics.stats import MIN_PAIRS, holm, paired_t_p, sign_flip_p
from text2sign.study.metric_specs import (
    AUDIT_ALPHA,
    AUDIT_P,
    BASIS,
    EVAL_METRICS,
    HEADLINE,
    SUMMARY_METRICS,
)
from text2sign.study.records import RunRecord, Study

STAT_SUFFIXES = ("mean", "std", "n", "ci95_low", "ci95_high", "delta_pct", "n_paired", "mean_diff",
                 "p_paired_t", "p_signflip", "p_holm", "p_welch", "note")  # fmt: skip
LONG_COLUMNS = ("study", "point", "base_variant", "seed", "overrides", "metric", "value", "state",
                "reason")  # fmt: skip


def describe(values: Sequence[float]) -> dict[str, float | int]:
    """mean, std (ddof=1), n and the 95 % Student-t CI of the mean (NaN where n is too small)."""
    a = np.asarray(values, dtype="float64")
    n = len(a)
    mean = float(a.mean()) if n else math.nan
    std = float(a.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n) if n > 1 else math.nan
    return {"mean": mean, "std": std, "n": n, "ci95_low": mean - half, "ci95_high": mean + half}


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, str]:
    """Welch's t-test p-value of ``a`` vs ``b``, or (NaN, why not): too few seeds or zero variance."""
    if len(a) < MIN_PAIRS or len(b) < MIN_PAIRS:
        return math.nan, ""  # the paired note already says there is no test
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # scipy: NaN (equal means) or a meaningless 0 (unequal)
        return math.nan, "zero variance"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "precision loss" on near-constant data
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue), ""


def no_test_note(n: int) -> str:
    seeds = "matched seed" if n == 1 else "matched seeds"
    return f"n = {n} {seeds}: no test (needs ≥ {MIN_PAIRS})"


def paired(vals: dict[str, float], ref: dict[str, float]) -> dict[str, Any]:
    """The paired comparison of ``vals`` with ``ref`` (seed → value) over their common seeds."""
    seeds = [s for s in vals if s in ref]
    out: dict[str, Any] = {"n_paired": len(seeds), "mean_diff": math.nan, "p_paired_t": math.nan,
                           "p_signflip": math.nan, "why": ""}  # fmt: skip
    if not seeds:
        out["why"] = no_test_note(0)
        return out
    a, b = np.array([vals[s] for s in seeds]), np.array([ref[s] for s in seeds])
    out["mean_diff"] = float((a - b).mean())
    if len(seeds) < MIN_PAIRS:
        out["why"] = no_test_note(len(seeds))
        return out
    out["p_signflip"] = sign_flip_p(a - b)
    out["p_paired_t"] = paired_t_p(a, b)
    if math.isnan(out["p_paired_t"]):
        out["why"] = "constant differences: no paired t-test"
    return out


def _weights(records: Iterable[RunRecord]) -> str:
    return "/".join(sorted({r.weights for r in records if r.weights}))


def _keypoints(records: Iterable[RunRecord]) -> str:
    return "/".join(sorted({r.keypoints for r in records if r.keypoints}))


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _values(runs: list[RunRecord], key: str, source: str,
            ended: str = "no COMPLETED run") -> tuple[dict[str, float], str]:  # fmt: skip
    """Seed → finite value of ``key`` over ``runs`` and, when there is none, why (N/A reason;
    ``ended``: why there is no COMPLETED run)."""
    vals, reasons = {}, []
    for r in runs:
        v = r.summary.get(key) if source == "summary" else r.evaluation.get(key)
        if _finite(v):
            vals[r.seed] = float(v)
        elif source == "evaluation":
            reasons.append(r.eval_reasons.get(key) or r.eval_problem or "not reported")
    if vals:
        return vals, ""
    if not runs:
        return {}, ended
    if source == "summary":
        return {}, "not in summary.json"
    return {}, "; ".join(dict.fromkeys(reasons))


def _why_none(runs: list[RunRecord]) -> str:
    """Why a point has no COMPLETED run: said once when successive halving dropped it."""
    if runs and all(r.state == "DROPPED" for r in runs):
        return runs[0].problem.split(", ", 1)[0]  # "dropped … after rung 0 (300 of 450 steps)"
    return "no COMPLETED run"


def _audit_seeds(runs: list[RunRecord]) -> dict[str, Any]:
    """The conditioning audit per seed: how many seeds separate at p < 0.05, every p, and why
    the seeds without a p have none (e.g. all clips from one recording)."""
    ps = [float(r.evaluation[AUDIT_P]) for r in runs if _finite(r.evaluation.get(AUDIT_P))]
    why = [r.eval_reasons[AUDIT_P] for r in runs if AUDIT_P in r.eval_reasons]
    return {
        "audit_seeds_significant": sum(p < AUDIT_ALPHA for p in ps),
        "audit_seeds_tested": len(ps),
        "audit_p_values": "; ".join(f"{p:.3g}" for p in ps),
        "audit_note": "; ".join(dict.fromkeys(why)),
    }


def _count(n: float, what: str) -> str:
    return f"{int(n)} {what}" + ("" if int(n) == 1 else "s")


def basis(r: RunRecord) -> str:
    """What one run's evaluation rests on: ``32 clips, 12 recordings, 3 signers`` (and where a
    number rests on fewer: DTW-MJE's scorable clips, the floor's, the audit test's recordings)."""
    e = {k: v for k, v in r.evaluation.items() if _finite(v)}
    if "eval_clips" not in e:
        n = r.num_videos
        return f"{_count(n, 'clip')} (recordings and signers not recorded)" if n else ""
    named = (("eval_clips", "clip"), ("eval_recordings", "recording"), ("eval_signers", "signer"))
    text = ", ".join(_count(e[k], what) for k, what in named if k in e)
    clips, recordings = e["eval_clips"], e.get("eval_recordings")
    if e.get("dtw_mje_clips", clips) < clips:
        text += f"; DTW-MJE on {_count(e['dtw_mje_clips'], 'clip')}"
    if e.get("dtw_mje_floor_clips", clips) < clips:
        text += f"; floor on {_count(e['dtw_mje_floor_clips'], 'clip')}"
    if e.get("audit_recordings", recordings) != recordings:
        text += f"; audit test over {_count(e['audit_recordings'], 'recording')}"
    return text


def evaluated_on(runs: list[RunRecord]) -> str:
    """:func:`basis` over a point's runs: one text, or each distinct one with its seeds."""
    texts: dict[str, list[str]] = {}
    for r in runs:
        if b := basis(r):
            texts.setdefault(b, []).append(r.seed)
    if len(texts) <= 1:
        return next(iter(texts), "")
    return " / ".join(f"{t} ({', '.join(seeds)})" for t, seeds in texts.items())


def metric_sources(records: list[RunRecord]) -> list[tuple[str, str]]:
    """(metric, "summary" | "evaluation") in table order: summary.json's, the registered
    evaluation metrics, then unknown evaluation metrics by name (per-seed audit p excluded)."""
    evaluated = dict.fromkeys(k for r in records for k in r.evaluation)
    keys = [(k, "summary") for k in SUMMARY_METRICS]
    keys += [(k, "evaluation") for k in EVAL_METRICS if k in evaluated]
    keys += [(k, "evaluation") for k in sorted(evaluated)
             if k not in EVAL_METRICS | SUMMARY_METRICS and k != AUDIT_P and k not in BASIS]  # fmt: skip
    return keys


def comparison_table(study: Study) -> pd.DataFrame:
    """One row per point (reference first, then the study's order): run states, weights,
    overrides, and per metric the columns ``<metric>_<suffix>`` for :data:`STAT_SUFFIXES`."""
    by_point: dict[str, list[RunRecord]] = {p: [] for p in study.points}
    for r in study.records:
        by_point.setdefault(r.variant, []).append(r)
    points, ref = list(by_point), study.reference
    done = {v: [r for r in by_point[v] if r.state == "COMPLETED"] for v in points}
    rows: dict[str, dict[str, Any]] = {}
    for v in points:
        states = pd.Series([r.state for r in by_point[v]]).value_counts()
        rows[v] = {
            "variant": v,
            "base_variant": study.base_variant.get(v, v),
            "overrides": study.overrides.get(v, ""),
            "reference": "" if v == ref else ref,
            "seeds": len(by_point[v]),
            "completed": len(done[v]),
            "state": ", ".join(f"{n} {s}" for s, n in sorted(states.items())),
            "not_completed": "; ".join(
                f"{r.seed} {r.state}: {r.problem}" if r.problem else f"{r.seed} {r.state}"
                for r in by_point[v]
                if r.state != "COMPLETED"
            ),  # fmt: skip
            "weights": _weights(done[v]) or _weights(by_point[v]),
            "keypoints": _keypoints(done[v]),
            "evaluated_on": evaluated_on(done[v]),
            **_audit_seeds(done[v]),
        }
    for key, source in metric_sources([r for runs in done.values() for r in runs]):
        values = {v: _values(done[v], key, source, _why_none(by_point[v])) for v in points}
        ref_vals = values.get(ref, ({}, ""))[0]
        ref_mean = float(np.mean(list(ref_vals.values()))) if ref_vals else math.nan
        for v in points:
            vals, reason = values[v]
            d = describe(list(vals.values()))
            notes = [reason] if reason else (["n<2"] if len(vals) == 1 else [])
            row = rows[v]
            row.update({f"{key}_{s}": d[s] for s in ("mean", "std", "n", "ci95_low", "ci95_high")})
            test = {"n_paired": 0, "mean_diff": math.nan, "p_paired_t": math.nan,
                    "p_signflip": math.nan, "p_welch": math.nan, "delta_pct": math.nan}  # fmt: skip
            if v != ref and vals:
                if not ref_vals:
                    notes.append("no reference value")
                else:
                    test["delta_pct"] = (d["mean"] - ref_mean) / abs(ref_mean) * 100 if ref_mean else math.nan  # fmt: skip
                    pair = paired(vals, ref_vals)
                    test.update({k: pair[k] for k in ("n_paired", "mean_diff", "p_paired_t", "p_signflip")})  # fmt: skip
                    test["p_welch"], why = welch(list(vals.values()), list(ref_vals.values()))
                    notes += [w for w in (pair["why"], why) if w and w not in notes]
            row.update({f"{key}_{s}": x for s, x in test.items()})
            row[f"{key}_p_holm"] = math.nan
            row[f"{key}_note"] = "; ".join(notes)
    for row in rows.values():  # Holm over the headline metrics of each comparison
        family = [k for k in HEADLINE if f"{k}_p_paired_t" in row]
        for k, p in zip(family, holm([row[f"{k}_p_paired_t"] for k in family]), strict=True):
            row[f"{k}_p_holm"] = p
    return pd.DataFrame(list(rows.values()))


def holm_family(row: pd.Series, keys: Iterable[str]) -> list[str]:
    """The metrics of ``keys`` whose paired test entered this row's Holm correction."""
    return [
        k for k in keys if k in HEADLINE and not math.isnan(row.get(f"{k}_p_paired_t", math.nan))
    ]


def long_table(study: Study) -> pd.DataFrame:
    """One row per run × metric (:data:`LONG_COLUMNS`): the value, or NaN and the reason."""
    rows = []
    keys = metric_sources(study.records) + [(k, "evaluation") for k in (AUDIT_P, *BASIS)
                                            if any(k in r.evaluation for r in study.records)]  # fmt: skip
    for r in study.records:
        base = {"study": study.name, "point": r.variant,
                "base_variant": study.base_variant.get(r.variant, r.variant), "seed": r.seed_number,
                "overrides": study.overrides.get(r.variant, "")}  # fmt: skip
        for key, source in keys:
            v = r.summary.get(key) if source == "summary" else r.evaluation.get(key)
            if r.state != "COMPLETED":
                value, reason = math.nan, f"run {r.state}" + (f": {r.problem}" if r.problem else "")
            elif _finite(v):
                value, reason = float(v), ""
            elif source == "summary":
                value, reason = math.nan, "not in summary.json"
            else:
                value, reason = (
                    math.nan,
                    r.eval_reasons.get(key) or r.eval_problem or "not reported",
                )
            rows.append({**base, "metric": key, "value": value, "state": r.state, "reason": reason})
    return pd.DataFrame(rows, columns=list(LONG_COLUMNS)).astype({"seed": "Int64"})
