"""What a strict site does to a job, on the real cluster: requeue refused (``--no-requeue``, as
under ``JobRequeue=0``), a task other than 0 dying in a two-task job, a later ``sbatch`` refused
after an array was queued (review items 8, 9 and 3). The cluster binds every task to its CPUs
(``TaskPlugin=task/affinity``, slurm/local/slurm.conf.in): the threads tests read the binding.

Every study is submitted by one module fixture, so they share the cluster's time; each test waits
for its own jobs. docs/lifecycle.md "Fault matrix" lists the same rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import submitit

from tests.cluster.conftest import (
    TERMINAL,
    job_env,
    sacct,
    sacct_all,
    submit,
    submit_cmd,
    wait_for,
)
from tests.cluster.test_sbatch import make, sbatch_make
from tests.conftest import REPO, read_metrics
from text2sign.study import slurm_query

pytestmark = pytest.mark.cluster
LONG = ["train.max_steps=3000", "train.checkpoint_every=1000", "eval.enabled=false",
        "train.num_samples=0"]  # fmt: skip
REFUSED = "Requested operation is presently disabled"


def _sets(*pairs: str) -> list[str]:
    return [x for pair in pairs for x in ("--set", pair)]


def _run_dir(results: Path, study: str, rec: dict) -> Path:
    return results / study / rec["runs"][0]["run_dir"]


def _status(path: Path) -> dict:
    try:
        return json.loads((path / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait_running(path: Path, job: str, rows: int = 3, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = _status(path)
        try:
            if st.get("state") == "RUNNING" and len(read_metrics(path)) >= rows:
                return st
        except (OSError, KeyError):
            pass
        assert sacct(job).get("state") not in TERMINAL, f"job {job} ended early: {st}"
        time.sleep(0.5)
    raise AssertionError(f"{path}: not RUNNING with {rows} rows in {timeout}s: {_status(path)}")


def _trainer_of_task(path: Path, task: int) -> int:
    """The pid of the trainer (``python -m text2sign train``) of task ``task`` of this run."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"text2sign" in cmd and b"train" in cmd and str(path).encode() in cmd
                and f"SLURM_PROCID={task}".encode() in env):  # fmt: skip
            return int(proc.name)
    raise AssertionError(f"no trainer of task {task} for {path}")


@pytest.fixture(scope="module")
def strict(slurm, synth_data, tmp_path_factory) -> dict:
    results = tmp_path_factory.mktemp("strict")
    two = ["--nodes", "2", "--tasks-per-node", "1"]
    return {
        "results": results,
        "norequeue": submit(
            results,
            "norequeue",
            synth_data,
            "--variants",
            "baseline",
            *_sets(*LONG),
            "--sbatch-extra=--no-requeue",
        ),  # fmt: skip
        "noretry": sbatch_make(
            "sbatch-train",
            results,
            "noretry",
            synth_data,
            *LONG,
            "train.max_steps=400",  # the test kills it at 3 rows; 40 steps ended before the
            "train.log_every=1",  # test looked once, in CI, 2026-12-07 (the cluster was idle)
            VARIANT="baseline",
            SEED="0",
            SBATCH_ARGS="--sbatch-extra=--no-requeue",
        ),  # fmt: skip
        "task1": submit(
            results,
            "task1",
            synth_data,
            "--variants",
            "baseline",
            *two,
            *_sets(*LONG, "slurm.max_retries=1"),
        ),  # fmt: skip
        "task1_sbatch": sbatch_make(
            "sbatch-train",
            results,
            "task1_sbatch",
            synth_data,
            *LONG,
            "slurm.max_retries=0",
            VARIANT="baseline",
            SEED="0",
            SBATCH_ARGS=" ".join(two),
        ),  # fmt: skip
    }


def test_usr2_where_requeue_is_refused_ends_timeout_with_slurms_words(strict):
    """Before: PREEMPTED 'requeue 1 of 3' was written, scontrol's refusal went unnoticed, and the
    run stayed PREEMPTED until the collector relabelled it."""
    results, rec = strict["results"], strict["norequeue"]
    job, path = rec["runs"][0]["job_id"], _run_dir(results, "norequeue", rec)
    _wait_running(path, job)
    submitit.SlurmJob(folder=results / "norequeue" / "submitit" / "%j", job_id=job)._interrupt(
        timeout=True
    )  # USR2, as SLURM sends it before the time limit
    assert wait_for(job, timeout=300)["state"] in TERMINAL
    st = _status(path)
    assert st["state"] == "TIMEOUT" and st["cause"] == "timeout", st
    assert f"SLURM refused the requeue (scontrol requeue: {REFUSED}" in st["reason"]
    assert "requeue 1 of" not in st["reason"] and (path / "checkpoints" / "latest").exists()
    assert [r["state"] for r in sacct_all(job)] != ["REQUEUED"] and len(sacct_all(job)) == 1


