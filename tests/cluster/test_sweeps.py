"""Sweeps on the real SLURM cluster: a grid and a zip of config keys, every run in arrays that
are all in the collector's afterany, a bad key refused before sbatch, and the frozen code
snapshot: jobs that wait in the queue run the code of their submission.

The local cluster's ``MaxArraySize=4`` splits the grid's 8 runs into two arrays of 4.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from jobs.study import NAME_RE
from tests.cluster.conftest import job_env, sacct, squeue_names, submit, submit_cmd, wait_for
from tests.conftest import REPO
from text2sign.study import slurm_query

pytestmark = pytest.mark.cluster
SHORT = ["--set", "train.max_steps=2", "--set", "eval.enabled=false",
         "--set", "train.num_samples=0", "--set", "train.checkpoint_every=1000"]  # fmt: skip
GRID = ["--sweep", "train.lr=1e-3,3e-3", "--sweep", "ema.decay=0.99,0.999"]
BROKEN = 'raise RuntimeError("T2S-LIVE-TREE: this code was changed after the submission")\n'


def _clone(dest) -> None:
    """A scratch clone of this checkout, with its uncommitted changes (the code under test)."""
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(dest)], check=True)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", head], check=True)
    diff = subprocess.run(["git", "-C", str(REPO), "diff", "HEAD", "--binary"],
                          capture_output=True, check=True).stdout  # fmt: skip
    if diff:
        subprocess.run(["git", "-C", str(dest), "apply", "--binary"], input=diff, check=True)


def _workdir(job: str) -> str:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,WorkDir", "-j", job],
                         capture_output=True, text=True).stdout  # fmt: skip
    return next(line.split("|")[1] for line in out.splitlines() if line.split("|")[0] == job)


def _show_job(job: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def sweeps(slurm, synth_data, tmp_path_factory) -> dict:
    results = tmp_path_factory.mktemp("sweeps")
    clone = tmp_path_factory.mktemp("clone") / "repo"
    _clone(clone)
    # The frozen study first, held: its code is changed below, before it may start.
    proc = subprocess.run(
        submit_cmd(results, "sw-frozen", synth_data, "--variants", "baseline", *SHORT,
                   "--sbatch-extra=--hold"),
        cwd=clone, env=job_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    frozen = json.loads((results / "sw-frozen" / "study.json").read_text())
    # The same through the plain-sbatch door (jobs/sbatch_study.py), with a sweep.
    plain = [
        a for a in submit_cmd(results, "sw-plain", synth_data) if a not in ("--executor", "slurm")
    ]
    plain[1] = "jobs/sbatch_study.py"
    proc = subprocess.run([*plain, "--variants", "baseline", "--runtime", "none", *SHORT,
                           "--sweep", "train.lr=1e-3,3e-3", "--sbatch-extra=--hold"],
                          cwd=clone, env=job_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    frozen_plain = json.loads((results / "sw-plain" / "study.json").read_text())
    for rel in ("text2sign/__init__.py", "jobs/launcher.py"):  # tracked files of the clone
        with open(clone / rel, "a") as f:
            f.write(BROKEN)
    grid = submit(results, "sw-grid", synth_data, "--variants", "baseline", *GRID, "--seeds",
                  "0,1", *SHORT, "--mail-user", "t2s-test@example.org")  # fmt: skip
    grid["_collector_job"] = _show_job(grid["collector_job_id"])  # before it ends and is purged
    zipped = submit(results, "sw-zip", synth_data, "--variants", "baseline", *GRID, "--zip",
                    *SHORT)  # fmt: skip
    return {"results": results, "clone": clone, "frozen": frozen, "grid": grid, "zip": zipped,
            "plain": frozen_plain}  # fmt: skip


def _all_completed(rec: dict) -> None:
    collector = wait_for(rec["collector_job_id"])
    runs = [wait_for(r["job_id"]) for r in rec["runs"]]
    assert all(r["state"] == "COMPLETED" for r in runs), runs
    assert collector["state"] == "COMPLETED", collector
    assert collector["start"] >= max(r["end"] for r in runs)  # afterany: after every run ended


def test_grid_sweep_submits_every_point_and_seed_in_arrays_under_one_collector(sweeps):
    rec, results = sweeps["grid"], sweeps["results"]
    names = ["baseline__lr1e-3__decay0.99", "baseline__lr1e-3__decay0.999",
             "baseline__lr3e-3__decay0.99", "baseline__lr3e-3__decay0.999"]  # fmt: skip
    assert [(r["point"], r["seed"]) for r in rec["runs"]] == [(n, s) for n in names for s in (0, 1)]
    assert rec["_submit_s"] < 30
    arrays = rec["array_job_ids"]
    assert len(arrays) == math.ceil(8 / slurm_query.max_array_size())  # 2 here: MaxArraySize=4
    assert {r["job_id"].split("_")[0] for r in rec["runs"]} == set(arrays)
    dependency = next(w for w in rec["_collector_job"].split() if w.startswith("Dependency="))
    assert all(a in dependency for a in arrays) and "afterany" in dependency, dependency
    assert "MailUser=t2s-test@example.org" in rec["_collector_job"]
    assert "MailType=END,FAIL" in rec["_collector_job"]
    assert rec["sweep"] == {"mode": "grid", "keys": ["train.lr", "ema.decay"]}
    assert (rec["reference"], rec["reference_source"]) == (names[0], "first point")
    _all_completed(rec)
    for r in rec["runs"]:  # the overrides reached the trainer: the resolved config says so
        cfg = yaml.safe_load((results / "sw-grid" / r["run_dir"] / "config.yaml").read_text())
        assert (
            str(cfg["train"]["lr"])
            == {"1e-3": "0.001", "3e-3": "0.003"}[r["overrides"]["train.lr"]]
        )
        assert str(cfg["ema"]["decay"]) == r["overrides"]["ema.decay"]
        assert cfg["variant"] == r["base_variant"] == "baseline" and NAME_RE.match(r["point"])
    df = pd.read_csv(results / "sw-grid" / "comparison_table.csv")
    assert sorted(df.variant) == names and set(df.state) == {"2 COMPLETED"}


def test_zip_sweep_pairs_the_values(sweeps):
    rec = sweeps["zip"]
    names = ["baseline__lr1e-3__decay0.99", "baseline__lr3e-3__decay0.999"]
    assert [r["point"] for r in rec["runs"]] == names and rec["sweep"]["mode"] == "zip"
    _all_completed(rec)
    df = pd.read_csv(sweeps["results"] / "sw-zip" / "comparison_table.csv")
    assert sorted(df.variant) == names


def test_a_bad_sweep_key_is_refused_before_anything_is_queued(sweeps, synth_data):
    cmd = submit_cmd(sweeps["results"], "sw-badkey", synth_data, "--sweep", "train.lrr=1e-3,3e-3")
    proc = subprocess.run(cmd, cwd=REPO, env=job_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "unknown key 'train.lrr' (did you mean 'train.lr'?)" in proc.stderr
    assert not (sweeps["results"] / "sw-badkey").exists()
    assert not [n for n in squeue_names() if "sw-badkey" in n]


def test_a_queued_job_runs_the_code_of_its_submission(sweeps):
    """The clone's launcher and package were broken after the submit, before the job started."""
    rec, results, clone = sweeps["frozen"], sweeps["results"], sweeps["clone"]
    code = rec["code"]
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    snap = Path(code["snapshot"])
    assert code["commit"] == head and snap.parent == (results / "sw-frozen" / ".code").resolve()
    assert (snap / "jobs" / "launcher.py").is_file()
    assert BROKEN not in (snap / "text2sign" / "__init__.py").read_text()
    assert BROKEN in (clone / "text2sign" / "__init__.py").read_text()  # the live tree is broken
    time.sleep(1)
    subprocess.run(["scontrol", "release", rec["array_job_ids"][0]], check=True)
    job = rec["runs"][0]["job_id"]
    state = wait_for(job)["state"]
    logs = "".join(p.read_text() for p in (results / "sw-frozen" / "submitit").rglob("*.err"))
    assert state == "COMPLETED", logs[-3000:]
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    assert "T2S-LIVE-TREE" not in logs
    assert _workdir(job) == _workdir(rec["collector_job_id"]) == str(snap)
    meta = json.loads(
        (results / "sw-frozen" / rec["runs"][0]["run_dir"] / "metadata.json").read_text()
    )
    assert meta["git"]["commit"] == code["commit"] and meta["git"]["snapshot"] == str(snap)
    assert meta["git"]["dirty"] == code["dirty"]
    assert sacct(rec["collector_job_id"])["state"] == "COMPLETED"


