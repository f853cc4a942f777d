"""The host side of one run's job: start the trainer, pass signals on, decide how the job ends.

Both ways of running a study use it, so a run lives the same life whichever submitted it:

* ``jobs/launcher.py`` (submitit): ``TrainJob`` starts the trainer through a ``Supervisor``, and
  submitit's ``checkpoint()`` hook calls :meth:`Supervisor.stop_for_requeue` on USR2;
* ``jobs/sbatch_job.py`` (plain sbatch): the batch script's one Python process does the same,
  with its own signal handlers.

How the job ends (requeue on USR2 within ``slurm.max_requeues``, cancel final, crash retried on
another node, exit 2 never retried) is decided by :mod:`jobs.ending`, never here.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from jobs import ending
from jobs.ending import Ending, JobContext

if TYPE_CHECKING:
    from jobs.launcher import RunSpec

CHILD_POLL_S = 0.5
STDERR_LINES = 20  # the trainer's last stderr lines kept for a crash's one-line reason
SIGNAL_WAIT_SHARE = 0.9  # of the signal lead time: how long the trainer may take to checkpoint


def signal_lead_s() -> float:
    """Seconds between SLURM's USR2 and the time limit (``T2S_SIGNAL_LEAD_S``, default 120)."""
    return float(os.environ.get("T2S_SIGNAL_LEAD_S", "120"))


class Supervisor:
    """One trainer process: started, its stderr copied through, waited for, signalled."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.child: subprocess.Popen | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._tee: threading.Thread | None = None

    # -- the trainer process ---------------------------------------------------------------------
    def start(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        """Start the trainer; its stderr is copied to ours (the last lines kept for the reason)."""
        self.child = subprocess.Popen(argv, env=env, cwd=cwd, stderr=subprocess.PIPE,
                                      text=True, errors="replace", bufsize=1)  # fmt: skip
        self._tee = threading.Thread(target=self._copy, args=(self.child.stderr,), daemon=True)
        self._tee.start()

    def _copy(self, stream) -> None:
        for line in stream:
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.strip():
                self.stderr_tail.append(line.rstrip("\n"))

    def wait(self, deadline: float | None = None) -> int | None:
        """The trainer's exit code, or None at ``deadline`` (monotonic) while it still runs.

        Polls: ``Popen.wait()`` holds a lock that a signal handler calling it again would
        deadlock on, and the handlers here (submitit's, ours) do wait for the trainer.
        """
        assert self.child is not None
        while (rc := self.child.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(CHILD_POLL_S)
        if self._tee is not None:
            self._tee.join(timeout=5)
        return rc

    def run(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        self.start(argv, env, cwd)
        rc = self.wait()
        assert rc is not None
        return rc

    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def forward(self, signum: int) -> None:
        """Pass a signal on to the trainer (or to srun, which passes it on to every task)."""
        if self.running():
            assert self.child is not None
            self.child.send_signal(signum)

    # -- how the job ends ------------------------------------------------------------------------
    def stop_for_requeue(self, lead_s: float | None = None) -> bool:
        """USR2 (time limit ahead, or preemption): let the trainer checkpoint and exit, then say
        whether the run may be requeued (``ending.requeue_allowed``: PREEMPTED, or TIMEOUT once
        ``slurm.max_requeues`` are used). The caller requeues: submitit, or ``scontrol``."""
        rc = None
        if self.running():
            self.forward(signal.SIGUSR2)
            lead = signal_lead_s() if lead_s is None else lead_s
            rc = self.wait(deadline=time.monotonic() + SIGNAL_WAIT_SHARE * lead)
            print(f"[supervisor] trainer exited with {rc} after the requeue signal", flush=True)
        elif self.child is not None:
            rc = self.child.poll()
        return ending.requeue_allowed(self.spec, rc)

    def finish(self, rc: int, ctx: JobContext) -> Ending:
        """After the trainer exited by itself: write what it could not, then requeue (USR2 that
        only the trainer saw) or retry (a crash) as :func:`jobs.ending.after_exit` decides."""
        end = ending.after_exit(self.spec, rc, ctx)
        if end.action == "requeue" and ctx.job_id:
            ending.requeue(ctx.job_id)
        elif end.action == "retry" and ctx.job_id:
            ending.retry(ctx.job_id, exclude=end.exclude)
        return end
