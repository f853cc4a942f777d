"""Studies through the real SLURM cluster with every trainer inside the CPU image.

The whole tiny study (3 variants, 1 seed) runs in the image; a time-limit signal (USR2) reaches
the trainer through ``apptainer exec``, which checkpoints, exits 75 and is requeued on the host;
the requeued job resumes inside the image with bit-identical losses and weights to an
uninterrupted run (also in the image; bit-identity holds on CPU, which this image is). Needs the cluster (T2S_REQUIRE_SLURM) and the image
(T2S_REQUIRE_APPTAINER).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from jobs.container import sha256
from tests.cluster.conftest import TERMINAL, WAIT_S, sacct, slurm, wait_for  # noqa: F401
from tests.conftest import REPO, TINY_TEST_SETS, read_metrics
from text2sign.run.weights import fp32_weights

# Jobs may queue behind other studies on the shared 2-node cluster: more than the default 600 s.
pytestmark = [pytest.mark.container, pytest.mark.timeout(1200)]
STEPS = 60  # the requeue test's run length (and its reference's)


def submit(results: Path, study: str, data: Path, image: Path, *args: str) -> dict:
    sets = [x for s in [*TINY_TEST_SETS, f"data.root={data}", "train.num_samples=1"]
            for x in ("--set", s)]  # fmt: skip
    cmd = [sys.executable, "jobs/submit.py", "--executor", "slurm", "--profile", "tiny", "--study",
           study, "--results", str(results), "--runtime", "apptainer", "--image", str(image),
           *sets, *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads((results / study / "study.json").read_text())


@pytest.fixture(scope="module")
def studies(slurm, image, synth_data, tmp_path_factory) -> dict:  # noqa: F811
    results = tmp_path_factory.mktemp("results")
    long = ["--variants", "baseline", "--set", f"train.max_steps={STEPS}",
            "--set", "train.checkpoint_every=100", "--set", "train.precision=bf16"]  # fmt: skip
    return {
        "results": results,
        "image": image,
        "requeue": submit(results, "requeue", synth_data, image, *long),
        "reference": submit(results, "reference", synth_data, image, *long),
        "all": submit(
            results, "all", synth_data, image, "--variants", "all", "--set", "train.max_steps=6"
        ),  # fmt: skip
    }


def test_usr2_reaches_the_trainer_in_the_image_requeues_and_resumes_exactly(studies):
    import submitit

    rec = studies["requeue"]
    job_id = rec["runs"][0]["job_id"]
    run_dir = studies["results"] / "requeue" / rec["runs"][0]["run_dir"]
    deadline = time.monotonic() + WAIT_S
    while not (run_dir / "training_metrics.csv").exists() or len(read_metrics(run_dir)) < 5:
        state = sacct(job_id).get("state")
        assert time.monotonic() < deadline and state not in TERMINAL, f"job {job_id}: {state}"
        time.sleep(0.5)
    assert len(read_metrics(run_dir)) < STEPS - 10, "the run outpaced the test: raise STEPS"
    job = submitit.SlurmJob(folder=studies["results"] / "requeue" / "submitit" / "%j",
                            job_id=job_id)  # fmt: skip
    job._interrupt(timeout=True)  # USR2, as SLURM sends it before the time limit
    wait_for(job_id, states={"PENDING", "REQUEUED"}, timeout=180)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "PREEMPTED" and 5 <= status["step"] < STEPS, status
    assert wait_for(job_id)["state"] == "COMPLETED"
    steps = [int(r["step"]) for r in read_metrics(run_dir)]
    assert steps == list(range(1, STEPS + 1))  # each step once: none lost, none repeated
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "COMPLETED" and status["attempts"] == 2
    # Both attempts ran in the image (the requeued one's log and metadata say so).
    logs = "".join(p.read_text() for p in (run_dir.parents[1] / "submitit").rglob("*.out"))
    assert "apptainer exec" in logs
    assert (
        json.loads((run_dir / "metadata.json").read_text())["container"]["runtime"] == "apptainer"
    )

    ref = studies["reference"]
    ref_dir = studies["results"] / "reference" / ref["runs"][0]["run_dir"]
    assert wait_for(ref["runs"][0]["job_id"])["state"] == "COMPLETED"
    assert [r["loss"] for r in read_metrics(run_dir)] == [r["loss"] for r in read_metrics(ref_dir)]
    a = fp32_weights(run_dir / "checkpoints", f"step{STEPS:08d}", zero_stage=2)
    b = fp32_weights(ref_dir / "checkpoints", f"step{STEPS:08d}", zero_stage=2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_whole_tiny_study_runs_in_the_image(studies):
    rec = studies["all"]
    digest = sha256(studies["image"])
    assert rec["container"] == {"runtime": "apptainer", "image": str(studies["image"]),
                                "sha256": digest}  # fmt: skip
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    runs = [sacct(r["job_id"]) for r in rec["runs"]]
    assert len(runs) == 3 and all(r["state"] == "COMPLETED" for r in runs), runs
    df = pd.read_csv(studies["results"] / "all" / "comparison_table.csv")
    assert sorted(df.variant) == ["baseline", "no_ema", "text_finetuned"]
    assert set(df.state) == {"1 COMPLETED"} and df.final_loss_mean.notna().all()
    for r in rec["runs"]:
        assert r["command"][:2] == ["apptainer", "exec"] and "--nv" not in r["command"]
        meta = json.loads((studies["results"] / "all" / r["run_dir"] / "metadata.json").read_text())
        assert meta["container"]["runtime"] == "apptainer", meta["container"]
        assert meta["container"]["sha256"] == digest
        assert meta["container"]["image"] == str(studies["image"])
