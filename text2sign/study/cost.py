"""What a study cost: GPU-hours (or core-hours without GPUs) from sacct, NVML usage from telemetry.

From sacct's records of every job of the study, requeued attempts included (``sacct -D``, one
call for the whole study; :mod:`text2sign.study.slurm_query`), and of every *submission*: a run
resubmitted with ``--resume-study`` keeps the jobs of its earlier submissions (:func:`run_jobs`):

- **GPU-hours** = Σ over attempts of ``ElapsedRaw`` × allocated GPUs (``AllocTRES`` gres/gpu);
- **core-hours** = Σ ``CPUTimeRAW`` (elapsed × allocated CPUs) / 3600;
- **lost**: the work after an attempt's last checkpoint, in the attempts that did not complete
  (requeued, failed, cancelled, timed out): an attempt ended by the time-limit signal (USR2 →
  checkpoint → requeue) loses only the minutes after its checkpoint, one killed before its first
  checkpoint loses all of it. The checkpoint times come from the run's ``status.json`` history
  (``checkpoint_at``, written by the trainer); without one the whole attempt counts as lost. A
  job still running is not lost yet.

The collector job's own cost is **listed separately** and never in the study's total: it is still
running while it writes the report. Mean GPU utilisation and memory come from each run's
``gpu_memory.csv`` (NVML samples of rank 0); on CPU they are N/A with the telemetry's reason.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from text2sign.study.records import RunRecord, Study, plan_runs
from text2sign.study.settle import prepare_job_ids

RUNNING = frozenset({"RUNNING", "PENDING", "SUSPENDED", "REQUEUE_HOLD", "CONFIGURING"})
Run = tuple[str, str]  # (point, "seed<k>")
#: sacct's End of a cancelled or timed-out attempt is when SLURM signalled it; the trainer
#: checkpoints after that, within KillWait. Such a checkpoint still ends the attempt's work.
END_GRACE = timedelta(seconds=300)


def run_jobs(plan: dict[str, Any] | None) -> dict[Run, list[str]]:
    """Every job id of every run, oldest first, over all submissions of the study (study.json:
    ``runs_all`` with ``job_ids``, and the ``runs`` of ``previous_submissions`` for older files)."""
    entries = [r for sub in (plan or {}).get("previous_submissions") or []
               for r in plan_runs(sub if isinstance(sub, dict) else {})]  # fmt: skip
    out: dict[Run, list[str]] = {}
    for r in [*entries, *plan_runs(plan)]:
        ids = out.setdefault((str(r["variant"]), f"seed{r['seed']}"), [])
        for j in [*(r.get("job_ids") or []), r.get("job_id")]:
            if j and str(j) not in ids:
                ids.append(str(j))
    return out


def study_job_ids(plan: dict[str, Any] | None) -> list[str]:
    """Every job sacct is asked about for a study: all runs' jobs, the prepare stage and the
    collector."""
    ids = [j for jobs in run_jobs(plan).values() for j in jobs]
    return [
        *ids,
        *prepare_job_ids(plan),
        *([str(plan["collector_job_id"])] if (plan or {}).get("collector_job_id") else []),
    ]


def checkpoint_times(run_dir: Path) -> list[datetime]:
    """When the run's attempts last checkpointed (status.json history ``checkpoint_at``)."""
    try:
        history = json.loads((Path(run_dir) / "status.json").read_text()).get("history") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [t for h in history if isinstance(h, dict) and (t := _time(h.get("checkpoint_at")))]


def _time(text: Any) -> datetime | None:
    """An ISO time (status.json: UTC; sacct: local, naive) as an aware datetime, or None."""
    try:
        return datetime.fromisoformat(str(text)).astimezone()
    except ValueError:
        return None


def lost_fraction(attempt: dict[str, Any], checkpoints: Sequence[datetime] = (),
                  until: datetime | None = None) -> float:  # fmt: skip
    """The share of an attempt's hours after its last checkpoint (0 for a COMPLETED or running
    attempt; 1 when it never checkpointed or its times are unknown). A checkpoint counts when it
    was written between the attempt's start and ``END_GRACE`` after its end (or ``until``, the
    next attempt's start, if sooner)."""
    if attempt["state"] == "COMPLETED" or attempt["state"] in RUNNING:
        return 0.0
    start, end = _time(attempt.get("start")), _time(attempt.get("end"))
    if start is None or end is None or end <= start:
        return 1.0
    limit = min(end + END_GRACE, until) if until is not None else end + END_GRACE
    kept = [t for t in checkpoints if start <= t <= limit]
    return max(end - max(kept), timedelta(0)) / (end - start) if kept else 1.0


