"""Requeue and retry as a strict site answers them (review items 4, 8, 13): budgets belong to a
submission, a state announcing a requeue or a retry is written only once ``scontrol`` accepted,
a refusal ends the run with SLURM's words, and the launcher never writes status.json while the
trainer may. The real refusal (``--no-requeue``): tests/cluster/test_strict.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from jobs import ending
from jobs.spec import JobContext, RunSpec
from jobs.supervisor import Supervisor
from tests.unit.jobs.test_ending import _run
from text2sign.errors import EXIT_REQUEUE

REFUSED = "Requested operation is presently disabled for job 7_0"


@pytest.fixture
def slurm(monkeypatch):
    """``scontrol`` answering ``refuse`` (None: accepted); records what the run said meanwhile."""
    seen: list[tuple[tuple[str, ...], str]] = []
    answer: dict[str, str | None] = {"refuse": None}

    def scontrol(*args: str) -> str | None:
        seen.append((args, ""))
        return answer["refuse"]

    monkeypatch.setattr(ending, "scontrol", scontrol)
    return answer, seen


def test_a_resubmission_starts_with_the_whole_requeue_budget(tmp_path, slurm):
    """Before: requeues counted over the run's life; after a TIMEOUT, --resume-study with a
    longer --time had none left and ended TIMEOUT at its first USR2."""
    spec, run = _run(tmp_path, "TIMEOUT", reason="after 1 requeues", cause="timeout", requeues=1)
    run.write_status("PREEMPTED", reason="SIGUSR2 at step 9", cause="signal")
    again = RunSpec(**{**spec.__dict__, "submission": 1})
    assert ending.after_signal(again, EXIT_REQUEUE, "7_0")
    st = run.read_status()
    assert st["state"] == "PREEMPTED" and "requeue 1 of 1" in st["reason"]
    assert (st["requeues"], st["submission"]) == (1, 1)


def test_a_resubmission_starts_with_the_whole_retry_budget(tmp_path, slurm):
    spec, run = _run(tmp_path, "FAILED", reason="boom; no retry left", cause="crash", retries=1,
                     excluded=["n1"])  # fmt: skip
    run.write_status("RUNNING", start=True, node="n2")
    again = RunSpec(**{**spec.__dict__, "submission": 1})
    end = ending.after_exit(again, -9, JobContext("7_0", "n2", "log"))
    st = run.read_status()
    assert end.action == "retry" and end.exclude == ("n2",)  # this submission's nodes only
    assert (st["state"], st["retries"], st["excluded"]) == ("PENDING", 1, ["n2"])


def test_a_refused_requeue_is_timeout_with_slurms_words_never_preempted(tmp_path, slurm):
    """Before: PREEMPTED 'requeue 1 of 1' was written, then scontrol failed unnoticed."""
    answer, seen = slurm
    answer["refuse"] = REFUSED
    spec, run = _run(tmp_path, "PREEMPTED", reason="SIGUSR2 at step 5", cause="signal")
    assert not ending.after_signal(spec, EXIT_REQUEUE, "7_0")
    st = run.read_status()
    assert st["state"] == "TIMEOUT" and st["cause"] == "timeout" and st.get("requeues", 0) == 0
    assert f"SLURM refused the requeue (scontrol requeue: {REFUSED};" in st["reason"]
    assert "requeue 1 of" not in st["reason"] and [a for a, _ in seen] == [("requeue", "7_0")]


def test_a_refused_retry_is_failed_with_slurms_words(tmp_path, slurm):
    answer, _ = slurm
    answer["refuse"] = REFUSED
    spec, run = _run(tmp_path)
    end = ending.after_exit(spec, -9, JobContext("7_0", "n1", "log"))
    st = run.read_status()
    assert end.action == "none" and st["state"] == "FAILED" and st.get("retries", 0) == 0
    assert "SLURM refused the retry" in st["reason"] and REFUSED in st["reason"]


def test_a_trainer_still_running_at_the_signal_deadline_is_killed_before_the_launcher_writes(
    tmp_path, slurm
):
    """Before: the launcher wrote PREEMPTED (requeues 1) without the run lock while the trainer,
    still running, wrote its own status from what it had read before: the increment was lost."""
    spec, run = _run(tmp_path)
    trainer = textwrap.dedent(f"""
        import signal, sys, time
        from text2sign.run.rundir import RunDir
        from text2sign.run.runlock import RunLock
        lock = RunLock({str(run.path)!r}).acquire()
        signal.signal(signal.SIGUSR2, lambda *a: None)  # checkpointing, slowly
        print("ready", flush=True)
        run = RunDir({str(run.path)!r})
        seen = run.read_status()
        time.sleep(4)
        run.write_status("PREEMPTED", reason="SIGUSR2 at step 5 (late)", cause="signal",
                         requeues=seen.get("requeues", 0))
    """)
    sup = Supervisor(spec)
    sup.child = subprocess.Popen([sys.executable, "-c", trainer], stdout=subprocess.PIPE,
                                 text=True)  # fmt: skip
    assert sup.child.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    assert sup.stop_for_requeue("7_0", lead_s=1.0)
    assert time.monotonic() - t0 < 4  # killed at the deadline, not waited for
    st = run.read_status()
    assert st["state"] == "PREEMPTED" and st["requeues"] == 1 and "late" not in st["reason"]
    time.sleep(4.5)
    assert run.read_status()["requeues"] == 1  # nothing wrote over it afterwards
