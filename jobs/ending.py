"""How a run's job ended, decided on the host by task 0's launcher after the trainer exits.

The trainer writes its own ending whenever it can (COMPLETED, FAILED with the error, PREEMPTED on
USR2, CANCELLED on SIGTERM). The launcher then completes the picture:

| trainer exit                          | run state written here             | what happens next         |
|---------------------------------------|------------------------------------|---------------------------|
| 0                                     | (COMPLETED, by the trainer)        | -                         |
| 75 after USR2 (submitit's handler)    | PREEMPTED, requeue k of K          | requeued (scontrol)       |
| 75 after USR2, K requeues used        | TIMEOUT                            | -                         |
| 75 after SIGTERM, job CANCELLED       | CANCELLED                          | never requeued            |
|   (or SIGTERM again after it said so) |                                    |                           |
| 75 after SIGTERM, job TIMEOUT         | TIMEOUT                            | -                         |
| 75 after SIGTERM, job requeued by     | PREEMPTED                          | SLURM requeues it         |
|   SLURM (PreemptMode=REQUEUE)         |                                    |                           |
| 2 (config, data, run dir)             | FAILED + the trainer's message     | never retried             |
| 1 with a non-finite loss              | (FAILED at that step, by trainer)  | never retried             |
| anything after ``make cancel``        | CANCELLED                          | never retried             |
| other (exception, SIGKILL, OOM, segv) | FAILED + reason, node and log      | retried on another node   |
|                                       |   (PENDING while a retry waits)    |   ``slurm.max_retries``   |

The launcher writes only into a run dir that holds its run's config (or none yet) and that no
other trainer holds (the run-dir lock), so a refused second trainer never overwrites the first.
"""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs import record
from text2sign.errors import EXIT_FAILURE, EXIT_OK, EXIT_REQUEUE, EXIT_USAGE
from text2sign.run.rundir import RunDir
from text2sign.run.runlock import RunLock
from text2sign.study import slurm_query

if TYPE_CHECKING:
    from jobs.launcher import RunSpec

REQUEUED_BY_SLURM = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "PREEMPTED"})


@dataclass(frozen=True)
class JobContext:
    """Where the trainer ran: SLURM job id (None for local jobs), node, log file, stderr tail."""

    job_id: str | None
    node: str
    log: str
    stderr_tail: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Ending:
    action: str  # "none" | "requeue" (USR2 seen by the trainer only) | "retry" (after a crash)
    reason: str = ""
    exclude: tuple[str, ...] = ()


def describe_exit(rc: int, stderr_tail: list[str]) -> str:
    """One line for a trainer that died without saying why in status.json."""
    if rc < 0 or rc > 128:  # Popen: -N; shells and container runtimes: 128+N
        num = -rc if rc < 0 else rc - 128
        try:
            name = signal.Signals(num).name
        except ValueError:
            name = f"signal {num}"
        hint = " (the OOM killer, a node failure or a user's kill)" if name == "SIGKILL" else ""
        return f"trainer killed by {name}{hint}"
    last = stderr_tail[-1].removeprefix("text2sign: error: ") if stderr_tail else ""
    return f"trainer exited with {rc}{': ' + last if last else ''}"


def owns(run: RunDir, spec: RunSpec) -> bool:
    """The run dir is this run's: it holds the same config hash, or none yet."""
    try:
        held = run.config_hash.read_text().strip()
    except OSError:
        return True
    return not spec.config_hash or held == spec.config_hash


def after_exit(spec: RunSpec, rc: int, ctx: JobContext) -> Ending:
    """Write the run's ending when the trainer could not; say whether to requeue or retry."""
    run = RunDir(spec.run_dir)
    if rc == EXIT_OK or not owns(run, spec):
        return Ending("none")
    lock = RunLock(run.path)
    if not lock.try_acquire():  # another trainer holds the run: its status is not ours to write
        return Ending("none", reason=f"{run.path}: {lock.describe_holder()}")
    try:
        return _decide(spec, run, rc, ctx)
    finally:
        lock.release()


