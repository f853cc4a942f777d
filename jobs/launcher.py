"""The submitit job functions: run on the compute node, *host side* (where scontrol exists).

``TrainJob`` runs one run (variant × seed) as a child process, in the container or not:

    [apptainer exec --nv --bind RESULTS,DATA,HF_CACHE:/hf_cache IMAGE.sif] python -m text2sign train ...

(the container side, binds and image checks: ``jobs/container.py``).

* One SLURM task per GPU (srun, started by submitit). The torch.distributed variables come from
  SLURM through submitit's ``TorchDistributedEnvironment``, so multi-node DeepSpeed works.
* Timeout/preemption: SLURM sends USR2 (``--signal=USR2@<lead>``) to every process of the job;
  submitit calls ``checkpoint()`` on task 0, which forwards the signal to the trainer, waits for
  its "checkpointed" exit (75) and runs ``scontrol requeue`` itself, here on the host (an
  Apptainer image has no scontrol), at most ``slurm.max_requeues`` times per submission; the run
  says PREEMPTED only once SLURM accepted (a refusal, e.g. ``--no-requeue``, ends it TIMEOUT with
  SLURM's words). The requeued job resumes from the run dir.
* ``scancel`` sends SIGTERM: the trainer checkpoints and ends CANCELLED; nothing requeues it.
* A crash (not exit 2, not a NaN, not a cancel) is retried ``slurm.max_retries`` times on
  another node (``scontrol requeue`` + ``ExcNodeList``). What the trainer could not write
  (SIGKILL, OOM killer, segfault) task 0's launcher writes; see :mod:`jobs.ending`.
* A COMPLETED run is not retrained when its job runs again; one whose evaluation never ran (the
  time limit hit during it) is evaluated.
* Several tasks: srun ``--kill-on-bad-exit``; a task other than 0 whose trainer dies says so
  (``RUN/.task-failure.json``), task 0's launcher stops its own trainer at once (instead of
  waiting in a collective until the process-group timeout) and retries the job without the
  failed task's node.

The trainer process and its signals are a :class:`jobs.supervisor.Supervisor`, which the
plain-sbatch entry point (``jobs/sbatch_job.py``) uses too: both paths end runs the same way.

``PrepareJob`` runs a task of the prepare stage (real data, before training);
``CollectJob`` runs the collector (no GPU, no container).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import submitit

from jobs import ending, prepare_job
from jobs.spec import (
    JobContext,
    PrepareSpec,
    RunSpec,
    build_command,
    describe,
    finished,
    trainer_env,
)
from jobs.supervisor import Supervisor
from text2sign.errors import EXIT_REQUEUE
from text2sign.run.rundir import RunDir

#: A task other than 0 whose trainer died waits this long for task 0 to end the job (requeue or
#: fail) before it exits itself (then srun's --kill-on-bad-exit ends the job).
TASK_FAILURE_WAIT_S = 120.0


class TrainJob(submitit.helpers.Checkpointable):
    """One run as a submitit job: starts the trainer through a :class:`Supervisor`, which
    writes how the run ended when the trainer could not (see :mod:`jobs.ending`): requeue on
    USR2, retry after a crash. ``jobs/sbatch_job.py`` is the same for plain sbatch."""

    def __init__(self) -> None:
        self._sup: Supervisor | None = None
        self._job_id: str | None = None

    def __call__(self, spec: RunSpec) -> dict[str, Any]:
        if finished(spec):  # a rerun of a finished job (e.g. --resume-study): nothing to do
            return {"run_dir": spec.run_dir, "state": "COMPLETED", "skipped": True}
        job_env = submitit.JobEnvironment()
        env = trainer_env(spec, dict(os.environ))
        if job_env.num_tasks > 1:
            dist = submitit.helpers.TorchDistributedEnvironment()
            env.update(
                MASTER_ADDR=dist.master_addr, MASTER_PORT=str(dist.master_port),
                RANK=str(dist.rank), WORLD_SIZE=str(dist.world_size),
                LOCAL_RANK=str(dist.local_rank), LOCAL_WORLD_SIZE=str(dist.local_world_size),
            )  # fmt: skip
        argv = build_command(spec)
        node = os.environ.get("SLURMD_NODENAME", job_env.hostname)
        slurm_job = job_env.job_id if job_env.cluster == "slurm" else None
        self._job_id = slurm_job
        restart = os.environ.get("SLURM_RESTART_COUNT", "0")
        print(f"[launcher] task {job_env.global_rank}/{job_env.num_tasks} on {node}: "
              f"{describe(argv)}", flush=True)  # fmt: skip
        self._sup = sup = Supervisor(spec)
        sup.start(argv, env, spec.workdir)
        if job_env.global_rank != 0:  # rank 0's launcher alone speaks for the run
            rc = sup.wait()
            assert rc is not None
            if rc not in (0, EXIT_REQUEUE):
                what = ending.describe_exit(rc, list(sup.stderr_tail))
                ending.report_task_failure(spec, job_env.global_rank, node, slurm_job, restart,
                                           what)  # fmt: skip
                time.sleep(TASK_FAILURE_WAIT_S)
                raise RuntimeError(f"trainer (task {job_env.global_rank}) exited with {rc}")
            return {"run_dir": spec.run_dir}
        failed = None

        def peer_failed() -> bool:
            nonlocal failed
            failed = (
                ending.task_failure(spec, slurm_job, restart) if job_env.num_tasks > 1 else None
            )
            return failed is not None

        rc = sup.wait(interrupt=peer_failed)
        if rc is None:  # another task's trainer died: ours waits in a collective for nothing
            print(f"[launcher] task {failed[0]} on {failed[1]} failed: stopping task 0's trainer",
                  flush=True)  # fmt: skip
            rc = sup.kill()
            rc = -9 if rc is None else rc
        ctx = JobContext(
            job_id=slurm_job, node=node, log=str(job_env.paths.stderr).replace("%t", "0"),
            stderr_tail=list(sup.stderr_tail), failed=failed,
        )  # fmt: skip
        end = sup.finish(rc, ctx)
        state = RunDir(spec.run_dir).read_status().get("state")
        if state != "COMPLETED" and end.action == "none":
            raise RuntimeError(f"run {state}: {end.reason or f'trainer exited with {rc}'}")
        return {"run_dir": spec.run_dir, "state": state}

    def checkpoint(self, spec: RunSpec) -> submitit.helpers.DelayedSubmission | None:
        """submitit calls this on task 0 on USR2 (time limit ahead, or preemption): let the
        trainer checkpoint, then requeue the job here with a checked ``scontrol requeue`` while
        this submission's ``slurm.max_requeues`` allows; the job then exits 75. Returns None when
        it was not requeued (TIMEOUT, or SLURM refused: the run says which), so submitit does not
        requeue it either."""
        sup = self._sup or Supervisor(spec)
        if sup.stop_for_requeue(self._job_id):
            print(f"[launcher] requeued job {self._job_id}", flush=True)
            raise SystemExit(EXIT_REQUEUE)
        return None


class PrepareJob:
    """A task of the prepare stage as a job (:mod:`jobs.prepare_job`): a non-zero exit fails
    the job, and SLURM cancels the training arrays that wait for it (``afterok``)."""

    def __call__(self, spec: PrepareSpec) -> str:
        rc = prepare_job.run(spec)
        if rc != 0:
            raise RuntimeError(f"preparing {spec.label} failed (exit {rc}); see this job's log")
        return spec.label


class CollectJob:
    """The collector as a job: tables + report of the whole study."""

    def __call__(self, study_dir: str) -> str:
        from text2sign.study.collect import collect

        collect(Path(study_dir))
        return str(Path(study_dir) / "comparison_table.md")
