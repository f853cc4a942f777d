"""The fault matrix on the real cluster (``make cluster-up``): each fault is injected on a real
job and the end state is read where a user reads it: sacct, status.json, the table, the report.

Every study is submitted by one module fixture, so the faults share the cluster's time; each test
then waits for its own jobs. A requeued job starts again only after the cluster's cred_expire
(30 s here): forcing ``StartTime=now`` races the revocation of the old job's credential and SLURM
then kills the restart ("Job credential revoked"). docs/lifecycle.md "Fault matrix" lists the same rows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import submitit

from jobs.status import table
from tests.cluster.conftest import (
    TERMINAL,
    job_env,
    sacct,
    sacct_all,
    squeue_names,
    submit,
    submit_cmd,
    wait_for,
)
from tests.conftest import REPO, read_metrics

pytestmark = pytest.mark.cluster
# fmt: skip  (never finishes: it is cancelled or signalled)


def _status(results: Path, study: str, rec: dict) -> dict:
    return json.loads((results / study / rec["runs"][0]["run_dir"] / "status.json").read_text())


def _wait_running(results: Path, study: str, rec: dict, rows: int = 3, timeout: float = 600):
    """Until the run's trainer is RUNNING with ``rows`` metric rows; returns its status."""
    run_dir = results / study / rec["runs"][0]["run_dir"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = json.loads((run_dir / "status.json").read_text())
            if st.get("state") == "RUNNING" and len(read_metrics(run_dir)) >= rows:
                return st
        except (OSError, ValueError, KeyError):
            pass
        assert sacct(rec["runs"][0]["job_id"]).get("state") not in TERMINAL, "job ended early"
        time.sleep(0.5)
    raise AssertionError(f"{study}: trainer not RUNNING with {rows} rows in {timeout}s")


def _sets(*pairs: str) -> list[str]:
    return [x for pair in pairs for x in ("--set", pair)]


@pytest.fixture(scope="module")
def faults(slurm, synth_data, tmp_path_factory) -> dict:
    results = tmp_path_factory.mktemp("faults")
    doomed = tmp_path_factory.mktemp("doomed_data")
    shutil.copytree(synth_data, doomed, dirs_exist_ok=True)
    held = "--sbatch-extra=--hold"  # released by its test, which needs the job running then
    long = _sets("train.max_steps=3000", "train.checkpoint_every=1000", "eval.enabled=false")
    kill = _sets("train.max_steps=40", "train.checkpoint_every=1000", "train.log_every=1",
                 "train.precision=bf16")  # fmt: skip
    short = _sets("train.max_steps=2", "eval.enabled=false", "train.num_samples=0")
    return {
        "results": results,
        "doomed": doomed,
        "cancel": submit(results, "cancel", synth_data, "--variants", "baseline", *long),
        "timeout": submit(
            results,
            "timeout",
            synth_data,
            "--variants",
            "baseline",
            *long,
            *_sets("slurm.max_requeues=1"),
        ),  # fmt: skip
        "kill": submit(results, "kill", synth_data, "--variants", "no_ema", *kill, held),
        "exit2": submit(results, "exit2", doomed, "--variants", "baseline", held),
        "split": submit(
            results, "split", synth_data, "--variants", "all", "--seeds", "0,1", *short
        ),  # fmt: skip
    }


def test_missing_dataset_is_refused_at_submit_and_nothing_is_queued(faults, tmp_path):
    proc = subprocess.run(submit_cmd(faults["results"], "nodata", tmp_path / "nowhere",
                                     "--variants", "all"),
                          cwd=REPO, env=job_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "does not exist" in proc.stderr and "--no-input-check" in proc.stderr
    assert not (faults["results"] / "nodata").exists()
    assert not [n for n in squeue_names() if "nodata" in n]


def test_two_submissions_of_one_study_at_once_exactly_one_wins(faults, synth_data):
    cmd = submit_cmd(faults["results"], "twice", synth_data, "--variants", "baseline",
                     "--sbatch-extra=--hold")  # fmt: skip
    procs = [subprocess.Popen(cmd, cwd=REPO, env=job_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "twice" in loser and loser.count("\n") == 1, loser
    rec = json.loads((faults["results"] / "twice" / "study.json").read_text())
    assert len(rec["runs"]) == 1 and len([n for n in squeue_names() if "twice" in n]) == 2

    # A resubmission while the run's job is still queued resubmits nothing.
    proc = subprocess.run([*cmd, "--resume-study"], cwd=REPO, env=job_env(), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "still PENDING in SLURM" in proc.stderr, proc.stderr
    assert "nothing to resubmit" in proc.stderr.splitlines()[-1]
    subprocess.run(["make", "-s", "cancel", "STUDY=twice", f"RESULTS={faults['results']}"],
                   cwd=REPO, check=True, capture_output=True)  # fmt: skip
    assert wait_for(rec["runs"][0]["job_id"], timeout=60)["state"] == "CANCELLED"


def test_a_run_that_exits_2_in_its_job_is_failed_with_the_reason_everywhere(faults):
    rec, results = faults["exit2"], faults["results"]
    shutil.rmtree(faults["doomed"])  # the dataset disappears after submit, before the job runs
    subprocess.run(["scontrol", "release", rec["array_job_ids"][0]], check=True)
    job = rec["runs"][0]["job_id"]
    assert wait_for(job)["state"] == "FAILED"
    st = _status(results, "exit2", rec)
    assert st["state"] == "FAILED" and st["cause"] == "usage"
    assert st["reason"] == f"dataset folder {faults['doomed']} does not exist"
    assert len(sacct_all(job)) == 1  # exit 2 is never retried
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    df = pd.read_csv(results / "exit2" / "comparison_table.csv")
    assert list(df.state) == ["1 FAILED"] and "does not exist" in df.not_completed[0]
    assert "does not exist" in (results / "exit2" / "comparison_table.md").read_text()
    assert "does not exist" in (results / "exit2" / "report.md").read_text()
    row = table(results / "exit2")[0]
    assert row["state"] == "FAILED" and "does not exist" in row["reason"]


def test_make_cancel_is_final(faults):
    rec, results = faults["cancel"], faults["results"]
    _wait_running(results, "cancel", rec)
    proc = subprocess.run(["make", "-s", "cancel", "STUDY=cancel", f"RESULTS={results}"],
                          cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    job = rec["runs"][0]["job_id"]
    assert wait_for(job, timeout=120)["state"] == "CANCELLED"
    time.sleep(40)  # longer than cred_expire: a requeued job would be back by now
    assert not [n for n in squeue_names() if "t2s-cancel" in n]
    assert [r["state"] for r in sacct_all(job)] == ["CANCELLED"]  # never REQUEUED
    st = _status(results, "cancel", rec)
    assert st["state"] == "CANCELLED" and st["cause"] == "cancel" and "SIGTERM" in st["reason"]
    run_dir = results / "cancel" / rec["runs"][0]["run_dir"]
    assert (run_dir / "checkpoints" / "latest").exists()  # checkpointed on the way out
    # The collector was cancelled with the study; `make collect` gives the table and report.
    subprocess.run(["make", "-s", "collect", "STUDY=cancel", f"RESULTS={results}"], cwd=REPO,
                   check=True, capture_output=True)  # fmt: skip
    assert "CANCELLED" in (results / "cancel" / "report.md").read_text()


def test_usr2_requeues_at_most_max_requeues_then_timeout(faults):
    rec, results = faults["timeout"], faults["results"]
    job_id = rec["runs"][0]["job_id"]
    job = submitit.SlurmJob(folder=results / "timeout" / "submitit" / "%j", job_id=job_id)
    for attempt in (1, 2):
        _wait_running(results, "timeout", rec, rows=3 if attempt == 1 else 1)
        job._interrupt(timeout=True)  # USR2, as SLURM sends it before the time limit
        if attempt == 1:
            wait_for(job_id, states={"PENDING", "REQUEUED"}, timeout=180)
            st = _status(results, "timeout", rec)
            assert st["state"] == "PREEMPTED" and "requeue 1 of 1" in st["reason"]
            deadline = time.monotonic() + 300
            while _status(results, "timeout", rec)["attempts"] < 2:
                assert time.monotonic() < deadline
                time.sleep(0.5)
    wait_for(job_id, timeout=300)
    st = _status(results, "timeout", rec)
    assert st["state"] == "TIMEOUT" and st["cause"] == "timeout" and st["requeues"] == 1
    assert "after 1 requeues (slurm.max_requeues=1)" in st["reason"]
    assert [r["state"] for r in sacct_all(job_id)][0] == "REQUEUED" and len(sacct_all(job_id)) == 2
    time.sleep(35)
    assert not [n for n in squeue_names() if "t2s-timeout-0" in n]
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    df = pd.read_csv(results / "timeout" / "comparison_table.csv")
    assert list(df.state) == ["1 TIMEOUT"] and "slurm.max_requeues=1" in df.not_completed[0]


def test_sigkill_before_the_first_checkpoint_is_retried_on_the_other_node(faults):
    rec, results = faults["kill"], faults["results"]
    subprocess.run(["scontrol", "release", rec["array_job_ids"][0]], check=True)
    st = _wait_running(results, "kill", rec, rows=3)
    first_node, pid = st["node"], st["pid"]
    os.kill(pid, signal.SIGKILL)  # what the OOM killer does: no handler, no checkpoint
    job_id = rec["runs"][0]["job_id"]
    wait_for(job_id, states={"PENDING", "REQUEUED"}, timeout=120)
    st = _status(results, "kill", rec)
    assert st["state"] == "PENDING" and st["retries"] == 1 and st["excluded"] == [first_node]
    assert "trainer killed by SIGKILL" in st["reason"] and "log: " in st["reason"]
    assert wait_for(job_id)["state"] == "COMPLETED"
    records = sacct_all(job_id)
    assert [r["state"] for r in records] == ["REQUEUED", "COMPLETED"]
    assert records[0]["nodes"] == first_node and records[1]["nodes"] != first_node
    st = _status(results, "kill", rec)
    assert st["state"] == "COMPLETED" and st["attempts"] == 2
    assert [h["node"] for h in st["history"]] == [first_node, records[1]["nodes"]]
    assert [h["state"] for h in st["history"]] == ["FAILED", "COMPLETED"]
    run_dir = results / "kill" / rec["runs"][0]["run_dir"]
    assert [int(r["step"]) for r in read_metrics(run_dir)] == list(range(1, 41))
    jsonl = [json.loads(line)["step"] for line in (run_dir / "training_metrics.jsonl").open()]
    assert jsonl == list(range(1, 41))
    study = json.loads((results / "kill" / "study.json").read_text())
    assert [(e["kind"], e["node"]) for e in study["events"]] == [("retry", first_node)]
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    assert (results / "kill" / "report.md").exists()


def test_a_study_larger_than_max_array_size_is_split_under_one_collector(faults):
    rec, results = faults["split"], faults["results"]
    max_array = int(subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
                    .stdout.split("MaxArraySize")[1].split("=")[1].split()[0])  # fmt: skip
    assert max_array < len(rec["runs"]) == 6, "the local cluster sets MaxArraySize=4"
    assert len(rec["array_job_ids"]) == 2
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    assert all(sacct(r["job_id"])["state"] == "COMPLETED" for r in rec["runs"])
    deps = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,Start", "-j",
                           rec["collector_job_id"]], capture_output=True, text=True).stdout  # fmt: skip
    assert deps.strip(), "the collector ran"
    df = pd.read_csv(results / "split" / "comparison_table.csv")
    assert sorted(df.variant) == ["baseline", "no_ema", "text_finetuned"]
    assert set(df.state) == {"2 COMPLETED"}