def job_cost(jobs: dict[str, dict[str, Any]], job_ids: Iterable[str],
             checkpoints: Sequence[datetime] = ()) -> dict[str, Any]:  # fmt: skip
    """Hours of the given jobs (every attempt): ``gpu_h``, ``core_h``, their lost parts (work
    after the last checkpoint, :func:`lost_fraction`), ``attempts``, ``lost_attempts`` (attempts
    that did not complete) and ``accounted`` (how many of the jobs sacct knows)."""
    out = {"gpu_h": 0.0, "core_h": 0.0, "lost_gpu_h": 0.0, "lost_core_h": 0.0, "attempts": 0,
           "lost_attempts": 0, "accounted": 0}  # fmt: skip
    for job in dict.fromkeys(str(j) for j in job_ids if j):
        attempts = (jobs.get(job) or {}).get("attempts")
        if attempts is None:
            continue
        out["accounted"] += 1
        for i, a in enumerate(attempts):
            gpu_h, core_h = a["elapsed_s"] * a["gpus"] / 3600, a["cpu_s"] / 3600
            nxt = _time(attempts[i + 1].get("start")) if i + 1 < len(attempts) else None
            lost = lost_fraction(a, checkpoints, nxt)
            out["gpu_h"] += gpu_h
            out["core_h"] += core_h
            out["lost_gpu_h"] += gpu_h * lost
            out["lost_core_h"] += core_h * lost
            out["attempts"] += 1
            out["lost_attempts"] += a["state"] != "COMPLETED" and a["state"] not in RUNNING
    return out


def runs_cost(jobs: dict[str, dict[str, Any]], plan: dict[str, Any], study: Path,
              runs: Iterable[Run] | None = None) -> dict[str, Any]:  # fmt: skip
    """:func:`job_cost` summed over runs (all of the study's, or ``runs``), every submission."""
    every = run_jobs(plan)
    total = job_cost({}, [])
    for run in every if runs is None else runs:
        c = job_cost(jobs, every.get(run, []), checkpoint_times(Path(study) / run[0] / run[1]))
        total = {k: total[k] + c[k] for k in total}
    return total


def unit(cost: dict[str, Any]) -> str:
    """``GPU-h`` when any attempt held a GPU, else ``core-h``."""
    return "GPU-h" if cost["gpu_h"] > 0 else "core-h"


def hours(cost: dict[str, Any]) -> tuple[float, float]:
    """(hours, lost hours) in :func:`unit`."""
    return (cost["gpu_h"], cost["lost_gpu_h"]) if unit(cost) == "GPU-h" else (
        cost["core_h"], cost["lost_core_h"])  # fmt: skip


def fmt_hours(cost: dict[str, Any]) -> str:
    h, lost = hours(cost)
    text = f"{h:.3g} {unit(cost)}"
    return text + (f" ({lost / h:.0%} lost)" if h and lost else "")


