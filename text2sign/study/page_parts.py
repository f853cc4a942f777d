"""The pieces of report.html, as plain data for its template (:mod:`text2sign.study.page`).

Each function takes what the collector already read (records, the comparison table, the long
table, the curves) and returns rows, SVG strings and hrefs relative to the study folder. Nothing
here reads a run's files again, except each shown run's ``eval_videos`` hrefs, which are paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from text2sign.study import svg
from text2sign.study.curves import RunCurves
from text2sign.study.metric_specs import HEADLINE, SUMMARY_METRICS, metric, metric_keys
from text2sign.study.records import RunRecord, Study
from text2sign.study.tables import fmt_basis, fmt_ci, fmt_mean_std, fmt_p

MAX_SEEDS = 20  # per point, the seeds drawn in a chart; above it the page says how many more
CURVE_POINTS = 150  # a learning curve is thinned to about this many points
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "MISSING", "CORRUPT", "PARTIAL",
                "DROPPED")  # fmt: skip


def run_href(r: RunRecord, name: str = "") -> str:
    return f"{r.variant}/{r.seed}/{name}"


def anchor(kind: str, name: str) -> str:
    return f"{kind}-" + "".join(c if c.isalnum() else "-" for c in name)


# ----------------------------------------------------------------------------------------------
# State of the study, the headline table
# ----------------------------------------------------------------------------------------------


def progress(records: list[RunRecord]) -> dict[str, Any]:
    """How many runs ended, and which still run: a partial page says so."""
    waiting = [r for r in records if r.state not in FINAL_STATES]
    states: dict[str, int] = {}
    for r in records:
        states[r.state] = states.get(r.state, 0) + 1
    return {"total": len(records), "waiting": [f"{r.variant}/{r.seed} {r.state}" for r in waiting],
            "states": ", ".join(f"{n} {s}" for s, n in sorted(states.items()))}  # fmt: skip


def headline(df: pd.DataFrame, reference: str) -> dict[str, Any]:
    """The headline metrics per point, each cell with the CSV's raw mean and a link to its
    per-seed chart; the same numbers as ``comparison_table.md``."""
    keys = [k for k in HEADLINE if k in metric_keys(df)]
    rows = []
    for _, r in df.iterrows():
        cells = [{"key": k, "text": fmt_mean_std(r, k), "ci": fmt_ci(r, k), "n": int(r[f"{k}_n"]),
                  "mean": None if math.isnan(r[f"{k}_mean"]) else float(r[f"{k}_mean"]),
                  "scale": metric(k).scale, "href": "#" + anchor("metric", k),
                  "p": "" if r.variant == reference else fmt_p(r, k, "p_holm")}
                 for k in keys]  # fmt: skip
        rows.append({"point": r.variant, "href": "#" + anchor("point", r.variant),
                     "runs": r.state, "overrides": r.get("overrides") or "",
                     "evaluated_on": fmt_basis(r), "cells": cells})  # fmt: skip
    heads = [{"key": k, "label": metric(k).label, "better": metric(k).better or ""} for k in keys]
    return {"heads": heads, "rows": rows}


# ----------------------------------------------------------------------------------------------
# Per-seed paired charts, one per metric
# ----------------------------------------------------------------------------------------------


@dataclass
class MetricCard:
    anchor: str
    key: str
    label: str
    better: str
    svg: str
    tests: list[dict[str, Any]] = field(default_factory=list)
    hidden_seeds: int = 0
    missing: list[str] = field(default_factory=list)  # "point: reason" with no value


def metric_cards(study: Study, df: pd.DataFrame, long: pd.DataFrame) -> list[MetricCard]:
    """For every metric: a dot per seed and point, a line joining a seed across the
    points (the pairs the tests compare), the reference shaded; the tests beside it; a metric
    no run has is a card with every point's reason."""
    points = [p for p in study.points if p in set(df.variant)]
    ref = points.index(study.reference) if study.reference in points else None
    by_run = {(r.variant, r.seed_number): r for r in study.records}
    cards = []
    by_metric = dict(tuple(long.groupby("metric", sort=False)))
    for key in metric_keys(df):
        sub = by_metric.get(key)
        if sub is None or sub.empty:
            continue
        m = metric(key)
        wide = sub.dropna(subset=["seed"]).drop_duplicates(["seed", "point"]).pivot(
            index="seed", columns="point", values="value").reindex(columns=points)  # fmt: skip
        seeds = sorted(int(s) for s in wide.index.dropna())
        shown = seeds[:MAX_SEEDS]
        series = {f"seed {s}": [float(v) * m.scale for v in wide.loc[s]] for s in shown}
        links = {f"seed {s}": [run_href(by_run[(p, s)], "evaluation_metrics.json"
                                        if key not in SUMMARY_METRICS else "summary.json")
                               if (p, s) in by_run else None for p in points]
                 for s in shown}  # fmt: skip
        has_values = not sub.value.isna().all()
        chart = (
            svg.paired_dots(points, series, ylabel=m.label, marked=ref, links=links)
            if has_values
            else ""
        )
        card = MetricCard(
            anchor("metric", key),
            key,
            m.label,
            m.better or "",
            chart,
            hidden_seeds=len(seeds) - len(shown),
        )
        for _, r in df.iterrows():
            if r.variant == study.reference or not has_values:
                continue
            card.tests.append({
                "point": r.variant, "n": int(r[f"{key}_n_paired"]),
                "mean": fmt_mean_std(r, key), "p_t": fmt_p(r, key, "p_paired_t"),
                "p_holm": fmt_p(r, key, "p_holm"), "p_sign": fmt_p(r, key, "p_signflip"),
                "holm": key in HEADLINE,
            })  # fmt: skip
        for p in points:
            reasons = sub[(sub.point == p) & sub.value.isna()].reason.unique()
            if len(reasons) and sub[sub.point == p].value.isna().all():
                card.missing.append(f"{p}: {'; '.join(str(x) for x in reasons)}")
        cards.append(card)
    return cards


