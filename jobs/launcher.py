"""The submitit job functions: run on the compute node, *host side* (where scontrol exists).

``TrainJob`` runs one run (variant × seed) as a child process, in the container or not:

    [apptainer exec --nv --bind RESULTS,DATA,HF_CACHE:/hf_cache IMAGE.sif] python -m text2sign train ...

(the container side, binds and image checks: ``jobs/container.py``).

* One SLURM task per GPU (srun, started by submitit). The torch.distributed variables come from
  SLURM through submitit's ``TorchDistributedEnvironment``, so multi-node DeepSpeed works.
* Timeout/preemption: SLURM sends USR2 (``--signal=USR2@<lead>``) to every process of the job;
  submitit calls ``checkpoint()`` on task 0, which forwards the signal to the trainer, waits for
  its "checkpointed" exit (75) and returns the same job: submitit then runs ``scontrol requeue``
  here, on the host (an Apptainer image has no scontrol), at most ``slurm.max_requeues`` times;
  then the run ends TIMEOUT. The requeued job resumes from the run dir.
* ``scancel`` sends SIGTERM: the trainer checkpoints and ends CANCELLED; nothing requeues it.
* A crash (not exit 2, not a NaN, not a cancel) is retried ``slurm.max_retries`` times on
  another node (``scontrol requeue`` + ``ExcNodeList``). What the trainer could not write
  (SIGKILL, OOM killer, segfault) task 0's launcher writes; see :mod:`jobs.ending`.
* A COMPLETED run is not retrained when its job runs again.

The trainer process and its signals are a :class:`jobs.supervisor.Supervisor`, which the
plain-sbatch entry point (``jobs/sbatch_job.py``) uses too: both paths end runs the same way.

``CollectJob`` runs the collector (no GPU, no container).
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from jobs.container import ContainerSpec, container_argv
from jobs.ending import JobContext
from jobs.supervisor import Supervisor
from text2sign.run.rundir import RunDir


@dataclass(frozen=True)
class RunSpec:
    """Everything a job needs to (re)start one run; pickled by submitit."""

    study: str
    variant: str
    seed: int
    profile: str
    run_dir: str
    overrides: tuple[str, ...] = ()
    config_file: str | None = None
    container: ContainerSpec = field(default_factory=ContainerSpec)
    python: str = sys.executable
    workdir: str = field(default_factory=os.getcwd)
    config_hash: str = ""  # the run dir this job may write into holds this hash (or none yet)
    max_requeues: int = 3  # slurm.max_requeues
    max_retries: int = 1  # slurm.max_retries
    point: str = ""  # the study variant (run dir) name; a sweep point's differs from ``variant``
    code: str | None = None  # the study's code snapshot (jobs/snapshot.py): the trainer imports it

    @property
    def name(self) -> str:
        """The run's name in the study (its folder): the sweep point, else the variant."""
        return self.point or self.variant

    @property
    def study_dir(self) -> Path:
        return Path(self.run_dir).parents[1]  # results/<study>/<point>/seed<k>


def trainer_argv(spec: RunSpec) -> list[str]:
    """``python -m text2sign train ...`` for this run (a list: nothing goes through a shell)."""
    if spec.container.runtime == "apptainer":
        python = ["python"]  # the image's package (its own PYTHONPATH rules: jobs/container.py)
    else:  # -P: not the working directory's checkout; the snapshot comes first (trainer_env)
        python = [spec.python, "-P"] if spec.code else [spec.python]
    argv = [*python, "-m", "text2sign", "train", "--profile", spec.profile,
            "--variant", spec.variant, "--run-dir", spec.run_dir]  # fmt: skip
    if spec.config_file:
        argv += ["--config", spec.config_file]
    for item in (*spec.overrides, f"train.seed={spec.seed}"):
        argv += ["--set", item]
    return argv


def build_command(spec: RunSpec) -> list[str]:
    return container_argv(spec.container, trainer_argv(spec))


def trainer_env(spec: RunSpec, env: dict[str, str]) -> dict[str, str]:
    """The trainer's environment: ``env`` with the code snapshot first on ``PYTHONPATH``."""
    if spec.code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [spec.code, env.get("PYTHONPATH")]))
    return env


def describe(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


class TrainJob(submitit.helpers.Checkpointable):
    """One run as a submitit job: starts the trainer through a :class:`Supervisor`, which
    writes how the run ended when the trainer could not (see :mod:`jobs.ending`): requeue on
    USR2, retry after a crash. ``jobs/sbatch_job.py`` is the same for plain sbatch."""

    def __init__(self) -> None:
        self._sup: Supervisor | None = None

    def __call__(self, spec: RunSpec) -> dict[str, Any]:
        run = RunDir(spec.run_dir)
        if run.completed:  # a rerun of a finished job (e.g. --resume-study): nothing to do
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
        print(f"[launcher] task {job_env.global_rank}/{job_env.num_tasks} on {node}: "
              f"{describe(argv)}", flush=True)  # fmt: skip
        self._sup = Supervisor(spec)
        rc = self._sup.run(argv, env, spec.workdir)
        if job_env.global_rank != 0:  # rank 0's launcher alone speaks for the run
            if rc != 0:
                raise RuntimeError(f"trainer (task {job_env.global_rank}) exited with {rc}")
            return {"run_dir": spec.run_dir}
        slurm_job = job_env.job_id if job_env.cluster == "slurm" else None
        ctx = JobContext(
            job_id=slurm_job, node=node, log=str(job_env.paths.stderr).replace("%t", "0"),
            stderr_tail=list(self._sup.stderr_tail),
        )  # fmt: skip
        end = self._sup.finish(rc, ctx)
        state = RunDir(spec.run_dir).read_status().get("state")
        if state != "COMPLETED" and end.action == "none":
            raise RuntimeError(f"run {state}: {end.reason or f'trainer exited with {rc}'}")
        return {"run_dir": spec.run_dir, "state": state}

    def checkpoint(self, spec: RunSpec) -> submitit.helpers.DelayedSubmission | None:
        """submitit calls this on task 0 on USR2 (time limit ahead, or preemption): let the
        trainer checkpoint, then requeue (return the job) while ``slurm.max_requeues`` allows;
        else the run ends TIMEOUT (return None: submitit does not requeue)."""
        sup = self._sup or Supervisor(spec)
        if not sup.stop_for_requeue():
            return None
        return submitit.helpers.DelayedSubmission(TrainJob(), spec)


class CollectJob:
    """The collector as a job: tables + report of the whole study."""

    def __call__(self, study_dir: str) -> str:
        from text2sign.study.collect import collect

        collect(Path(study_dir))
        return str(Path(study_dir) / "comparison_table.md")
