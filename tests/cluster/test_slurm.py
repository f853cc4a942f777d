"""The real SLURM cluster (``make cluster-up``): submission, arrays, collector, 2 nodes, requeue.

The cluster runs CPU jobs: "resumes exactly" below means bit-identical on CPU.

Every study is submitted once by a module fixture, so they share the cluster's slots; each test
then waits for its own jobs. With ``T2S_REQUIRE_SLURM=1`` (CI) a missing cluster is a failure,
never a skip.
"""

from __future__ import annotations

import json
import subprocess
import time

import pandas as pd
import pytest
import torch

from jobs.status import render, table
from tests.cluster.conftest import TERMINAL, WAIT_S, sacct, submit, wait_for
from tests.conftest import read_metrics
from text2sign.run.weights import fp32_weights

pytestmark = pytest.mark.cluster
STEPS = 100  # the requeue test's run length (and its uninterrupted reference's): long enough that
# the test sees it mid-training however long the fixture's other submissions take (60 was outpaced
# once in CI, 2026-12-07, when the cluster was otherwise idle)


@pytest.fixture(scope="module")
def studies(slurm, synth_data, tmp_path_factory) -> dict:
    results = tmp_path_factory.mktemp("results")
    # bf16 is slow on this CPU (~0.7 s/step): the run lives long enough to be signalled. The
    # requeue run is held until its test releases it, so the signal lands mid-training however
    # long the other submissions take (in CI, 2026-12-07, under load, it had finished first).
    long = ["--set", f"train.max_steps={STEPS}", "--set", "train.checkpoint_every=100",
            "--set", "train.precision=bf16"]  # fmt: skip
    return {
        "results": results,
        "requeue": submit(
            results, "requeue", synth_data, "--variants", "baseline", *long, "--sbatch-extra=--hold"
        ),  # fmt: skip
        "reference": submit(results, "reference", synth_data, "--variants", "baseline", *long),
        "all": submit(
            results, "all", synth_data, "--variants", "all", "--set", "train.max_steps=6"
        ),
        "two_node": submit(
            results,
            "two_node",
            synth_data,
            "--variants",
            "baseline",
            "--nodes",
            "2",
            "--tasks-per-node",
            "1",
            "--set",
            "train.max_steps=6",
        ),  # fmt: skip
        "nan": submit(
            results,
            "nan",
            synth_data,
            "--variants",
            "no_ema",
            "--set",
            "train.max_steps=6",
            "--set",
            "train.nan_at_step=2",
        ),  # fmt: skip
    }


