"""The collector's last word: runs whose SLURM job ended before the run could say how.

A job cancelled while pending, killed with its node, or ended by SLURM while the launcher itself
was killed leaves ``status.json`` at PENDING/RUNNING/PREEMPTED (or no run dir at all). After the
jobs have ended (the collector runs ``afterany``), sacct knows how each ended; this module writes
that into the run's ``status.json``, with a reason saying where it came from. It never writes into
a run dir that a trainer holds (the run-dir lock) or that holds another config, nor anywhere but
``STUDY/<point>/seed<k>``: study.json's ``run_dir`` may come from someone else's study.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from text2sign.run.rundir import TERMINAL, RunDir
from text2sign.run.runlock import RunLock
from text2sign.study import slurm_query

log = logging.getLogger("text2sign")

# SLURM's final job state → the run state it means when the run itself wrote nothing.
RUN_STATE = {
    "CANCELLED": "CANCELLED",
    "TIMEOUT": "TIMEOUT",
    "DEADLINE": "TIMEOUT",
    "PREEMPTED": "CANCELLED",
}  # fmt: skip  (everything else: FAILED)


def settle(study: Path, plan: dict[str, Any], jobs: dict[str, dict[str, Any]] | None = None) -> int:
    """Write the ending of every run of ``plan`` (study.json) whose job has ended silently.

    ``jobs`` is sacct's view (:func:`text2sign.study.slurm_query.summarize`) when the caller already
    asked for the whole study; else sacct is asked for the open runs. Returns how many runs were
    settled. Without SLURM (a local study) there is nothing to ask.
    """
    if plan.get("executor") != "slurm" or not slurm_query.available():
        return 0
    runs = [r for r in plan.get("runs_all") or plan.get("runs", []) if _inside(study, r)]
    open_runs = [r for r in runs
                 if RunDir(study / r["run_dir"]).read_status().get("state") not in TERMINAL]  # fmt: skip
    if not open_runs:
        return 0
    if jobs is None:
        jobs = slurm_query.summarize(slurm_query.job_records([r.get("job_id") for r in open_runs]))
    blocked = _prepare_failure(study, plan)
    settled = 0
    for r in open_runs:
        job = jobs.get(str(r.get("job_id")))
        if not job or job["state"] not in slurm_query.ENDED:
            continue
        if _write(RunDir(study / r["run_dir"]), r.get("config_hash", ""), job, blocked):
            settled += 1
    return settled


def prepare_job_ids(plan: dict[str, Any] | None) -> list[str]:
    """The study's prepare tasks (studies from before the stage was named prepare list
    ``keypoints_job_ids``)."""
    plan = plan or {}
    return [str(j) for j in plan.get("prepare_job_ids") or plan.get("keypoints_job_ids") or []]


def _prepare_failure(study: Path, plan: dict[str, Any]) -> str:
    """Why the runs never started, when the study's prepare stage failed ("" when it did not):
    SLURM cancels the training arrays that wait for it (``afterok``, ``--kill-on-invalid-dep``)."""
    ids = prepare_job_ids(plan)
    records = slurm_query.summarize(slurm_query.job_records(ids)) if ids else {}
    bad = sorted((j, rec["state"]) for j, rec in records.items()
                 if rec["state"] in slurm_query.ENDED and rec["state"] != "COMPLETED")  # fmt: skip
    if not bad:
        return ""
    job, state = bad[0]
    logs = study / "submitit" if (study / "submitit").is_dir() else study
    return (
        f"not started: the prepare job {job} ended {state} (decoding and the references' "
        f"keypoints; its log is in {logs}), so SLURM cancelled the training job"
    )


def _inside(study: Path, run: dict[str, Any]) -> bool:
    """study.json's ``run_dir`` names a run dir of this study (``<point>/seed<k>``), no more."""
    rel = Path(str(run.get("run_dir", "")))
    ok = (len(rel.parts) == 2 and rel.parts[1].startswith("seed") and ".." not in rel.parts
          and not rel.is_absolute()
          and (study / rel).resolve().parent.parent == Path(study).resolve())  # fmt: skip
    if not ok:
        log.warning("%s/study.json: run_dir %r is not a run dir of the study: left alone", study,
                    str(rel))  # fmt: skip
    return ok


def _write(run: RunDir, config_hash: str, job: dict[str, Any], blocked: str = "") -> bool:
    if run.config_hash.exists() and run.config_hash.read_text().strip() != config_hash:
        return False
    lock = RunLock(run.path)
    if not lock.try_acquire():
        return False
    try:
        status = run.read_status()
        if status.get("state") in TERMINAL:
            return False
        state = RUN_STATE.get(job["state"], "FAILED")
        where = f" on {job['nodes'][-1]}" if job.get("nodes") else ""
        seen = status.get("state", "no status")
        reason = (f"job {job['state']} in SLURM{where} (sacct) while the run was {seen} at step "
                  f"{status.get('step', 0)}; the run could not write its own ending")  # fmt: skip
        if blocked and job["state"] == "CANCELLED" and not status:  # never started
            run.write_status("FAILED", reason=blocked, cause="dependency")
            log.warning("%s: %s", run.path, blocked)
            return True
        run.write_status(state, reason=reason, cause="cancel" if state == "CANCELLED" else "crash")
        log.warning("%s: %s", run.path, reason)
        return True
    finally:
        lock.release()
