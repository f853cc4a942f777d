"""How a run's job ended, decided on the host by task 0's launcher after the trainer exits.

The trainer writes its own ending whenever it can (COMPLETED, FAILED with the error, PREEMPTED on
USR2, CANCELLED on SIGTERM). The launcher then completes the picture:

| trainer exit                          | run state written here             | what happens next         |
|---------------------------------------|------------------------------------|---------------------------|
| 0                                     | (COMPLETED, by the trainer)        | -                         |
| 75 after USR2, requeue k of K         | PREEMPTED, once scontrol requeued  | requeued (scontrol)       |
| 75 after USR2, K requeues used        | TIMEOUT                            | -                         |
| 75 after USR2, scontrol refuses       | TIMEOUT + SLURM's refusal          | - (--resume-study)        |
| 75 after SIGTERM, job CANCELLED       | CANCELLED                          | never requeued            |
|   (or SIGTERM again after it said so) |                                    |                           |
| 75 after SIGTERM, job TIMEOUT         | TIMEOUT                            | -                         |
| 75 after SIGTERM, job requeued by     | PREEMPTED                          | SLURM requeues it         |
|   SLURM (PreemptMode=REQUEUE)         |                                    |                           |
| 2 (config, data, run dir)             | FAILED + the trainer's message     | never retried             |
| 1 with a non-finite loss              | (FAILED at that step, by trainer)  | never retried             |
| anything after ``make cancel``        | CANCELLED                          | never retried             |
| other (exception, SIGKILL, OOM, segv) | FAILED + reason, node and log      | retried on another node   |
|   (in any task: the failed task's     |   (PENDING once scontrol requeued; |   ``slurm.max_retries``   |
|   node is excluded)                   |   FAILED when it refuses)          |                           |

Budgets belong to a submission: ``slurm.max_requeues`` and ``slurm.max_retries`` count the requeues
and retries of the run's current submission (``status.json``: ``submission``, ``requeues``,
``retries``, ``excluded``), so ``--resume-study`` starts with the whole budget; the history keeps
every attempt of every submission. A state that announces a requeue or a retry is written only
after ``scontrol`` accepted it, and every write of the launcher holds the run lock (the trainer
has exited, or was killed at the signal deadline).

The launcher writes only into a run dir that holds its run's config (or none yet) and that no
other trainer holds (the run-dir lock), so a refused second trainer never overwrites the first.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from dataclasses import dataclass
from typing import Any

from jobs import studyfile
from jobs.spec import JobContext, RunSpec
from text2sign import atomic
from text2sign.errors import EXIT_FAILURE, EXIT_OK, EXIT_REQUEUE, EXIT_USAGE
from text2sign.run.rundir import TASK_FAILURE, RunDir
from text2sign.run.runlock import RunLock
from text2sign.study import slurm_query

REQUEUED_BY_SLURM = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "PREEMPTED"})
SCONTROL_TIMEOUT_S = 60
#: srun's line for the first task that failed (``--kill-on-bad-exit`` then kills the others).
SRUN_TASK_ERROR = re.compile(r"^srun: error: (\S+): tasks? (\d+)[^:]*: (.+)$")


@dataclass(frozen=True)
class Ending:
    action: str  # "none" | "requeue" (after USR2) | "retry" (after a crash): SLURM accepted it
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


def srun_failure(lines: list[str]) -> tuple[str, str, str] | None:
    """(task, node, what) of the first ``srun: error: NODE: task N: ...`` line, if any."""
    for line in lines:
        m = SRUN_TASK_ERROR.match(line.strip())
        if m:
            return m.group(2), m.group(1), m.group(3)
    return None


def owns(run: RunDir, spec: RunSpec) -> bool:
    """The run dir is this run's: it holds the same config hash, or none yet."""
    try:
        held = run.config_hash.read_text().strip()
    except OSError:
        return True
    return not spec.config_hash or held == spec.config_hash