def _decide(spec: RunSpec, run: RunDir, rc: int, ctx: JobContext) -> Ending:
    status = run.read_status()
    state, cause = status.get("state"), status.get("cause")
    step = status.get("step", 0)
    if record.cancel_requested(spec.study_dir) and state != "COMPLETED":
        reason = status.get("reason") if state == "CANCELLED" else f"cancelled at step {step}"
        run.write_status("CANCELLED", reason=f"{reason} (make cancel)", cause="cancel")
        return Ending("none", reason=reason)
    if rc == EXIT_REQUEUE and state == "PREEMPTED":  # USR2 reached the trainer, not submitit
        ok = requeue_allowed(spec, rc)
        return Ending("requeue" if ok else "none", reason=run.read_status().get("reason", ""))
    if state == "CANCELLED" and rc in (-signal.SIGTERM, 128 + signal.SIGTERM):
        # The trainer checkpointed on SIGTERM and said so; a repeated SIGTERM (scancel names the
        # array and the task, or SLURM signals twice) ended it on its way out: the same ending.
        rc = EXIT_REQUEUE
    if rc == EXIT_REQUEUE and state == "CANCELLED":  # SIGTERM: ask SLURM what it was
        now = slurm_query.job_state(ctx.job_id) if ctx.job_id else None
        if now == "TIMEOUT":
            run.write_status("TIMEOUT", cause="timeout",
                             reason=f"time limit reached at step {step} (SIGTERM from SLURM); "
                             "checkpointed: --resume-study with a longer --time continues it")  # fmt: skip
        elif now in REQUEUED_BY_SLURM:
            run.write_status("PREEMPTED", cause="signal",
                             reason=f"preempted at step {step}; checkpointed, SLURM requeues it")  # fmt: skip
        return Ending("none", reason=run.read_status().get("reason", ""))
    if rc == EXIT_USAGE:
        if state != "FAILED":  # died before it could say (e.g. a bad command line)
            run.write_status("FAILED", reason=describe_exit(rc, ctx.stderr_tail), cause="usage")
        return Ending("none", reason=run.read_status().get("reason", ""))
    if rc == EXIT_FAILURE and state == "FAILED" and cause == "nonfinite":
        return Ending("none", reason=status.get("reason", ""))
    if ctx.job_id and slurm_query.job_state(ctx.job_id) == "CANCELLED":
        run.write_status("CANCELLED", reason=f"cancelled at step {step} (scancel)", cause="cancel")
        return Ending("none")
    return _crashed(spec, run, status, rc, ctx)


def _crashed(spec: RunSpec, run: RunDir, status: dict[str, Any], rc: int, ctx: JobContext):
    said = status.get("state") == "FAILED" and status.get("cause") == "crash"
    base = status["reason"] if said else describe_exit(rc, ctx.stderr_tail)
    attempt = status.get("attempts", 0)
    reason = f"{base}; on {ctx.node}, attempt {attempt}; log: {ctx.log}"
    retries = int(status.get("retries", 0))
    if ctx.job_id is None or retries >= spec.max_retries:
        left = f"; no retry left (slurm.max_retries={spec.max_retries})" if ctx.job_id else ""
        run.write_status("FAILED", reason=reason + left, cause="crash")
        return Ending("none", reason=reason)
    exclude = tuple(sorted({*status.get("excluded", []), ctx.node}))
    run.write_status("FAILED", reason=reason, cause="crash")  # closes this attempt's history
    run.write_status(
        "PENDING", cause="crash", retries=retries + 1, excluded=list(exclude),
        reason=f"retry {retries + 1} of {spec.max_retries} excluding {','.join(exclude)}, "
        f"after: {reason}",
    )  # fmt: skip
    record.add_event(spec.study_dir, kind="retry", variant=spec.name, seed=spec.seed,
                     job_id=ctx.job_id, node=ctx.node, attempt=attempt, reason=reason,
                     exclude=list(exclude))  # fmt: skip
    return Ending("retry", reason=reason, exclude=exclude)


def requeue_allowed(spec: RunSpec, rc: int | None) -> bool:
    """After USR2: requeue while ``slurm.max_requeues`` allows (state PREEMPTED), else TIMEOUT."""
    run = RunDir(spec.run_dir)
    if not owns(run, spec):
        return False
    status = run.read_status()
    step = status.get("step", 0)
    if status.get("state") == "COMPLETED":
        return False
    if record.cancel_requested(spec.study_dir):
        run.write_status("CANCELLED", reason=f"cancelled at step {step} (make cancel)",
                         cause="cancel")  # fmt: skip
        return False
    requeues = int(status.get("requeues", 0))
    if requeues < spec.max_requeues:
        saved = "checkpointed" if rc == EXIT_REQUEUE else f"trainer exit {rc}, from last checkpoint"
        run.write_status("PREEMPTED", cause="requeue", requeues=requeues + 1,
                         reason=f"time limit ahead (USR2) at step {step}; {saved}; "
                         f"requeue {requeues + 1} of {spec.max_requeues}")  # fmt: skip
        return True
    run.write_status("TIMEOUT", cause="timeout",
                     reason=f"time limit (USR2) at step {step} after {requeues} requeues "
                     f"(slurm.max_requeues={spec.max_requeues}); checkpoint kept: --resume-study "
                     "with a longer --time continues it")  # fmt: skip
    return False


def _scontrol(*args: str) -> None:
    """``scontrol ARGS`` that outlives the job's own end: once a job is requeued, SLURM sends
    SIGTERM to every process of it, and an ``scontrol update`` started just then would die
    without a word. It ignores SIGTERM (SIGKILL, KillWait seconds later, still ends it)."""
    subprocess.run(["scontrol", *args], check=False,
                   preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))  # fmt: skip


def requeue(job_id: str) -> None:
    _scontrol("requeue", job_id)


def retry(job_id: str, *, exclude: tuple[str, ...]) -> None:
    """Requeue a crashed job, then keep it off the nodes it failed on (the requeued job is
    pending for ``cred_expire`` seconds, long before it could start anywhere)."""
    _scontrol("requeue", job_id)
    if exclude:
        _scontrol("update", f"JobId={job_id}", f"ExcNodeList={','.join(exclude)}")
