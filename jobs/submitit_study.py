"""Submit a planned study through submitit: ``jobs/submit.py``'s door (``make submit``, ``make demo``).

Under the study's claim (:func:`jobs.study.claimed`) the code is frozen (:mod:`jobs.snapshot`),
then:

* on SLURM, one job array per resource group (:func:`jobs.sbatch_params.groups`) of
  :class:`jobs.launcher.TrainJob`, and the :class:`jobs.launcher.CollectJob` with
  ``dependency=afterany:<arrays>``. When a later ``sbatch`` fails (a second array, the collector,
  a QOS submit limit) the arrays already queued are recorded in study.json (their pickles stay
  under ``STUDY/submitit/``), so ``make cancel`` and ``--resume-study`` find them; the error is
  one line that says what was queued;
* locally, the very same job functions as subprocesses, a few at a time, then the collector.

The submitting shell's ``OMP_NUM_THREADS`` (``make`` sets one for its own processes) is not
passed into SLURM jobs: a job's threads come from its allocation (:mod:`text2sign.runtime.threads`).
Local jobs share this machine's CPUs: each gets its share as ``OMP_NUM_THREADS``.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import submitit

from jobs import record, snapshot
from jobs.decider import DecideJob, run_decider, train_arrays, write_plan
from jobs.launcher import CollectJob, PrepareJob, TrainJob
from jobs.sbatch_params import job_environment, prepare_dependency, slurm_parameters
from jobs.spec import REPO, PlannedRun, StudyPlan
from jobs.study import claimed
from text2sign.errors import UsageError
from text2sign.run.rundir import RunDir


def _executor(p: StudyPlan):
    """submitit's AutoExecutor for the chosen cluster; job folders under the study."""

    return submitit.AutoExecutor(folder=p.dir / "submitit" / "%j", cluster=p.executor)


def submit(p: StudyPlan, *, local_parallel: int | None = None) -> dict[str, Any]:
    """Submit the runs (one array per resource group) and the collector; write study.json."""
    with claimed(p):
        snapshot.build(p.code, REPO)  # before any job exists: they all import from it
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(p.code_dir), os.environ.get("PYTHONPATH")])
        )
        rec = record.study_record(p)
        if p.halving:  # what the deciders read (jobs/decider.py)
            write_plan(p)
            rec["halving"] = {**p.halving, "rungs": []}
        if p.executor == "slurm":
            return _submit_slurm(p, rec)
        return _submit_local(p, rec, local_parallel)


def _submit_slurm(p: StudyPlan, rec: dict[str, Any]) -> dict[str, Any]:
    environ = dict(os.environ)
    os.environ.clear()
    os.environ.update(job_environment(environ))  # what sbatch --export=ALL passes into the jobs
    array_ids: list[str] = []
    kp_ids: list[str] = []
    chatter = io.StringIO()  # submitit prints sbatch's stderr itself: the error says it once
    try:
        with contextlib.redirect_stderr(chatter):
            if p.prepare:  # real data: the prepare stage first (jobs/prepare.py)
                ex = _executor(p)
                native = slurm_parameters(p.runs[0].slurm, job_name=f"t2s-{p.name}-prepare",
                                          code=p.code_dir, prepare=True)  # fmt: skip
                ex.update_parameters(**{f"slurm_{k}": v for k, v in native.items()})
                with ex.batch():
                    kjobs = [ex.submit(PrepareJob(), k) for k in p.prepare]
                kp_ids.append(kjobs[0].job_id.split("_")[0])  # what the runs wait for
                rec.update(prepare_job_ids=[j.job_id for j in kjobs])  # one per task
            for array in train_arrays(p.runs, lambda: _executor(p), f"t2s-{p.name}", p.code_dir,
                                      prepare_dependency(kp_ids)):  # fmt: skip
                array_ids.append(array)  # one by one: a later refusal must not lose it
            ex = _executor(p)
            native = slurm_parameters(p.runs[0].slurm, job_name=f"t2s-{p.name}-collect",
                                      collector=True, code=p.code_dir, mail_user=p.mail_user)  # fmt: skip
            native["additional_parameters"]["dependency"] = "afterany:" + ":".join(
                [*kp_ids, *array_ids]
            )
            ex.update_parameters(**{f"slurm_{k}": v for k, v in native.items()})
            if p.halving:  # rung 0's decider instead: the last rung's submits the collector
                native["job_name"] = f"t2s-{p.name}-decide0"
                ex.update_parameters(slurm_job_name=native["job_name"])
                decider = ex.submit(DecideJob(), str(p.dir.resolve()), 0).job_id
                rec["halving"]["rungs"] = [{"rung": 0, "points": sorted({r.spec.name for r in p.runs}),
                                            "array_job_ids": array_ids, "decider_job_id": decider}]  # fmt: skip
                collector = None
            else:
                collector = ex.submit(CollectJob(), str(p.dir.resolve())).job_id
    except Exception as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        if not array_ids and not kp_ids:
            raise UsageError(f"sbatch refused the job: {why}") from None
        p.runs = [r for r in p.runs if r.job_id]  # study.json: what did reach SLURM
        rec.update(array_job_ids=array_ids, collector_job_id=None)
        record.write_runs(p, rec)
        raise UsageError(
            f"sbatch refused a later job ({why}); already queued and recorded in "
            f"{p.dir}/study.json: arrays {', '.join(array_ids)} ({len(p.runs)} runs), no "
            f"collector: make cancel STUDY={p.name}, or --resume-study once fixed"
        ) from None
    finally:
        os.environ.clear()
        os.environ.update(environ)
    rec.update(array_job_ids=array_ids, collector_job_id=collector)
    record.write_runs(p, rec)
    return rec


