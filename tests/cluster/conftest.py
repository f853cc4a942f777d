"""What every real-cluster test shares: the cluster check, submitting, and sacct/squeue polls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.study import slurm_reachable
from tests.conftest import REPO, TINY_TEST_SETS

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}
WAIT_S = 900


@pytest.fixture(scope="session")
def slurm() -> None:
    if not slurm_reachable():
        msg = "no SLURM cluster answers (run `make cluster-up`)"
        if os.environ.get("T2S_REQUIRE_SLURM") == "1":
            pytest.fail(f"T2S_REQUIRE_SLURM=1 but {msg}")
        pytest.skip(f"{msg}; set T2S_REQUIRE_SLURM=1 to make this a failure")


def submit_cmd(results: Path, study: str, data: Path, *args: str) -> list[str]:
    sets = [
        x
        for s in [*TINY_TEST_SETS, f"data.root={data}", "train.num_samples=1"]
        for x in ("--set", s)
    ]
    return [sys.executable, "jobs/submit.py", "--executor", "slurm", "--profile", "tiny", "--study",
            study, "--results", str(results), *sets, *args]  # fmt: skip


def job_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def submit(results: Path, study: str, data: Path, *args: str, env: dict | None = None) -> dict:
    t0 = time.monotonic()
    proc = subprocess.run(submit_cmd(results, study, data, *args), cwd=REPO,
                          env=env or job_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads((results / study / "study.json").read_text())
    record["_submit_s"] = time.monotonic() - t0
    return record


def sacct(job: str, fields: tuple[str, ...] = ("Start", "End")) -> dict[str, str]:
    """The latest accounting record of one job (array task ids like ``12_0`` included): ``job``,
    ``state`` and the named sacct fields, keyed in lower case."""
    columns = ",".join(["JobID", "State", *fields])
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", columns, "-j", job],
                         capture_output=True, text=True).stdout  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line.split("|")[0] == job]
    if not rows:
        return {}
    rec = dict(zip(["job", "state", *(f.lower() for f in fields)], rows[-1], strict=True))
    rec["state"] = rec["state"].split()[0]  # "CANCELLED by 0" → "CANCELLED"
    return rec


def sacct_all(job: str) -> list[dict[str, str]]:
    """Every record of a job, requeued attempts included (``sacct -D``), oldest first."""
    out = subprocess.run(["sacct", "-X", "-D", "-n", "-P", "-o", "JobID,State,NodeList", "-j", job],
                         capture_output=True, text=True).stdout  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line.split("|")[0] == job]
    return [{"job": r[0], "state": r[1].split()[0], "nodes": r[2]} for r in rows]


def wait_for(job: str, states=TERMINAL, timeout: float = WAIT_S) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = sacct(job)
        if info.get("state") in states:
            return info
        time.sleep(2)
    raise AssertionError(f"job {job} did not reach {states} in {timeout}s: {sacct(job)}")


def squeue_names() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
    return out.split()
