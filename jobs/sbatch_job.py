"""One run of a plain-sbatch study: the one process of ``slurm/train.sbatch``'s batch shell.

    python -m jobs.sbatch_job TASKS_JSON     (array task ``$SLURM_ARRAY_TASK_ID`` of it)

``jobs/sbatch_study.py`` wrote ``TASKS_JSON`` (one RunSpec per array task) before it called
sbatch, so a job never waits for study.json, and a job requeued after a later resubmission of the
study still runs the spec it was submitted with. From there it is the submitit path's life,
through the same :class:`jobs.supervisor.Supervisor` and :mod:`jobs.ending`:

* the trainer runs as this process's child, host side (``scontrol`` exists here), in the
  container or not; a job of several tasks starts one trainer per task with ``srun``, the first
  node being the rendezvous (MASTER_ADDR/PORT; ranks from SLURM_PROCID etc.);
* USR2 (``--signal=B:USR2@<lead>`` reaches this batch shell only): passed on to the trainer,
  which checkpoints and exits 75; then ``scontrol requeue`` while ``slurm.max_requeues`` allows
  (PREEMPTED once SLURM accepted), else the run ends TIMEOUT;
* SIGTERM (``scancel``, ``make cancel``): SLURM signals the trainer too; it checkpoints, this
  process waits for it and writes the ending; cancel is final;
* any other ending (exit 2, NaN, crash → retry on another node) as :func:`jobs.ending.after_exit`;
  in a job of several tasks srun's ``--kill-on-bad-exit`` ends every task when one dies, and
  srun's own line (``srun: error: NODE: task N: ...``) names the node the retry excludes.

Its output, and the trainer's, is the job's log: ``RUN_DIR/slurm-<jobid>.out`` (sbatch
``--output``, appended across requeues).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jobs import ending
from jobs.spec import JobContext, build_command, describe, finished, read_task, trainer_env
from jobs.supervisor import Supervisor
from text2sign.errors import EXIT_OK, EXIT_REQUEUE, EXIT_USAGE
from text2sign.run.rundir import RunDir

POLL_S = 0.5


def job_id() -> str | None:
    """``123_4`` for array task 4 of array 123 (as study.json and squeue name it), else ``123``."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def distributed_env(env: dict[str, str]) -> list[str]:
    """For a job of several tasks: the rendezvous from SLURM, and the ``srun`` prefix that
    starts one trainer per task (ranks come from SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID).
    ``--cpus-per-task`` is passed on explicitly: srun of SLURM 22.05–23.02 does not inherit it
    from the batch job, and its tasks would be bound to one CPU each."""
    tasks = int(env.get("SLURM_NTASKS", "1"))
    if tasks <= 1:
        return []
    nodes = subprocess.run(["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]],
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    env["MASTER_ADDR"] = nodes[0]
    env["MASTER_PORT"] = str(20000 + int(env["SLURM_JOB_ID"]) % 20000)
    cpus = env.get("SLURM_CPUS_PER_TASK", "")
    per_task = [f"--cpus-per-task={cpus}"] if cpus.isdigit() else []
    return ["srun", "--kill-on-bad-exit=1", f"--ntasks={tasks}", *per_task]


class _Signals:
    """USR2 and SIGTERM, remembered for the main loop (handlers do no work themselves).

    SIGTERM is not passed on: ``scancel`` and the time limit signal every process of the batch
    step, the trainer (or srun and its tasks) included, and a second SIGTERM could reach the
    trainer after it checkpointed, while it exits. This process only outlives it, to write the
    ending (cancel is final)."""

    def __init__(self) -> None:
        self.usr2 = False
        self.term = False
        signal.signal(signal.SIGUSR2, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGUSR2:
            self.usr2 = True
        else:
            self.term = True


def run(tasks_file: Path, index: int) -> int:
    spec, plan = read_task(tasks_file, index)
    job, node = job_id(), os.environ.get("SLURMD_NODENAME", socket.gethostname())
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    print(f"[sbatch_job] job {job} (restart {restart}) on {node}: {spec.name}/seed{spec.seed} "
          f"of study {spec.study}; {plan.get('runtime_note', '')}", flush=True)  # fmt: skip
    if finished(spec):  # a requeue or rerun of a finished (and evaluated) run: nothing to do
        print("[sbatch_job] the run is COMPLETED: nothing to do", flush=True)
        return EXIT_OK
    signals = _Signals()  # before the trainer starts: no signal may find the default handler
    env = trainer_env(spec, dict(os.environ))
    env.setdefault("T2S_SIGNAL_LEAD_S", str(plan.get("signal_lead_s", 120)))
    argv = distributed_env(env) + build_command(spec)
    print(f"[sbatch_job] {describe(argv)}", flush=True)
    sup = Supervisor(spec)
    sup.start(argv, env, spec.workdir)
    said_term = False
    while (rc := sup.wait(deadline=0.0)) is None:  # poll: the handlers only set flags
        if signals.term and not said_term:
            print("[sbatch_job] SIGTERM: waiting for the trainer to checkpoint", flush=True)
            said_term = True
        if signals.usr2:
            lead = float(env["T2S_SIGNAL_LEAD_S"])
            if sup.stop_for_requeue(job, lead):
                print(f"[sbatch_job] requeueing {job}: requeued", flush=True)
                return EXIT_REQUEUE
            rc = sup.child.poll() if sup.child is not None else None  # TIMEOUT, or done
            return _exit_status(EXIT_REQUEUE if rc is None else rc)
        time.sleep(POLL_S)
    ctx = JobContext(job_id=job, node=node, log=str(Path(spec.run_dir) / f"slurm-{job}.out"),
                     stderr_tail=list(sup.stderr_tail),
                     failed=ending.srun_failure(sup.srun_errors))  # fmt: skip
    end = sup.finish(rc, ctx)
    state = RunDir(spec.run_dir).read_status().get("state")
    print(f"[sbatch_job] trainer exited with {rc}: run {state}"
          f"{'; ' + end.action if end.action != 'none' else ''}"
          f"{' (' + end.reason + ')' if end.reason else ''}", flush=True)  # fmt: skip
    return _exit_status(rc)


def _exit_status(rc: int) -> int:
    """The job's exit status: the trainer's, a signal N as the shells' 128 + N."""
    return 128 - rc if rc < 0 else rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m jobs.sbatch_job", description=__doc__.split("\n")[0]
    )
    p.add_argument("tasks", type=Path, help="the tasks file written by jobs/sbatch_study.py")
    p.add_argument("--index", type=int, default=None, help="default: $SLURM_ARRAY_TASK_ID")
    args = p.parse_args(argv)
    index = args.index if args.index is not None else os.environ.get("SLURM_ARRAY_TASK_ID")
    if index is None:
        print("sbatch_job: error: no --index and no SLURM_ARRAY_TASK_ID", file=sys.stderr)
        return EXIT_USAGE
    return run(args.tasks, int(index))


if __name__ == "__main__":
    sys.exit(main())
