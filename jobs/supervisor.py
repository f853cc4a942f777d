"""The host side of one run's job: start the trainer, pass signals on, decide how the job ends.

Both ways of running a study use it, so a run lives the same life whichever submitted it:

* ``jobs/launcher.py`` (submitit): ``TrainJob`` starts the trainer through a ``Supervisor``, and
  submitit's ``checkpoint()`` hook calls :meth:`Supervisor.stop_for_requeue` on USR2;
* ``jobs/sbatch_job.py`` (plain sbatch): the batch script's one Python process does the same,
  with its own signal handlers.

How the job ends (requeue on USR2 within ``slurm.max_requeues``, cancel final, crash retried on
another node, exit 2 never retried) is decided by :mod:`jobs.ending`, never here. A trainer that
has not exited by the signal deadline is killed before the ending is written, so the launcher never
writes status.json while the trainer might (both hold the run lock to write).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from jobs import ending
from jobs.ending import Ending
from jobs.spec import JobContext, RunSpec

CHILD_POLL_S = 0.5
KILL_WAIT_S = 10.0  # after SIGKILL at the signal deadline: how long the trainer may take to go
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
        self.srun_errors: list[str] = []  # srun's "srun: error: NODE: task N: ..." lines
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
            if line.startswith("srun: error:") and len(self.srun_errors) < STDERR_LINES:
                self.srun_errors.append(line.rstrip("\n"))

    def wait(
        self, deadline: float | None = None, interrupt: Callable[[], object] | None = None
    ) -> int | None:
        """The trainer's exit code, or None at ``deadline`` (monotonic) or once ``interrupt()``
        is true while it still runs.

        Polls: ``Popen.wait()`` holds a lock that a signal handler calling it again would
        deadlock on, and the handlers here (submitit's, ours) do wait for the trainer.
        """
        assert self.child is not None
        while (rc := self.child.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            if interrupt is not None and interrupt():
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

    def kill(self) -> int | None:
        """SIGKILL the trainer and wait (``KILL_WAIT_S``) for it to go; its exit code or None."""
        if self.running():
            assert self.child is not None
            self.child.kill()
        return self.wait(deadline=time.monotonic() + KILL_WAIT_S)

    # -- how the job ends ------------------------------------------------------------------------
    def stop_for_requeue(self, job_id: str | None, lead_s: float | None = None) -> bool:
        """USR2 (time limit ahead, or preemption): let the trainer checkpoint and exit (killed at
        the deadline: its last checkpoint stands), then requeue the job or end the run TIMEOUT
        (:func:`jobs.ending.after_signal`). True when SLURM accepted the requeue."""
        rc = None
        if self.running():
            self.forward(signal.SIGUSR2)
            lead = signal_lead_s() if lead_s is None else lead_s
            rc = self.wait(deadline=time.monotonic() + SIGNAL_WAIT_SHARE * lead)
            if rc is None:
                print("[supervisor] the trainer did not checkpoint in time: SIGKILL", flush=True)
                rc = self.kill()
            print(f"[supervisor] trainer exited with {rc} after the requeue signal", flush=True)
        elif self.child is not None:
            rc = self.child.poll()
        return ending.after_signal(self.spec, rc, job_id)

    def finish(self, rc: int, ctx: JobContext) -> Ending:
        """After the trainer exited by itself: write what it could not, then requeue (USR2 that
        only the trainer saw) or retry (a crash), as :func:`jobs.ending.after_exit` decides."""
        return ending.after_exit(self.spec, rc, ctx)