def test_the_plain_sbatch_door_sweeps_and_runs_the_code_of_its_submission(sweeps):
    rec, results = sweeps["plain"], sweeps["results"]
    assert rec["submitted_with"] == "sbatch" and rec["sweep"]["keys"] == ["train.lr"]
    assert [r["point"] for r in rec["runs"]] == ["baseline__lr1e-3", "baseline__lr3e-3"]
    assert BROKEN in (sweeps["clone"] / "jobs" / "launcher.py").read_text()
    subprocess.run(["scontrol", "release", *rec["array_job_ids"]], check=True)
    _all_completed(rec)
    logs = "".join(p.read_text() for p in (results / "sw-plain").rglob("slurm-*.out"))
    assert "T2S-LIVE-TREE" not in logs
    for r in rec["runs"]:  # the job started in the snapshot, the trainer imported it
        assert _workdir(r["job_id"]) == rec["code"]["snapshot"]
        meta = json.loads((results / "sw-plain" / r["run_dir"] / "metadata.json").read_text())
        assert meta["git"]["snapshot"] == rec["code"]["snapshot"]
    assert _workdir(rec["collector_job_id"]) == rec["code"]["snapshot"]
    df = pd.read_csv(results / "sw-plain" / "comparison_table.csv")
    assert sorted(df.variant) == ["baseline__lr1e-3", "baseline__lr3e-3"]
