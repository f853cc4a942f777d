"""The collector: every run of a study → comparison tables and a report.

Reads ``results/<study>/<variant>/seed<k>/`` run dirs (and ``study.json`` when present, to list
runs that never started), each file of a run at most once. A missing, partial, corrupt or FAILED
run still yields the tables: it shows in the state column and in a warning; so does a corrupt
``evaluation_metrics.json``. Never needs a GPU or the container.

Outputs in the study folder: ``comparison_table.{csv,md,tex}`` (see :mod:`text2sign.stats_table`)
and ``report.md`` with its plots (see :mod:`text2sign.report`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from text2sign import atomic
from text2sign.errors import UsageError
from text2sign.settle import settle
from text2sign.stats_table import (
    BASELINE,
    SUMMARY_METRICS,
    comparison_table,
    latex_table,
    markdown_table,
)

__all__ = ["BASELINE", "SUMMARY_METRICS", "RunRecord", "collect", "comparison_table",
           "discover", "latex_table", "markdown_table"]  # fmt: skip

log = logging.getLogger("text2sign")


@dataclass
class RunRecord:
    """What the collector knows about one run dir, read once."""

    variant: str
    seed: str
    path: Path
    state: str
    problem: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)  # metric → value (None: N/A)
    eval_reasons: dict[str, str] = field(default_factory=dict)  # metric → why it is N/A
    eval_problem: str = ""  # why evaluation_metrics.json gave nothing ("" when it was read)
    weights: str = ""  # "ema" | "raw" | "" (unknown): evaluation_metrics.json, else samples
    samples: dict[str, Any] = field(default_factory=dict)  # samples/index.json


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"no {path.name}"
    except (OSError, ValueError) as e:
        return None, f"corrupt {path.name} ({type(e).__name__})"
    return (obj, "") if isinstance(obj, dict) else (None, f"corrupt {path.name} (not an object)")


def _read_evaluation(rec: RunRecord) -> None:
    """Fill ``rec.evaluation``/``eval_reasons`` from evaluation_metrics.json; warn if corrupt."""
    ev, rec.eval_problem = _read_json(rec.path / "evaluation_metrics.json")
    metrics = (ev or {}).get("metrics")
    if ev is not None and not isinstance(metrics, dict):
        ev, rec.eval_problem = None, "corrupt evaluation_metrics.json (no metrics object)"
    if rec.eval_problem.startswith("corrupt"):
        log.warning("%s/%s: %s: its evaluation metrics are N/A", rec.variant, rec.seed,
                    rec.eval_problem)  # fmt: skip
    if ev is None:
        return
    for key, entry in metrics.items():
        entry = entry if isinstance(entry, dict) else {"value": entry}
        value = entry.get("value")
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        rec.evaluation[key] = value if ok else None
        if not ok:
            rec.eval_reasons[key] = str(entry.get("reason") or "no value")
    rec.weights = str(ev.get("weights") or "")


def discover(study: Path) -> list[RunRecord]:
    """Every run dir below ``study`` plus the runs ``study.json`` expected but that never wrote."""
    expected: set[tuple[str, str]] = set()
    plan, _ = _read_json(study / "study.json")
    for run in (plan or {}).get("runs_all") or (plan or {}).get("runs", []):
        expected.add((str(run["variant"]), f"seed{run['seed']}"))
    found = {(p.parent.name, p.name) for p in study.glob("*/seed*") if p.is_dir()}

    def order(vs: tuple[str, str]) -> tuple[str, int, str]:  # seed2 before seed10
        digits = vs[1].removeprefix("seed")
        return vs[0], int(digits) if digits.isdigit() else 1 << 30, vs[1]

    records = []
    for variant, seed in sorted(found | expected, key=order):
        path = study / variant / seed
        if not path.is_dir():
            records.append(RunRecord(variant, seed, path, "MISSING", "run dir was never created"))
            continue
        status, problem = _read_json(path / "status.json")
        state = (status or {}).get("state", "CORRUPT" if "corrupt" in problem else "MISSING")
        summary, sproblem = _read_json(path / "summary.json")
        rec = RunRecord(variant, seed, path, state, problem or (status or {}).get("reason", ""))
        rec.summary = summary or {}
        if state == "COMPLETED" and summary is None:
            rec.state, rec.problem = "PARTIAL", sproblem
        if rec.state == "COMPLETED":
            _read_evaluation(rec)
            rec.samples = _read_json(path / "samples" / "index.json")[0] or {}
            rec.weights = rec.weights or str(rec.samples.get("weights") or "")
        records.append(rec)
    return records


def collect(study: Path, *, plots: bool = True) -> pd.DataFrame:
    """Write comparison_table.{csv,md,tex} and report.md (+ plots) into ``study``; return the
    table (one row per variant; see :func:`text2sign.stats_table.comparison_table`)."""
    from text2sign.report import write_report

    study = Path(study)
    if not study.is_dir():
        raise UsageError(f"{study}: no such study folder")
    plan, _ = _read_json(study / "study.json")
    if plan:
        settle(study, plan)  # runs whose job ended before they could write it: ask sacct
    records = discover(study)
    if not records:
        raise UsageError(f"{study}: no runs found (expected VARIANT/seedK/ run dirs or study.json)")
    bad = [r for r in records if r.state != "COMPLETED"]
    if bad:
        log.warning(
            "%d of %d runs are not COMPLETED: %s", len(bad), len(records),
            "; ".join(f"{r.variant}/{r.seed} {r.state}{': ' + r.problem if r.problem else ''}" for r in bad),
        )  # fmt: skip
    df = comparison_table(records)
    atomic.write_text(study / "comparison_table.csv", df.to_csv(index=False))
    md = markdown_table(df)
    atomic.write_text(study / "comparison_table.md", md)
    atomic.write_text(study / "comparison_table.tex", latex_table(df, study.resolve().name))
    write_report(study, records, df, md, plots=plots)
    return df