def budget(status: dict[str, Any], spec: RunSpec, key: str) -> int:
    """Requeues or retries used by this submission (a resubmission starts again at 0)."""
    return int(status.get(key, 0)) if int(status.get("submission", 0)) == spec.submission else 0


# -- a task other than 0 died (multi-task jobs) -------------------------------------------------


def report_task_failure(spec: RunSpec, task: int, node: str, job_id: str | None,
                        restart: str, what: str) -> None:  # fmt: skip
    """Task ``task``'s launcher: say which task and node failed, for task 0's launcher."""
    atomic.write_json(RunDir(spec.run_dir).path / TASK_FAILURE,
                      {"task": task, "node": node, "job_id": job_id, "restart": restart,
                       "reason": what})  # fmt: skip


def task_failure(spec: RunSpec, job_id: str | None, restart: str) -> tuple[str, str, str] | None:
    """(task, node, what) reported by another task of this very job attempt, else None."""
    try:
        d = json.loads((RunDir(spec.run_dir).path / TASK_FAILURE).read_text())
    except (OSError, ValueError):
        return None
    if d.get("job_id") != job_id or str(d.get("restart")) != restart:
        return None  # an earlier attempt's
    return str(d["task"]), str(d["node"]), str(d["reason"])


# -- after the trainer exited ---------------------------------------------------------------------


def after_exit(spec: RunSpec, rc: int, ctx: JobContext) -> Ending:
    """Write the run's ending when the trainer could not; requeue or retry as it decides."""
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
    if studyfile.cancel_requested(spec.study_dir) and state != "COMPLETED":
        reason = status.get("reason") if state == "CANCELLED" else f"cancelled at step {step}"
        run.write_status("CANCELLED", reason=f"{reason} (make cancel)", cause="cancel")
        return Ending("none", reason=reason)
    if studyfile.cancel_requested(spec.study_dir) and rc != 0:
        # COMPLETED (a halving rung's budget, or the end) and killed in its evaluation: the
        # training is done and kept; never retried (found on the cluster, issue 24).
        return Ending(
            "none", reason=f"cancelled (make cancel) after step {step}, in its evaluation"
        )
    if rc == EXIT_REQUEUE and state == "PREEMPTED":  # USR2 reached the trainer, not the launcher
        ok = _requeue_or_timeout(spec, run, rc, ctx.job_id)
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
    node = ctx.node
    if ctx.failed is not None:  # another task died first: its node, not this one, failed
        task, node, what = ctx.failed
        base = f"task {task} on {node}: {what}"
    else:
        base = status["reason"] if said else describe_exit(rc, ctx.stderr_tail)
    attempt = status.get("attempts", 0)
    reason = f"{base}; on {node}, attempt {attempt}; log: {ctx.log}"
    retries = budget(status, spec, "retries")
    if ctx.job_id is None or retries >= spec.max_retries:
        left = f"; no retry left (slurm.max_retries={spec.max_retries})" if ctx.job_id else ""
        run.write_status("FAILED", reason=reason + left, cause="crash")
        return Ending("none", reason=reason)
    same = int(status.get("submission", 0)) == spec.submission
    exclude = tuple(sorted({*(status.get("excluded", []) if same else []), node}))
    # Asked before the requeue: once requeued, SLURM sends every process of the job SIGTERM.
    left = slurm_query.nodes_left(ctx.job_id, exclude)
    run.write_status("FAILED", reason=reason, cause="crash")  # closes this attempt's history
    refused = scontrol("requeue", ctx.job_id)
    if refused:
        run.write_status("FAILED", cause="crash",
                         reason=f"{reason}; SLURM refused the retry (scontrol requeue: {refused}; "
                         "requeue disabled by JobRequeue=0 or --no-requeue?)")  # fmt: skip
        return Ending("none", reason=reason)
    if left is not None and left[0] < left[1]:  # excluded, it could never start: pends forever
        where = (f"not excluding {','.join(exclude)}: the partition would have {left[0]} usable "
                 f"node(s) left for a {left[1]}-node job")  # fmt: skip
        exclude = ()
    else:
        missed = scontrol("update", f"JobId={ctx.job_id}", f"ExcNodeList={','.join(exclude)}")
        note = f" (could not exclude {','.join(exclude)}: {missed})" if missed else ""
        where = f"excluding {','.join(exclude)}{note}"
    run.write_status(
        "PENDING", cause="crash", retries=retries + 1, excluded=list(exclude),
        submission=spec.submission, requeues=budget(status, spec, "requeues"),
        reason=f"retry {retries + 1} of {spec.max_retries} {where}, after: {reason}",
    )  # fmt: skip
    studyfile.add_event(spec.study_dir, kind="retry", variant=spec.name, seed=spec.seed,
                        job_id=ctx.job_id, node=node, attempt=attempt, reason=reason,
                        exclude=list(exclude))  # fmt: skip
    return Ending("retry", reason=reason, exclude=exclude)


