"""A job of several tasks where task 1 dies (review item 9): the node that failed is excluded, not
task 0's, and task 0 does not wait in a collective until the process-group timeout. The real
two-task job: tests/cluster/test_strict.py."""

from __future__ import annotations

import pytest

from jobs import ending
from jobs.spec import JobContext
from tests.unit.jobs.test_ending import _run


@pytest.fixture(autouse=True)
def accepted(monkeypatch):
    monkeypatch.setattr(ending, "scontrol", lambda *args: None)


def test_srun_names_the_task_and_node_that_failed_first():
    lines = ["srun: error: n2: task 1: Killed", "srun: Terminating StepId=12.0",
             "srun: error: n1: task 0: Terminated"]  # fmt: skip
    assert ending.srun_failure(lines) == ("1", "n2", "Killed")
    assert ending.srun_failure(["srun: error: n2: tasks 0-1: Exited with exit code 1"]) == (
        "0", "n2", "Exited with exit code 1")  # fmt: skip
    assert ending.srun_failure(["text2sign: error: boom"]) is None


def test_a_failed_task_on_another_node_is_the_node_excluded(tmp_path):
    """Before: the retry excluded task 0's node (n1) whatever task had died."""
    spec, run = _run(tmp_path)
    ctx = JobContext("7_0", "n1", "log", failed=("1", "n2", "trainer killed by SIGKILL"))
    end = ending.after_exit(spec, -9, ctx)
    st = run.read_status()
    assert end.action == "retry" and end.exclude == ("n2",) and st["excluded"] == ["n2"]
    assert "after: task 1 on n2: trainer killed by SIGKILL; on n2" in st["reason"]


def test_task_failure_notes_are_per_job_attempt(tmp_path):
    spec, _ = _run(tmp_path)
    ending.report_task_failure(spec, 1, "n2", "7_0", "0", "trainer killed by SIGKILL")
    assert ending.task_failure(spec, "7_0", "0") == ("1", "n2", "trainer killed by SIGKILL")
    assert ending.task_failure(spec, "7_0", "1") is None  # the requeued attempt: not its failure
    assert ending.task_failure(spec, "8_0", "0") is None


def test_a_node_the_job_needs_is_not_excluded(tmp_path, monkeypatch):
    """Before: a 2-node job on a 2-node partition excluded n2 and pended forever (BadConstraints)."""
    from text2sign.study import slurm_query

    monkeypatch.setattr(slurm_query, "nodes_left", lambda job, exclude: (1, 2))
    spec, run = _run(tmp_path)
    ctx = JobContext("7_0", "n1", "log", failed=("1", "n2", "trainer killed by SIGKILL"))
    end = ending.after_exit(spec, -9, ctx)
    st = run.read_status()
    assert end.action == "retry" and end.exclude == () and st["excluded"] == []
    assert st["reason"].startswith("retry 1 of 1 not excluding n2: the partition would have 1 "
                                   "usable node(s) left for a 2-node job, after: task 1 on n2")  # fmt: skip


def test_usable_nodes_come_from_the_jobs_partition(monkeypatch):
    from text2sign.study import slurm_query

    answers = {"scontrol": "JobId=7 ArrayTaskId=0 Partition=debug NumNodes=2 NumCPUs=2",
               "sinfo": "n1 idle\nn2 alloc\nn3 drain*\nn4 down\n"}  # fmt: skip
    monkeypatch.setattr(slurm_query, "_run", lambda cmd, timeout=30: answers[cmd[0]])
    assert slurm_query.nodes_left("7_0", ("n2",)) == (1, 2)
    assert slurm_query.nodes_left("7_0", ()) == (2, 2)
    monkeypatch.setattr(slurm_query, "_run", lambda cmd, timeout=30: None)
    assert slurm_query.nodes_left("7_0", ("n2",)) is None
