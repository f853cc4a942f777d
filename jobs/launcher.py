"""The submitit job functions: run on the compute node, *host side* (where scontrol exists).

``TrainJob`` runs one run (variant × seed) as a child process, in the container or not:

    [apptainer exec --nv --bind RESULTS,DATA,HF_CACHE:/hf_cache IMAGE.sif] python -m text2sign train ...

(the container side, binds and image checks: ``jobs/container.py``).

* One SLURM task per GPU (srun, started by submitit). The torch.distributed variables come from
  SLURM through submitit's ``TorchDistributedEnvironment``, so multi-node DeepSpeed works.
* Timeout/preemption: SLURM sends USR2 (``--signal=USR2@<lead>``) to every process of the job;
  submitit calls ``checkpoint()`` on task 0, which forwards the signal to the trainer, waits for
  its "checkpointed" exit (75) and returns the same job: submitit then runs ``scontrol requeue``
  here, on the host (an Apptainer image has no scontrol). The requeued job resumes from the run
  dir. A COMPLETED run is not retrained when its job runs again.

``CollectJob`` runs the collector (no GPU, no container).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from jobs.container import ContainerSpec, container_argv
from text2sign.errors import EXIT_REQUEUE
from text2sign.rundir import RunDir

CHILD_POLL_S = 0.5


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


def trainer_argv(spec: RunSpec) -> list[str]:
    """``python -m text2sign train ...`` for this run (a list: nothing goes through a shell)."""
    python = "python" if spec.container.runtime == "apptainer" else spec.python
    argv = [python, "-m", "text2sign", "train", "--profile", spec.profile,
            "--variant", spec.variant, "--run-dir", spec.run_dir]  # fmt: skip
    if spec.config_file:
        argv += ["--config", spec.config_file]
    for item in (*spec.overrides, f"train.seed={spec.seed}"):
        argv += ["--set", item]
    return argv


def build_command(spec: RunSpec) -> list[str]:
    return container_argv(spec.container, trainer_argv(spec))


def describe(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


class TrainJob(submitit.helpers.Checkpointable):
    """One run as a submitit job: checkpointable, so a USR2 leads to a requeue."""

    def __init__(self) -> None:
        self._child: subprocess.Popen | None = None

    def __call__(self, spec: RunSpec) -> dict[str, Any]:
        run = RunDir(spec.run_dir)
        if run.completed:  # a rerun of a finished job (e.g. --resume-study): nothing to do
            return {"run_dir": spec.run_dir, "state": "COMPLETED", "skipped": True}
        env = dict(os.environ)
        job_env = submitit.JobEnvironment()
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
        self._child = subprocess.Popen(argv, env=env, cwd=spec.workdir)
        rc = self._wait()
        if rc == EXIT_REQUEUE and job_env.global_rank == 0 and job_env.cluster == "slurm":
            # The trainer checkpointed on a signal that submitit's handler did not see (e.g. a
            # SIGTERM-only preemption): requeue from here, host side, like submitit does.
            self._requeue(job_env.job_id)
        if rc != 0:
            raise RuntimeError(f"trainer exited with {rc} (see {spec.run_dir}/status.json)")
        return {"run_dir": spec.run_dir, "state": RunDir(spec.run_dir).read_status().get("state")}

    def _wait(self, deadline: float | None = None) -> int | None:
        # Popen.wait() holds a lock that a signal handler calling wait() again would deadlock
        # on: poll instead, both here and in checkpoint().
        assert self._child is not None
        while (rc := self._child.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(CHILD_POLL_S)
        return rc

    def checkpoint(self, spec: RunSpec) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on task 0 on USR2: let the trainer checkpoint, then requeue."""
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signal.SIGUSR2)
            lead = float(os.environ.get("T2S_SIGNAL_LEAD_S", "120"))
            rc = self._wait(deadline=time.monotonic() + 0.9 * lead)
            print(f"[launcher] trainer exited with {rc} after the requeue signal", flush=True)
        return submitit.helpers.DelayedSubmission(TrainJob(), spec)

    @staticmethod
    def _requeue(job_id: str) -> None:
        subprocess.run(["scontrol", "requeue", job_id], check=False)
        time.sleep(60)  # SLURM ends this allocation now; never report a result for it


class CollectJob:
    """The collector as a job: tables + report of the whole study."""

    def __call__(self, study_dir: str) -> str:
        from text2sign.collect import collect

        collect(Path(study_dir))
        return str(Path(study_dir) / "comparison_table.md")
