"""A rung's results, read from its run dirs for the halving rule (:mod:`text2sign.study.halving`).

A run stopped at a rung's budget keeps that rung's evaluation in ``RUN/rungs/step<N>/``
(:mod:`text2sign.training.rung`). The metric is read per clip where the evaluation records it
(DTW-MJE: ``audit.per_video.correct`` with each clip's recording), else as the run's one value
(``metrics.<metric>`` of the evaluation, or ``summary.json`` for a training metric such as
``final_loss``). A run without the value is missing evidence, with the reason why.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from text2sign.study.halving import Clip, RunValue
from text2sign.study.metric_specs import EVAL_METRICS, SUMMARY_METRICS

PER_CLIP = {"dtw_mje": "correct"}  # metric → the audit pass whose per-clip values it averages


def direction(metric: str) -> str:
    """``lower`` or ``higher``; a metric whose direction is not known cannot rank points."""
    spec = SUMMARY_METRICS.get(metric) or EVAL_METRICS.get(metric)
    if spec is None or spec.better is None:
        known = [k for k, m in {**SUMMARY_METRICS, **EVAL_METRICS}.items() if m.better]
        raise ValueError(f"metric {metric!r} has no known direction; use one of {', '.join(known)}")
    return spec.better


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_value(run_dir: Path, step: int, metric: str) -> RunValue:
    """One run's value of ``metric`` at the rung that stopped it at ``step``."""
    status = _read(run_dir / "status.json") or {}
    state, at = status.get("state", "no status"), status.get("step")
    ev = _read(run_dir / "rungs" / f"step{step}" / "evaluation_metrics.json")
    if ev is None and (state != "COMPLETED" or at != step):  # a rung evaluation stays valid
        why = status.get("reason") or "no reason"  # when the run went on (a resubmission)
        return RunValue(None, reason=f"run {state} at step {at} (not the rung's {step}): {why}")
    if metric in SUMMARY_METRICS:
        if at != step:
            return RunValue(None, reason=f"{metric}: summary.json is at step {at}, not {step}")
        v = (_read(run_dir / "summary.json") or {}).get(metric)
        ok = isinstance(v, int | float) and math.isfinite(v)
        return (
            RunValue(float(v), reason="")
            if ok
            else RunValue(None, reason=f"no {metric} in summary.json")
        )
    if ev is None:
        return RunValue(None, reason=f"no rung evaluation at step {step} (it failed or was cut)")
    m = (ev.get("metrics") or {}).get(metric) or {}
    if m.get("value") is None:
        return RunValue(None, reason=f"{metric} N/A: {m.get('reason') or 'not measured'}")
    clips: tuple[Clip, ...] = ()
    if metric in PER_CLIP:
        audit = ev.get("audit") or {}
        values = (audit.get("per_video") or {}).get(PER_CLIP[metric]) or []
        names = (ev.get("clips") or {}).get("names") or []
        recs = audit.get("recordings") or []
        if len(values) == len(names) == len(recs):
            clips = tuple(Clip(n, r, float(v)) for n, r, v in zip(names, recs, values, strict=True)
                          if v is not None and math.isfinite(float(v)))  # fmt: skip
    return RunValue(float(m["value"]), clips)


def rung_values(
    study_dir: Path, runs: list[tuple[str, int, str]], step: int, metric: str
) -> dict[str, dict[int, RunValue]]:
    """point → seed → value, for ``runs`` = (point, seed, run dir relative to the study)."""
    out: dict[str, dict[int, RunValue]] = {}
    for point, seed, rel in runs:
        out.setdefault(point, {})[seed] = run_value(Path(study_dir) / rel, step, metric)
    return out
