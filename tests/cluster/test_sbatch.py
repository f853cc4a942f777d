"""The plain-sbatch door on the real cluster (``make cluster-up``): ``make sbatch-train``,
``make sbatch-study`` and ``make sbatch-collect`` as a user types them, from a shell with no venv
activated, and the same lifecycle as the submitit path (USR2 → requeue → exact resume, cancel
final; "exact" means bit-identical on CPU, which these jobs use). Every study is submitted once
by the module fixture; each test waits for its own jobs.
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
import torch

from jobs.status import table
from tests.cluster.conftest import (
    TERMINAL,
    WAIT_S,
    sacct,
    sacct_all,
    squeue_names,
    wait_for,
)
from tests.conftest import REPO, TINY_TEST_SETS, read_metrics
from text2sign.run.weights import fp32_weights

pytestmark = pytest.mark.cluster
STEPS = 120  # the requeue test's run length (and its uninterrupted reference's), bf16


def user_env() -> dict[str, str]:
    """A login shell without the venv: no VIRTUAL_ENV, no .venv/bin on PATH, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
    return env


def make(target: str, env: dict[str, str] | None = None, **variables: str):
    args = [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(["make", "-s", target, *args], cwd=REPO, env={**user_env(), **(env or {})},
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def sbatch_make(target: str, results: Path, study: str, data: Path, *sets: str,
                env: dict[str, str] | None = None, **kw: str) -> dict:  # fmt: skip
    sets_ = " ".join([*TINY_TEST_SETS, "train.num_samples=1", *sets])
    proc = make(target, env, STUDY=study, RESULTS=str(results), DATA=str(data), SETS=sets_, **kw)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((results / study / "study.json").read_text())


def run_dir(results: Path, study: str, rec: dict, i: int = 0) -> Path:
    return results / study / rec["runs"][i]["run_dir"]


def status(path: Path) -> dict:
    return json.loads((path / "status.json").read_text())


LONG = ["train.max_steps=3000", "train.checkpoint_every=1000", "eval.enabled=false"]
EXACT = [f"train.max_steps={STEPS}", "train.checkpoint_every=1000", "train.precision=bf16",
         "eval.enabled=false"]  # fmt: skip
SHORT = ["train.max_steps=2", "eval.enabled=false", "train.num_samples=0"]
KILL = ["train.max_steps=40", "train.checkpoint_every=1000", "train.log_every=1",
        "train.precision=bf16", "eval.enabled=false"]  # fmt: skip


@pytest.fixture(scope="module")
def studies(slurm, synth_data, tmp_path_factory) -> dict:
    results = tmp_path_factory.mktemp("sbatch")
    strays = sorted(REPO.glob("slurm-*.out"))
    one = {"VARIANT": "baseline", "SEED": "0"}
    doomed = tmp_path_factory.mktemp("doomed_data")
    shutil.copytree(synth_data, doomed, dirs_exist_ok=True)
    held = {**one, "SBATCH_ARGS": "--sbatch-extra=--hold"}  # released by its test
    return {
        "results": results,
        "strays": strays,
        "doomed": doomed,
        "kill": sbatch_make("sbatch-train", results, "kill", synth_data, *KILL, **held),
        "exit2": sbatch_make("sbatch-train", results, "exit2", doomed, *SHORT, **held),
        "two_node": sbatch_make(
            "sbatch-train",
            results,
            "two_node",
            synth_data,
            "train.max_steps=6",
            "eval.enabled=false",
            env={"OMP_NUM_THREADS": "1"},  # a shell that says 1 (make did): not the job's
            **one,
            SBATCH_ARGS="--nodes 2 --tasks-per-node 1 --cpus-per-task 2",
        ),  # fmt: skip
        "requeue": sbatch_make("sbatch-train", results, "requeue", synth_data, *EXACT, **one),
        "reference": sbatch_make("sbatch-train", results, "reference", synth_data, *EXACT, **one),
        "cancel": sbatch_make("sbatch-train", results, "cancel", synth_data, *LONG, **one),
        "train": sbatch_make(
            "sbatch-train",
            results,
            "train",
            synth_data,
            "train.max_steps=6",
            "eval.enabled=false",
            **one,
        ),  # fmt: skip
        "study": sbatch_make(
            "sbatch-study", results, "study", synth_data, *SHORT, VARIANTS="all", SEEDS="0,1"
        ),  # fmt: skip
    }


# The lifecycle tests first: their runs must still be training when they signal them.
def test_usr2_requeues_and_resumes_exactly(studies):
    rec, results = studies["requeue"], studies["results"]
    job = rec["runs"][0]["job_id"]
    path = run_dir(results, "requeue", rec)
    deadline = time.monotonic() + WAIT_S
    while not (path / "training_metrics.csv").exists() or len(read_metrics(path)) < 5:
        assert time.monotonic() < deadline and sacct(job).get("state") not in TERMINAL
        time.sleep(0.2)
    # --signal=B:USR2@<lead> signals the batch shell, where jobs/sbatch_job.py runs: the same.
    subprocess.run(["scancel", "--signal=USR2", "--batch", job], check=True)
    wait_for(job, states={"PENDING", "REQUEUED"}, timeout=180)
    st = status(path)
    assert st["state"] == "PREEMPTED" and 5 <= st["step"] < STEPS, st
    assert "requeue 1 of 3" in st["reason"]
    assert wait_for(job)["state"] == "COMPLETED"
    assert [int(r["step"]) for r in read_metrics(path)] == list(range(1, STEPS + 1))
    st = status(path)
    assert st["state"] == "COMPLETED" and st["attempts"] == 2
    assert [r["state"] for r in sacct_all(job)] == ["REQUEUED", "COMPLETED"]
    row = table(results / "requeue")[0]
    assert row["restarts"] == 1 and row["state"] == "COMPLETED"
    log = (path / f"slurm-{job}.out").read_text()  # one log, appended across the requeue
    assert "(restart 0)" in log and "(restart 1)" in log and "requeueing" in log

    ref = studies["reference"]
    ref_dir = run_dir(results, "reference", ref)
    assert wait_for(ref["runs"][0]["job_id"])["state"] == "COMPLETED"
    assert [r["loss"] for r in read_metrics(path)] == [r["loss"] for r in read_metrics(ref_dir)]
    a = fp32_weights(path / "checkpoints", f"step{STEPS:08d}", zero_stage=2)
    b = fp32_weights(ref_dir / "checkpoints", f"step{STEPS:08d}", zero_stage=2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_make_cancel_of_a_plain_sbatch_run_is_final(studies):
    rec, results = studies["cancel"], studies["results"]
    job, path = rec["runs"][0]["job_id"], run_dir(results, "cancel", rec)
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            if status(path).get("state") == "RUNNING" and len(read_metrics(path)) >= 3:
                break
        except (OSError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline and sacct(job).get("state") not in TERMINAL
        time.sleep(0.5)
    proc = make("cancel", STUDY="cancel", RESULTS=str(results))
    assert proc.returncode == 0, proc.stderr
    assert wait_for(job, timeout=120)["state"] == "CANCELLED"
    time.sleep(40)  # longer than cred_expire: a requeued job would be back by now
    assert not [n for n in squeue_names() if n.startswith("t2s-cancel")]
    assert [r["state"] for r in sacct_all(job)] == ["CANCELLED"]  # never REQUEUED
    st = status(path)
    assert st["state"] == "CANCELLED" and st["cause"] == "cancel", st
    assert "SIGTERM at step" in st["reason"]  # SLURM signalled the trainer in the batch step
    assert (path / "checkpoints" / "latest").exists()  # checkpointed on the way out


def test_sigkill_of_the_trainer_is_retried_on_the_other_node(studies):
    rec, results = studies["kill"], studies["results"]
    job, path = rec["runs"][0]["job_id"], run_dir(results, "kill", rec)
    subprocess.run(["scontrol", "release", rec["array_job_ids"][0]], check=True)
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            st = status(path)
            if st.get("state") == "RUNNING" and len(read_metrics(path)) >= 3:
                break
        except (OSError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline and sacct(job).get("state") not in TERMINAL
        time.sleep(0.2)
    first_node = st["node"]
    os.kill(st["pid"], signal.SIGKILL)  # what the OOM killer does: no handler, no checkpoint
    wait_for(job, states={"PENDING", "REQUEUED"}, timeout=120)
    st = status(path)
    assert st["state"] == "PENDING" and st["retries"] == 1 and st["excluded"] == [first_node]
    assert "trainer killed by SIGKILL" in st["reason"] and f"slurm-{job}.out" in st["reason"]
    assert wait_for(job)["state"] == "COMPLETED"
    records = sacct_all(job)
    assert [r["state"] for r in records] == ["REQUEUED", "COMPLETED"]
    assert records[0]["nodes"] == first_node and records[1]["nodes"] != first_node
    assert [int(r["step"]) for r in read_metrics(path)] == list(range(1, 41))
    study = json.loads((results / "kill" / "study.json").read_text())
    assert [(e["kind"], e["node"]) for e in study["events"]] == [("retry", first_node)]


def test_exit_2_in_the_job_is_failed_and_never_retried(studies):
    rec, results = studies["exit2"], studies["results"]
    shutil.rmtree(studies["doomed"])  # the dataset disappears after submit, before the job runs
    subprocess.run(["scontrol", "release", rec["array_job_ids"][0]], check=True)
    job = rec["runs"][0]["job_id"]
    assert wait_for(job)["state"] == "FAILED"
    st = status(run_dir(results, "exit2", rec))
    assert st["state"] == "FAILED" and st["cause"] == "usage" and "does not exist" in st["reason"]
    time.sleep(35)  # longer than cred_expire: a retried job would be back by now
    assert len(sacct_all(job)) == 1  # exit 2 is never retried
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"


def test_two_nodes_one_task_each_through_srun(studies):
    rec, results = studies["two_node"], studies["results"]
    job = rec["runs"][0]["job_id"]
    assert wait_for(job)["state"] == "COMPLETED"
    path = run_dir(results, "two_node", rec)
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["world_size"] == 2 and meta["backend"] == "gloo"
    assert [int(r["step"]) for r in read_metrics(path)] == list(range(1, 7))
    log = (path / f"slurm-{job}.out").read_text()
    assert "srun --kill-on-bad-exit=1 --ntasks=2 --cpus-per-task=2" in log
    # srun of SLURM 22.05 does not inherit --cpus-per-task: passed on, each task is bound to 2
    threads = meta["threads"]
    assert (threads["affinity"], threads["torch"], threads["omp_env"]) == (2, 2, None)


def test_sbatch_train_from_a_fresh_shell_completes_with_its_log_in_the_run_dir(studies):
    rec, results = studies["train"], studies["results"]
    job = rec["runs"][0]["job_id"]
    assert rec["executor"] == "slurm" and rec["submitted_with"] == "sbatch"
    assert job == f"{rec['array_job_ids'][0]}_0" and rec["container"]["runtime"] == "none"
    assert wait_for(job)["state"] == "COMPLETED"
    path = run_dir(results, "train", rec)
    assert status(path)["state"] == "COMPLETED"
    assert [int(r["step"]) for r in read_metrics(path)] == list(range(1, 7))  # one row per step
    log = (path / f"slurm-{job}.out").read_text()
    assert f"[sbatch_job] job {job} (restart 0)" in log and "runtime none" in log
    # The project's Python, not PATH's; -P: it imports the study's code snapshot, not the cwd.
    assert "/.venv/bin/python -P -m text2sign train" in log
    assert "COMPLETED at step 6/6" in log and "run COMPLETED" in log
    assert sorted(REPO.glob("slurm-*.out")) == studies["strays"]  # nothing in the repository
    # The collector by hand, plain sbatch: its log is in the study folder.
    proc = make("sbatch-collect", STUDY="train", RESULTS=str(results))
    assert proc.returncode == 0, proc.stderr
    collector = proc.stdout.split()[1]
    assert wait_for(collector)["state"] == "COMPLETED"
    assert (results / "train" / f"slurm-{collector}.out").exists()
    assert (results / "train" / "comparison_table.md").exists()


def test_sbatch_study_runs_every_variant_then_the_collector_and_make_status_lists_them(studies):
    rec, results = studies["study"], studies["results"]
    assert len(rec["runs"]) == 6 and len(rec["array_job_ids"]) == 2, "MaxArraySize=4: 2 arrays"
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    runs = [sacct(r["job_id"]) for r in rec["runs"]]
    assert all(r["state"] == "COMPLETED" for r in runs), runs
    assert sacct(rec["collector_job_id"])["start"] >= max(r["end"] for r in runs)  # afterany
    for i, r in enumerate(rec["runs"]):
        assert (run_dir(results, "study", rec, i) / f"slurm-{r['job_id']}.out").exists()
    assert (results / "study" / f"slurm-{rec['collector_job_id']}.out").exists()
    df = pd.read_csv(results / "study" / "comparison_table.csv")
    assert sorted(df.variant) == ["baseline", "no_ema", "text_finetuned"]
    assert set(df.state) == {"2 COMPLETED"}
    proc = make("status", STUDY="study", RESULTS=str(results))
    assert proc.returncode == 0, proc.stderr
    for r in rec["runs"]:
        assert r["job_id"] in proc.stdout
    assert proc.stdout.count("COMPLETED") >= 12  # run state and SLURM state of each run


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"VARIANT": "fancy"}, "unknown variant 'fancy'"),
        ({"DATA": "/nonexistent/t2s-data"}, "dataset folder /nonexistent/t2s-data does not exist"),
        ({"RUNTIME": "apptainer", "IMAGE": "/nonexistent/t2s.sif"}, "container image"),
        ({"RUNTIME": "docker"}, "RUNTIME 'docker'"),
        ({"SETS": "train.lrr=1"}, "unknown key 'train.lrr'"),
    ],
)
def test_bad_input_is_exit_2_before_sbatch(slurm, synth_data, tmp_path, variables, message):
    study = f"bad{abs(hash(message)) % 10**6}"
    values = {"STUDY": study, "RESULTS": str(tmp_path), "DATA": str(synth_data), **variables}
    proc = make("sbatch-train", **values)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    ours = [line for line in proc.stderr.splitlines() if not line.startswith("make")]
    assert len(ours) == 1 and ours[0].startswith("sbatch_study: error:") and message in ours[0]
    assert not (tmp_path / study).exists()
    assert not [n for n in squeue_names() if study in n]


def cpu_image() -> Path:
    """The CPU image (``make container-cpu``, the containers branch); T2S_CPU_IMAGE overrides."""
    image = Path(os.environ.get("T2S_CPU_IMAGE", REPO / "containers" / "text2sign-cpu.sif"))
    if not image.is_file() or not shutil.which("apptainer"):
        msg = f"no CPU image at {image} or no apptainer on PATH (make container-cpu)"
        if os.environ.get("T2S_REQUIRE_APPTAINER") == "1":
            pytest.fail(f"T2S_REQUIRE_APPTAINER=1 but {msg}")
        pytest.skip(f"{msg}; set T2S_REQUIRE_APPTAINER=1 to make this a failure")
    return image.resolve()


def test_runtime_apptainer_runs_the_study_inside_the_cpu_image(slurm, synth_data, tmp_path):
    image = cpu_image()
    hf = tmp_path / "hf"  # an HF cache that exists: Apptainer refuses a missing bind source
    hf.mkdir()
    rec = sbatch_make("sbatch-study", tmp_path, "image", synth_data, *SHORT, env={"HF_HOME": str(hf)},
                      VARIANTS="all", SEEDS="0", RUNTIME="apptainer", IMAGE=str(image))  # fmt: skip
    assert rec["container"]["runtime"] == "apptainer" and rec["container"]["image"] == str(image)
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    for i, r in enumerate(rec["runs"]):
        assert sacct(r["job_id"])["state"] == "COMPLETED"
        log = (run_dir(tmp_path, "image", rec, i) / f"slurm-{r['job_id']}.out").read_text()
        assert "runtime apptainer (RUNTIME=apptainer)" in log and "apptainer exec" in log
        assert " --nv " not in log  # no GPUs asked for: no --nv
    df = pd.read_csv(tmp_path / "image" / "comparison_table.csv")
    assert set(df.state) == {"1 COMPLETED"} and len(df) == 3