def _submit_local(p: StudyPlan, rec: dict[str, Any], local_parallel: int | None) -> dict[str, Any]:
    """The very same job functions as subprocesses, a few at a time, then the collector."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parallel = local_parallel or max(1, min(p.runs[0].slurm.array_parallelism, cpus or 1))
    os.environ["OMP_NUM_THREADS"] = str(max(1, (cpus or 1) // parallel))  # this machine, shared
    ex = _executor(p)
    ex.update_parameters(timeout_min=p.runs[0].slurm.time_min, tasks_per_node=1, nodes=1)
    pending = list(p.runs)
    record.write_runs(p, rec)
    failed = _local_prepare(p, ex)
    if failed:  # no run starts: each says why, the collector reports them
        rec["prepare_failed"] = failed
        for r in pending:
            run = RunDir(r.spec.run_dir)
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_status("FAILED", reason=f"not started: {failed}", cause="dependency")
        pending = []
    _local_waves(p, rec, ex, pending, parallel)
    if p.halving and not failed:
        rec["halving"]["rungs"] = [{"rung": 0, "points": sorted({r.spec.name for r in p.runs}),
                                    "local": True}]  # fmt: skip

        def local_rung(runs: list[PlannedRun], nxt: int, last: bool) -> dict[str, Any]:
            """The same decider; its next rung as local waves, recorded like the first."""
            where = {(r.spec.name, r.spec.seed): i for i, r in enumerate(p.runs)}
            for r in runs:
                p.runs[where[(r.spec.name, r.spec.seed)]] = r
            rec["halving"]["rungs"].append({"rung": nxt, "local": True,
                                            "points": sorted({r.spec.name for r in runs})})  # fmt: skip
            _local_waves(p, rec, ex, runs, parallel)
            return {"array_job_ids": [], "local": True}

        for rung in range(len(p.halving["rungs"]) - 1):
            run_decider(p.dir, rung, local_rung)
    collector = ex.submit(CollectJob(), str(p.dir.resolve()))
    rec["collector_job_id"] = collector.job_id
    record.write_runs(p, rec)
    collector.wait()
    rec["failed_runs"] = [f"{r.spec.name}/seed{r.spec.seed}" for r in p.runs
                          if RunDir(r.spec.run_dir).read_status().get("state") != "COMPLETED"]  # fmt: skip
    return rec


def _local_waves(p: StudyPlan, rec: dict[str, Any], ex, pending: list[PlannedRun],
                 parallel: int) -> None:  # fmt: skip
    """Local runs, ``parallel`` at a time; study.json gets each job id as it starts."""
    while pending:
        wave, pending = pending[:parallel], pending[parallel:]
        jobs = [ex.submit(TrainJob(), r.spec) for r in wave]
        for r, job in zip(wave, jobs, strict=True):
            r.job_id = job.job_id
        record.write_runs(p, rec)
        for job in jobs:
            job.wait()


def _local_prepare(p: StudyPlan, ex) -> str:
    """The prepare stage as local jobs, before any run: "" when it succeeded, else what failed."""
    for spec in p.prepare:
        job = ex.submit(PrepareJob(), spec)
        try:
            job.result()
        except Exception:
            return (f"preparing {spec.label} failed (local job {job.job_id}; log: "
                    f"{job.paths.stderr})")  # fmt: skip
    return ""