# ----------------------------------------------------------------------------------------------
# The conditioning audit per clip, per run
# ----------------------------------------------------------------------------------------------

AUDIT_PASSES = ("correct", "shuffled", "empty")


def audit_cards(study: Study) -> list[dict[str, Any]]:
    """Per point, per seed (at most :data:`MAX_SEEDS`): each evaluated clip's DTW-MJE with the
    correct, shuffled and empty caption, a line per clip, and the run's clustered test."""
    out = []
    for point in study.points:
        runs = [r for r in study.records if r.variant == point and r.audit.get("per_video")]
        for r in runs[:MAX_SEEDS]:
            per = r.audit["per_video"]
            n = len(per.get("correct") or [])
            recs = r.audit.get("recordings") or [""] * n
            series = {f"clip {i} ({recs[i]})": [_num((per.get(p) or [None] * n)[i])
                                                for p in AUDIT_PASSES] for i in range(n)}  # fmt: skip
            test = r.audit.get("clustered_test") or {}
            p = test.get("p")
            out.append({
                "point": point, "seed": r.seed, "href": run_href(r, "evaluation_metrics.json"),
                "svg": svg.paired_dots(["correct caption", "shuffled caption", "empty caption"],
                                       series, ylabel="DTW-MJE", marked=0, width=300, height=200),
                "p": "N/A" if p is None else f"{p:.3g}",
                "reason": "" if p is not None else str(test.get("reason") or ""),
                "recordings": test.get("n_clusters"), "clips": n,
            })  # fmt: skip
        if len(runs) > MAX_SEEDS:
            out.append({"point": point, "more": len(runs) - MAX_SEEDS})
    return out


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


# ----------------------------------------------------------------------------------------------
# Learning curves and memory, per seed
# ----------------------------------------------------------------------------------------------


def _thin(s: pd.Series) -> pd.Series:
    s = s.rolling(5, min_periods=1).mean()
    step = max(1, len(s) // CURVE_POINTS)
    return s.iloc[::step]


def curve_cards(study: Study, curves: dict[tuple[str, str], RunCurves]) -> list[dict[str, Any]]:
    """Per point: the training loss of every seed (5-step mean, thinned), and memory over time."""
    out = []
    for i, point in enumerate(study.points):
        runs = [r for r in study.records if r.variant == point]
        loss = [(f"{point}/{r.seed}", _thin(c.loss)) for r in runs[:MAX_SEEDS]
                if (c := curves.get((r.variant, r.seed))) and c.loss is not None]  # fmt: skip
        mem, kinds = [], set()
        for r in runs[:MAX_SEEDS]:
            c = curves.get((r.variant, r.seed))
            if c is None or (kind := c.memory_kind) is None:
                continue
            kinds.add(kind[1])
            g = c.memory.iloc[:: max(1, len(c.memory) // CURVE_POINTS)]
            mem.append((f"{point}/{r.seed}", list(g.elapsed_s), list(g[kind[0]] / 2**20)))
        if not loss and not mem:
            out.append({"point": point, "loss": "", "memory": "", "note": "no curves logged",
                        "anchor": anchor("curves", point), "point_anchor": anchor("point", point),
                        "hidden": 0})  # fmt: skip
            continue
        out.append({
            "point": point, "anchor": anchor("curves", point), "point_anchor": anchor("point", point),
            "note": "",
            "loss": svg.lines([(lbl, list(s.index), list(s), svg.colour(k))
                               for k, (lbl, s) in enumerate(loss)],
                              xlabel="step", ylabel="training loss (5-step mean)") if loss else "",
            "memory": svg.lines([(lbl, x, y, svg.colour(k)) for k, (lbl, x, y) in enumerate(mem)],
                                xlabel="seconds since start",
                                ylabel="memory (MiB): " + ", ".join(sorted(kinds))) if mem else "",
            "hidden": max(0, len(runs) - MAX_SEEDS), "colour": svg.colour(i),
        })  # fmt: skip
    return out
