"""The study's cost on the real cluster: one run requeued by USR2 (as before a time limit), then
cancelled; the collector's core-hours must equal sacct's CPUTimeRAW of every attempt, and only the
work after each attempt's checkpoint counts as lost (both attempts checkpointed on their signal).

The check against sacct is an independent call (``sacct -D -X -P -n -o JobID,CPUTimeRAW``), not
the collector's own parsing.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import submitit

from tests.cluster.conftest import sacct_all, submit, wait_for
from tests.conftest import read_metrics

pytestmark = pytest.mark.cluster
STUDY = "st-cost"


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait(run_dir: Path, ok, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not ok(_status(run_dir)):
        assert time.monotonic() < deadline, f"{what} in {timeout}s: {_status(run_dir)}"
        time.sleep(0.5)


def test_core_hours_equal_sacct_cputimeraw_with_a_requeue(slurm, synth_data, tmp_path):
    sets = ["train.max_steps=3000", "train.checkpoint_every=1000", "eval.enabled=false",
            "train.num_samples=0", "slurm.max_requeues=1"]  # fmt: skip
    rec = submit(tmp_path, STUDY, synth_data, "--variants", "baseline",
                 *[x for s in sets for x in ("--set", s)])  # fmt: skip
    run, job_id = rec["runs"][0], rec["runs"][0]["job_id"]
    run_dir = tmp_path / STUDY / run["run_dir"]

    def running(st: dict) -> bool:
        return st.get("state") == "RUNNING" and len(read_metrics(run_dir)) >= 2

    _wait(run_dir, running, "trainer not RUNNING")
    job = submitit.SlurmJob(folder=tmp_path / STUDY / "submitit" / "%j", job_id=job_id)
    job._interrupt(timeout=True)  # USR2: checkpoint, exit 75, scontrol requeue
    wait_for(job_id, states={"PENDING", "REQUEUED"}, timeout=180)
    _wait(run_dir, lambda st: st.get("attempts", 1) >= 2 and st.get("state") == "RUNNING",
          "requeued attempt not RUNNING")  # fmt: skip
    subprocess.run(["scancel", job_id], check=True)  # this test's own job only
    wait_for(job_id, timeout=300)
    assert wait_for(rec["collector_job_id"], timeout=600)["state"] == "COMPLETED"

    out = subprocess.run(["sacct", "-D", "-X", "-P", "-n", "-o", "JobID,State,CPUTimeRAW", "-j",
                          job_id], capture_output=True, text=True, check=True).stdout  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line.split("|")[0] == job_id]
    assert [r[1].split()[0] for r in rows][0] == "REQUEUED" and len(rows) == 2, rows
    cpu_s = sum(int(r[2]) for r in rows)
    assert cpu_s > 0 and len(sacct_all(job_id)) == 2

    df = pd.read_csv(tmp_path / STUDY / "comparison_table.csv")
    assert df.core_hours.sum() == pytest.approx(cpu_s / 3600, rel=1e-9)
    assert df.gpu_hours.sum() == 0 and list(df.cost_unit) == ["core-h"]
    assert list(df.attempts) == [2] and list(df.lost_attempts) == [2]  # REQUEUED + CANCELLED
    # Before (review item 14): 100% lost. Both attempts checkpointed on their signal: only the
    # seconds from each checkpoint to the attempt's end are lost, not the attempts.
    assert 0 < df.lost_share.iloc[0] < 0.5, df.lost_share.iloc[0]
    report = (tmp_path / STUDY / "report.md").read_text()
    cost = report.split("## Cost")[1].split("\n## ")[0]
    assert f"**{cpu_s / 3600:.4g} core-h** over 2 attempts; " in cost, cost
    assert "was lost: the work after the last checkpoint of the 2 attempts" in cost
    assert "collector job's own cost is excluded" in cost