def test_timeout_signal_requeues_and_resumes_exactly(studies):
    import submitit

    rec = studies["requeue"]
    job_id = rec["runs"][0]["job_id"]
    run_dir = studies["results"] / "requeue" / rec["runs"][0]["run_dir"]
    subprocess.run(["scontrol", "release", job_id.split("_")[0]], check=True)
    deadline = time.monotonic() + WAIT_S
    asked = 0.0  # sacct only every 10 s: under load one call took long enough (CI 2026-12-07)
    while not (run_dir / "training_metrics.csv").exists() or len(read_metrics(run_dir)) < 5:
        assert time.monotonic() < deadline
        if time.monotonic() - asked > 10:
            assert sacct(job_id).get("state") not in TERMINAL
            asked = time.monotonic()
        time.sleep(0.2)
    # The signal must land mid-training, not in the evaluation after the last step.
    assert len(read_metrics(run_dir)) < STEPS - 10, "the run outpaced the test: raise STEPS"
    job = submitit.SlurmJob(
        folder=studies["results"] / "requeue" / "submitit" / "%j", job_id=job_id
    )
    job._interrupt(timeout=True)  # USR2, as SLURM sends it before the time limit
    wait_for(job_id, states={"PENDING", "REQUEUED"}, timeout=180)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "PREEMPTED" and 5 <= status["step"] < STEPS
    assert wait_for(job_id)["state"] == "COMPLETED"
    assert [int(r["step"]) for r in read_metrics(run_dir)] == list(
        range(1, STEPS + 1)
    )  # each step once
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "COMPLETED" and status["attempts"] == 2
    row = next(r for r in table(studies["results"] / "requeue"))
    assert row["restarts"] == 1 and row["state"] == "COMPLETED", render([row])

    ref = studies["reference"]
    ref_dir = studies["results"] / "reference" / ref["runs"][0]["run_dir"]
    assert wait_for(ref["runs"][0]["job_id"])["state"] == "COMPLETED"
    assert [r["loss"] for r in read_metrics(run_dir)] == [r["loss"] for r in read_metrics(ref_dir)]
    a = fp32_weights(run_dir / "checkpoints", f"step{STEPS:08d}", zero_stage=2)
    b = fp32_weights(ref_dir / "checkpoints", f"step{STEPS:08d}", zero_stage=2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_all_variants_array_then_collector(studies):
    rec = studies["all"]
    assert rec["_submit_s"] < 30 and len(rec["array_job_ids"]) == 1
    collector = wait_for(rec["collector_job_id"])
    assert collector["state"] == "COMPLETED"
    runs = [sacct(r["job_id"]) for r in rec["runs"]]
    assert [r["job_id"].split("_")[0] for r in rec["runs"]] == rec["array_job_ids"] * 3  # one array
    assert all(r["state"] == "COMPLETED" for r in runs), runs
    assert collector["start"] >= max(r["end"] for r in runs)  # afterany: after every run ended
    df = pd.read_csv(studies["results"] / "all" / "comparison_table.csv")
    assert sorted(df.variant) == ["baseline", "no_ema", "text_finetuned"]
    assert set(df.state) == {"1 COMPLETED"} and df.final_loss_mean.notna().all()
    assert rec["git"]["commit"] and rec["container"]["runtime"] == "none"
    assert all(r["config_hash"] for r in rec["runs"]) and "jobs/submit.py" in " ".join(
        rec["command"]
    )


def test_the_report_pages_in_a_real_browser(studies, browser):
    """The collector job's report.html of a study the cluster ran, opened in Chromium: every
    video plays, the numbers are the CSV's, links resolve; a failed run is a row with its reason."""
    for name, videos in (("all", 4 * (1 + 2 * 3)), ("nan", 0)):
        wait_for(studies[name]["collector_job_id"])
        study = studies["results"] / name
        check = browser.check_page(study / "report.html", f"cluster-{name}")
        browser.assert_page_ok(check, study / "comparison_table.csv", videos=videos)
        assert check.load_ms < 1000, check.load_ms
    assert "non-finite loss at step 2" in check.text and "No videos of no_ema" in check.text


def test_two_nodes_one_task_each_train_with_deepspeed(studies):
    rec = studies["two_node"]
    job = rec["runs"][0]["job_id"]
    assert wait_for(job)["state"] == "COMPLETED"
    run_dir = studies["results"] / "two_node" / rec["runs"][0]["run_dir"]
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["world_size"] == 2 and meta["backend"] == "gloo"
    logs = "".join(
        p.read_text() for p in (studies["results"] / "two_node" / "submitit").rglob("*.out")
    )
    assert "task 0/2 on n1" in logs and "task 1/2 on n2" in logs
    assert [int(r["step"]) for r in read_metrics(run_dir)] == list(range(1, 7))


def test_failed_run_still_gets_the_collector(studies):
    rec = studies["nan"]
    assert wait_for(rec["runs"][0]["job_id"])["state"] == "FAILED"
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    df = pd.read_csv(studies["results"] / "nan" / "comparison_table.csv")
    assert list(df.state) == ["1 FAILED"]
    report = (studies["results"] / "nan" / "report.md").read_text()
    assert "non-finite loss at step 2" in report