def nvml_usage(rec: RunRecord) -> tuple[float, float, str]:
    """(mean GPU utilisation %, mean GPU memory used MiB, "" or why N/A) of rank 0's NVML samples.

    Read with the csv module: a study has one file per run, mostly small, where pandas' per-file
    overhead (~1 ms) dominated the collector."""
    telemetry = rec.metadata.get("telemetry")
    why = str(telemetry.get("reason") or "") if isinstance(telemetry, dict) else ""
    sums, counts = [0.0, 0.0], [0, 0]
    try:
        with open(rec.path / "gpu_memory.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                for i, col in enumerate(("utilization_percent", "memory_used_bytes")):
                    try:
                        x = float(row.get(col) or "nan")
                    except ValueError:
                        continue
                    if not math.isnan(x):
                        sums[i], counts[i] = sums[i] + x, counts[i] + 1
    except FileNotFoundError:
        return math.nan, math.nan, why or "no gpu_memory.csv"
    except (OSError, UnicodeDecodeError, csv.Error):
        return math.nan, math.nan, "unreadable gpu_memory.csv"
    u, m = (s / c if c else math.nan for s, c in zip(sums, counts, strict=True))
    m /= 2**20  # NaN stays NaN: no column, or no reading in it
    if math.isnan(u) and math.isnan(m):
        return u, m, why or "no NVML samples (no GPU)"
    return u, m, ""


def cost_columns(study: Study, jobs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per point: ``core_hours``, ``gpu_hours``, ``lost_share`` (of the hours in ``cost_unit``),
    ``attempts``, ``lost_attempts``, ``gpu_util_percent``, ``gpu_memory_mib`` and ``cost_note``."""
    rows = []
    for point in study.points:
        runs = [r for r in study.records if r.variant == point]
        c = runs_cost(jobs, study.plan, study.path, [(r.variant, r.seed) for r in runs])
        h, lost = hours(c)
        usage = [nvml_usage(r) for r in runs if r.path.is_dir()]
        utils = [u for u, _, _ in usage if not math.isnan(u)]
        mems = [m for _, m, _ in usage if not math.isnan(m)]
        notes = []
        if not c["accounted"]:
            notes.append(no_accounting(study))
        elif c["accounted"] < len(runs):
            notes.append(f"sacct knows {c['accounted']} of {len(runs)} jobs")
        if not utils and not mems:
            notes.append(
                "NVML: " + ("; ".join(dict.fromkeys(w for *_, w in usage if w)) or "no run dir")
            )
        rows.append({
            "variant": point, "core_hours": c["core_h"] if c["accounted"] else math.nan,
            "gpu_hours": c["gpu_h"] if c["accounted"] else math.nan, "cost_unit": unit(c),
            "lost_share": lost / h if h else math.nan, "attempts": c["attempts"],
            "lost_attempts": c["lost_attempts"],
            "gpu_util_percent": sum(utils) / len(utils) if utils else math.nan,
            "gpu_memory_mib": sum(mems) / len(mems) if mems else math.nan,
            "cost_note": "; ".join(notes),
        })  # fmt: skip
    return pd.DataFrame(rows)


def no_accounting(study: Study) -> str:
    if study.plan.get("executor") != "slurm":
        return "no SLURM accounting (not a SLURM study)"
    return "sacct has no record of its jobs"


def study_cost(study: Study, jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The study's total (its runs' jobs, every submission) and, separately, the collector's."""
    total = runs_cost(jobs, study.plan, study.path)
    collector = job_cost(jobs, [study.plan.get("collector_job_id")])
    prepare = job_cost(jobs, prepare_job_ids(study.plan))
    return {"runs": total, "collector": collector, "prepare": prepare}


def cost_section(study: Study, df: pd.DataFrame, jobs: dict[str, dict[str, Any]]) -> list[str]:
    """The report's "Cost" section (Markdown lines)."""
    s = study_cost(study, jobs)
    out = ["## Cost\n"]
    if not s["runs"]["accounted"]:
        return [*out, f"Not available: {no_accounting(study)}.\n"]
    total, lost = hours(s["runs"])
    u = unit(s["runs"])
    out.append(
        f"The study's runs used **{total:.4g} {u}**"
        + (f" ({s['runs']['core_h']:.4g} core-hours)" if u == "GPU-h" else "")
        + f" over {s['runs']['attempts']} attempts; {lost / total if total else 0:.0%} of it "
        f"({lost:.3g} {u}) was lost: the work after the last checkpoint of the "
        f"{s['runs']['lost_attempts']} attempts that did not complete (requeues, failures, "
        "cancellations; a requeue after its checkpoint loses only the minutes after it). "
        "From sacct (`-D`: every attempt, every submission): "
        "GPU-hours = elapsed × allocated GPUs, core-hours = `CPUTimeRAW` / 3600. "
        + ("The collector job's own cost is excluded (it is still running): "
           f"{fmt_hours(s['collector'])} so far." if s["collector"]["accounted"] else
           "The collector job's own cost is excluded.")
        + (f" The prepare stage (decoding and keypoints, shared by every run) used "
           f"{fmt_hours(s['prepare'])}, not included above." if s["prepare"]["accounted"] else "")
        + "\n"
    )  # fmt: skip
    out += ["| variant | GPU-h | core-h | lost | attempts | mean GPU util | mean GPU memory | note |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for _, r in df.iterrows():
        util = "N/A" if math.isnan(r.gpu_util_percent) else f"{r.gpu_util_percent:.0f} %"
        mem = "N/A" if math.isnan(r.gpu_memory_mib) else f"{r.gpu_memory_mib:.0f} MiB"
        lost_s = "n/a" if math.isnan(r.lost_share) else f"{r.lost_share:.0%}"
        gpu_h, core_h = (
            "N/A" if math.isnan(x) else f"{x:.3g}" for x in (r.gpu_hours, r.core_hours)
        )
        out.append(f"| {r.variant} | {gpu_h} | {core_h} | {lost_s} | "
                   f"{int(r.attempts)} ({int(r.lost_attempts)} interrupted) | {util} | {mem} | "
                   f"{r.cost_note} |")  # fmt: skip
    return [*out, ""]


def status_footer(plan: dict[str, Any], jobs: dict[str, dict[str, Any]], study: Path) -> str:
    """``make status``'s cost line: the study so far (every submission) and the collector."""
    runs = runs_cost(jobs, plan, study)
    if not runs["accounted"]:
        return "cost: no sacct records yet"
    collector = job_cost(jobs, [plan.get("collector_job_id")])
    text = f"cost so far: {fmt_hours(runs)} over {runs['attempts']} attempts"
    if collector["accounted"]:
        text += f"; collector (not included): {fmt_hours(collector)}"
    return text