# -- after USR2 (time limit ahead, or preemption) ---------------------------------------------------


def after_signal(spec: RunSpec, rc: int | None, job_id: str | None) -> bool:
    """After USR2, once the trainer has exited: requeue the job while this submission's
    ``slurm.max_requeues`` allows (PREEMPTED, written once scontrol accepted), else TIMEOUT.
    Writes under the run lock; False (nothing written) while a trainer still holds it."""
    run = RunDir(spec.run_dir)
    if not owns(run, spec):
        return False
    lock = RunLock(run.path)
    if not lock.try_acquire():
        return False
    try:
        return _requeue_or_timeout(spec, run, rc, job_id)
    finally:
        lock.release()


def _requeue_or_timeout(spec: RunSpec, run: RunDir, rc: int | None, job_id: str | None) -> bool:
    status = run.read_status()
    step = status.get("step", 0)
    if status.get("state") == "COMPLETED":
        return False
    if studyfile.cancel_requested(spec.study_dir):
        run.write_status("CANCELLED", reason=f"cancelled at step {step} (make cancel)",
                         cause="cancel")  # fmt: skip
        return False
    requeues = budget(status, spec, "requeues")
    saved = "checkpointed" if rc == EXIT_REQUEUE else f"trainer exit {rc}, from last checkpoint"
    if requeues >= spec.max_requeues:
        run.write_status("TIMEOUT", cause="timeout",
                         reason=f"time limit (USR2) at step {step} after {requeues} requeues "
                         f"(slurm.max_requeues={spec.max_requeues}); checkpoint kept: "
                         "--resume-study with a longer --time continues it")  # fmt: skip
        return False
    refused = scontrol("requeue", job_id) if job_id else "no SLURM job to requeue"
    if refused:
        run.write_status("TIMEOUT", cause="timeout",
                         reason=f"time limit ahead (USR2) at step {step}; {saved}; SLURM refused "
                         f"the requeue (scontrol requeue: {refused}; requeue disabled by "
                         "JobRequeue=0 or --no-requeue?): --resume-study continues it")  # fmt: skip
        return False
    same = int(status.get("submission", 0)) == spec.submission
    run.write_status("PREEMPTED", cause="requeue", requeues=requeues + 1,
                     submission=spec.submission, retries=budget(status, spec, "retries"),
                     excluded=status.get("excluded", []) if same else [],
                     reason=f"time limit ahead (USR2) at step {step}; {saved}; "
                     f"requeue {requeues + 1} of {spec.max_requeues}")  # fmt: skip
    return True


def scontrol(*args: str) -> str | None:
    """``scontrol ARGS``; None when it worked, else its one-line complaint.

    It outlives the job's own end: once a job is requeued, SLURM sends SIGTERM to every process
    of it, and an ``scontrol update`` started just then would die without a word. It ignores
    SIGTERM (SIGKILL, KillWait seconds later, still ends it)."""
    try:
        proc = subprocess.run(["scontrol", *args], capture_output=True, text=True, check=False,
                              timeout=SCONTROL_TIMEOUT_S,
                              preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{type(e).__name__}: {e}"
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"
