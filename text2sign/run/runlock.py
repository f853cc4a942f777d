"""One trainer per run dir: an exclusive ``flock`` on ``RUN/.lock`` held for the run's life.

The holder writes who it is (job, host, pid, since) into the lock file, so a second trainer can
name it in its one-line error. The kernel drops the lock when the holder exits or is killed
(SIGKILL, OOM killer), so a crashed run never leaves a stale lock behind. ``flock`` works on local
file systems, NFSv4 and Lustre mounted with ``-o flock`` (see docs/training.md). Where the file
system has no flock (Lustre ``noflock``: ENOSYS; NFS without lockd: ENOLCK) the lock is not
enforced: the run goes on, and one line on stderr says so (:func:`flock`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from text2sign.errors import RunDirError

if TYPE_CHECKING:
    from text2sign.config import Config
    from text2sign.run.rundir import RunDir


#: flock's errors on file systems without it: the lock is then not enforced, not a crash.
NO_FLOCK = frozenset({errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP})
_warned: set[str] = set()


def flock(fd: int, op: int, path: str | Path) -> bool:
    """``fcntl.flock(fd, op)``; False (and one line on stderr, once per file) where the file
    system has no flock. ``BlockingIOError`` (held by another process) is raised as usual."""
    try:
        fcntl.flock(fd, op)
        return True
    except OSError as e:
        if e.errno not in NO_FLOCK:
            raise
        if str(path) not in _warned:
            _warned.add(str(path))
            print(f"text2sign: warning: {path}: the file system has no flock "
                  f"({errno.errorcode.get(e.errno, e.errno)}): the lock is not enforced here",
                  file=sys.stderr, flush=True)  # fmt: skip
        return False


def job_identity() -> dict[str, Any]:
    """Who this process is, as SLURM (or the machine) names it."""
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    host = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    return {"job_id": job, "node": host, "pid": os.getpid()}


class RunLock:
    """``with RunLock(run_dir):`` or ``acquire()``/``release()``; raises ``RunDirError`` if held."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None
        self.enforced = True  # False on a file system without flock

    def acquire(self, *, since: str = "") -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self.enforced = flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, self.path)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(f"{self.path.parent}: {self.describe_holder()}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({**job_identity(), "since": since}).encode(), 0)
        self._fd = fd
        return self

    def try_acquire(self) -> bool:
        """Acquire if free; False (nothing raised) when another process holds it."""
        try:
            self.acquire()
        except RunDirError:
            return False
        return True

    def describe_holder(self) -> str:
        try:
            h = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            h = {}
        job = f"job {h['job_id']}" if h.get("job_id") else "a process without a SLURM job"
        return (
            f"held by another trainer ({job} on {h.get('node', '?')}, pid {h.get('pid', '?')}, "
            f"since {h.get('since') or '?'}); wait for it to end or cancel it"
        )

    def release(self) -> None:
        if self._fd is not None:
            if self.enforced:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim(run: RunDir, cfg: Config) -> RunLock:
    """Rank 0: hold the run dir for this trainer (exit 2 if another holds it), then check that
    it holds this config (exit 2 if not). Nothing is written into a run dir we do not own."""
    from text2sign.run.rundir import now_iso

    lock = RunLock(run.path).acquire(since=now_iso())
    try:
        run.prepare(cfg)
    except BaseException:
        lock.release()
        raise
    return lock
