"""The collector: every run of a study → comparison tables and a report.

Data flows one way: run dirs and ``study.json`` → records (:mod:`text2sign.study.records`, each file of
a run read at most once) → statistics (:mod:`text2sign.study.comparison`), cost
(:mod:`text2sign.study.cost`) and provenance checks (:mod:`text2sign.study.provenance`) → tables
(:mod:`text2sign.study.tables`) and report (:mod:`text2sign.study.report`). A missing, partial, corrupt
or FAILED run still yields the tables: it shows in the state column and in a warning; so does a
corrupt ``evaluation_metrics.json``. Never needs a GPU or the container.

Outputs in the study folder: ``comparison_table.{csv,md,tex}`` (one row per point),
``comparison_long.csv`` (one row per run × metric), ``report.md`` with its plots and
``report.html`` (:mod:`text2sign.study.page`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from text2sign import atomic
from text2sign.errors import UsageError
from text2sign.study import slurm_query
from text2sign.study.comparison import comparison_table, long_table
from text2sign.study.cost import cost_columns, cost_section, fmt_hours, runs_cost, study_job_ids
from text2sign.study.curves import read_all
from text2sign.study.halving_report import halving_section
from text2sign.study.page import write_page
from text2sign.study.provenance import provenance_section
from text2sign.study.records import load_study, read_json
from text2sign.study.report import findings, write_report
from text2sign.study.settle import settle
from text2sign.study.tables import latex_table, markdown_table

__all__ = ["collect", "sacct_jobs"]

log = logging.getLogger("text2sign")


def sacct_jobs(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """sacct's view of every job of the study (runs of every submission and the collector),
    asked once; {} for a study that did not run on SLURM."""
    if plan.get("executor") != "slurm" or not slurm_query.available():
        return {}
    return slurm_query.summarize(slurm_query.job_records(study_job_ids(plan)))


def collect(
    study: Path, *, plots: bool = True, html: bool = True, video_seed: int | None = None
) -> pd.DataFrame:
    """Write the tables, the long CSV, report.md (+ plots) and report.html into ``study``;
    return the table (one row per point; see
    :func:`text2sign.study.comparison.comparison_table`, plus cost columns). ``video_seed``: the
    seed whose videos report.html shows (default: each point's lowest DTW-MJE)."""
    study = Path(study)
    if not study.is_dir():
        raise UsageError(f"{study}: no such study folder")
    plan, _ = read_json(study / "study.json")
    jobs = sacct_jobs(plan or {})
    if plan:
        settle(study, plan, jobs)  # runs whose job ended before they could write it
    s = load_study(study)
    if not s.records:
        raise UsageError(f"{study}: no runs found (expected VARIANT/seedK/ run dirs or study.json)")
    bad = [r for r in s.records if r.state != "COMPLETED"]
    if bad:
        log.warning(
            "%d of %d runs are not COMPLETED: %s", len(bad), len(s.records),
            "; ".join(f"{r.variant}/{r.seed} {r.state}{': ' + r.problem if r.problem else ''}" for r in bad),
        )  # fmt: skip
    df = comparison_table(s).merge(cost_columns(s, jobs), on="variant", how="left")
    atomic.write_text(study / "comparison_table.csv", df.to_csv(index=False))
    long = long_table(s)
    atomic.write_text(study / "comparison_long.csv", long.to_csv(index=False))
    md = markdown_table(df, s.reference, s.reference_source)
    atomic.write_text(study / "comparison_table.md", md)
    atomic.write_text(study / "comparison_table.tex", latex_table(df, s.name, s.reference))
    extra = halving_section(study, jobs, plan or {}) + cost_section(s, df, jobs)
    extra += provenance_section(s)
    run_cost = {r.job_id: fmt_hours(runs_cost(jobs, s.plan, study, [(r.variant, r.seed)]))
                for r in s.records if (jobs.get(r.job_id) or {}).get("attempts")}  # fmt: skip
    curves = read_all(s.records) if plots or html else {}
    write_report(s, df, md, extra, plots=plots, run_cost=run_cost, curves=curves)
    if html:
        write_page(s, df, long, md, findings(df, s.reference), extra, run_cost=run_cost,
                   curves=curves, video_seed=video_seed)  # fmt: skip
    return df