def test_a_crash_where_requeue_is_refused_is_failed_with_slurms_words(strict):
    """The plain-sbatch door: the retry's scontrol requeue refused; never PENDING 'retry'."""
    results, rec = strict["results"], strict["noretry"]
    job, path = rec["runs"][0]["job_id"], _run_dir(results, "noretry", rec)
    st = _wait_running(path, job)
    os.kill(st["pid"], signal.SIGKILL)
    assert wait_for(job, timeout=300)["state"] in TERMINAL
    st = _status(path)
    assert st["state"] == "FAILED" and st["cause"] == "crash", st
    assert "trainer killed by SIGKILL" in st["reason"] and "SLURM refused the retry" in st["reason"]
    assert REFUSED in st["reason"] and len(sacct_all(job)) == 1


def test_task_1_dying_retries_at_once_without_excluding_a_node_it_needs(strict):
    """submitit door, 2 nodes: task 1's trainer (on n2) is killed. Before: task 0 waited in the
    collective until the process-group timeout (30 min), then the retry excluded n1 (task 0's);
    later it excluded n2, and a 2-node job on a 2-node cluster pended forever (BadConstraints).
    Now the retry names n2 and says why it does not exclude it."""
    results, rec = strict["results"], strict["task1"]
    job, path = rec["runs"][0]["job_id"], _run_dir(results, "task1", rec)
    _wait_running(path, job)
    os.kill(_trainer_of_task(path, 1), signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(job, states={"PENDING", "REQUEUED"}, timeout=180)
    assert time.monotonic() - t0 < 120
    st = _status(path)
    assert st["state"] == "PENDING" and st["excluded"] == [], st
    assert "not excluding n2: the partition would have 1 usable node(s) left for a 2-node job" \
        in st["reason"], st  # fmt: skip
    assert "after: task 1 on n2: trainer killed by SIGKILL" in st["reason"]
    shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True,
                           text=True).stdout  # fmt: skip
    assert "ExcNodeList=(null)" in shown and "BadConstraints" not in shown, shown
    subprocess.run(["scancel", job], check=True)


def test_task_1_dying_in_a_plain_sbatch_job_names_its_node(strict):
    """Plain sbatch, 2 nodes, no retry: srun --kill-on-bad-exit ends the job, and srun's line
    names task 1's node."""
    results, rec = strict["results"], strict["task1_sbatch"]
    job, path = rec["runs"][0]["job_id"], _run_dir(results, "task1_sbatch", rec)
    _wait_running(path, job)
    os.kill(_trainer_of_task(path, 1), signal.SIGKILL)
    t0 = time.monotonic()
    assert wait_for(job, timeout=300)["state"] in TERMINAL
    assert time.monotonic() - t0 < 120
    st = _status(path)
    assert st["state"] == "FAILED" and st["reason"].startswith("task 1 on n2: "), st
    assert "no retry left (slurm.max_retries=0)" in st["reason"]


@pytest.mark.parametrize("door", ["submit", "sbatch"])
def test_a_later_sbatch_refused_keeps_and_records_what_was_queued(slurm, synth_data, tmp_path,
                                                                  door):  # fmt: skip
    """Two resource groups (a sweep over the partition): the first array is queued (held), the
    second refused ('invalid partition'). Before (submitit door): the study folder was removed
    with the queued array's pickles, and its id was recorded nowhere."""
    study = f"later-{door}"
    args = ["--variants", "baseline", "--sweep", "slurm.partition=debug,nosuch",
            "--sbatch-extra=--hold", "--set", "train.max_steps=2"]  # fmt: skip
    if door == "submit":
        cmd = submit_cmd(tmp_path, study, synth_data, *args)
    else:
        cmd = [str(REPO / ".venv" / "bin" / "python"), "jobs/sbatch_study.py", "--study", study,
               "--results", str(tmp_path), "--set", f"data.root={synth_data}", *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=job_env(), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "invalid partition" in proc.stderr.lower()
    rec = json.loads((tmp_path / study / "study.json").read_text())
    assert len(rec["array_job_ids"]) == 1 and rec["collector_job_id"] is None
    assert [r["variant"] for r in rec["runs"]] == ["baseline__partitiondebug"]
    job = rec["runs"][0]["job_id"]
    assert slurm_query.queued([job]) == {job: "PENDING"}  # held, queued (squeue knows it now)
    if door == "submit":
        assert list((tmp_path / study / "submitit").rglob("*_submitted.pkl"))
    proc = make("cancel", STUDY=study, RESULTS=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 60  # sacct names a task never started 12_[0%8] or 12
    array = job.split("_")[0]
    while True:
        jobs = slurm_query.summarize(slurm_query.job_records([array]))
        state = (jobs.get(job) or jobs.get(array) or {}).get("state")
        if state == "CANCELLED":
            break
        assert time.monotonic() < deadline, f"{job}: {jobs}"
        time.sleep(1)
