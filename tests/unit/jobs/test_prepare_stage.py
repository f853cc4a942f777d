"""The prepare stage at submit time: planned per dataset decoding for real data only (prepare.tasks
shards each), with the runs' resources, the training arrays waiting for it (afterok, cancelled
if it fails), and the runs' reason when it failed. No cluster: dry runs, and sacct's answers
given to the collector's settle step."""

from __future__ import annotations

import json
import os

import pytest

from jobs import study as S
from jobs.spec import prepare_argv
from tests.unit.jobs.test_submit import no_slurm_env, submit
from text2sign.errors import UsageError


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    """A dataset of a real person: no exact keypoints."""
    from text2sign.data import person

    root = tmp_path_factory.mktemp("person")
    person.write_folder(root, frames=2, size=16, signers=2)
    return root


def plan(tmp_path, data, *sets, sweeps=None, variants="baseline,no_ema", input_check=True):
    return S.plan(variants=variants, seeds="0,1", profile="tiny", study="kp", results=str(tmp_path),
                  overrides=[f"data.root={data}", *sets], config_file=None, executor="local",
                  resume=False, input_check=input_check, sweeps=sweeps)  # fmt: skip


def test_real_data_gets_one_task_per_decoding_and_the_synthetic_set_none(tmp_path, person,
                                                                         synth_data):  # fmt: skip
    p = plan(tmp_path, person)
    assert len(p.runs) == 4 and len(p.prepare) == 1  # 2 variants x 2 seeds, one decoding
    k = p.prepare[0]
    assert k.label == f"{person} at 8 x 16 px, first" and (k.task, k.tasks) == (0, 1)
    argv = prepare_argv(k)
    assert argv[argv.index("-m") + 1 : argv.index("-m") + 5] == ["text2sign", "data", "prepare",
                                                                 str(person)]  # fmt: skip
    assert argv[argv.index("--task") : argv.index("--task") + 4] == ["--task", "0", "--tasks", "1"]
    swept = plan(tmp_path, person, sweeps=["data.image_size=16,32"], variants="baseline")
    assert sorted(k.label.split(" at ")[1] for k in swept.prepare) == [
        "8 x 16 px, first", "8 x 32 px, first"]  # fmt: skip
    sharded = plan(tmp_path, person, "prepare.tasks=3")
    assert [(k.task, k.tasks) for k in sharded.prepare] == [(0, 3), (1, 3), (2, 3)]
    assert not plan(tmp_path, synth_data).prepare  # exact keypoints, small: nothing to prepare
    decode_only = plan(tmp_path, person, "eval.enabled=false").prepare  # nothing to score
    assert len(decode_only) == 1 and "--no-keypoints" in prepare_argv(decode_only[0])
    assert not plan(tmp_path, person, input_check=False).prepare  # data not visible here


def test_real_data_without_a_pose_environment_is_one_line(tmp_path, person, monkeypatch):
    monkeypatch.setenv("T2S_POSE_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(UsageError, match="no exact keypoints and no pose environment at .*make "
                                         "pose-venv"):  # fmt: skip
        plan(tmp_path, person)
    assert not (tmp_path / "kp").exists()


def test_both_dry_runs_show_the_stage_before_the_training_arrays(tmp_path, person):
    args = ["--variants", "baseline", "--seeds", "0", "--study", "kp", "--results", str(tmp_path),
            "--mem", "3", "--constraint", "avx2", "--sbatch-extra=--reservation=r1",
            "--partition", "debug", "--dry-run", "--executor", "slurm", "--set",
            f"data.root={person}"]  # fmt: skip
    proc = submit(*args, env={**no_slurm_env(), **_pose_env()})
    assert proc.returncode == 0, proc.stderr
    scripts = proc.stdout.split("#!/bin/bash")[1:]
    assert "#SBATCH --job-name=t2s-kp-prepare" in scripts[0]
    for flag in ("--mem=3GB", "--constraint=avx2", "--reservation=r1", "--partition=debug"):
        assert f"#SBATCH {flag}" in scripts[0], flag  # the runs' resources (issue 22)
    assert "#SBATCH --dependency='afterok:<PREPARE_JOB_ID>'" in scripts[1]
    assert "#SBATCH --kill-on-invalid-dep=yes" in scripts[1]
    assert "#SBATCH --dependency='afterany:<PREPARE_JOB_ID>:<ARRAY_JOB_IDS>'" in scripts[2]
    from tests.conftest import REPO

    plain = __import__("subprocess").run(
        [os.sys.executable, str(REPO / "jobs" / "sbatch_study.py"), *args[:-4], "--runtime",
         "none", "--set", f"data.root={person}"], capture_output=True, text=True,
        env={**os.environ, **no_slurm_env(), **_pose_env()}, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    lines = [ln for ln in plain.stdout.splitlines() if ln.startswith("sbatch ")]
    assert "prepare.sbatch" in lines[0] and "--cpus-per-task=1" in lines[0]
    for flag in ("--mem=3G", "--constraint=avx2", "--reservation=r1", "--partition=debug"):
        assert f" {flag} " in lines[0], flag  # the --mem was missing here (issue 22)
    assert "'--dependency=afterok:<PREPARE_JOB_ID>' --kill-on-invalid-dep=yes" in lines[1]
    assert "'--dependency=afterany:<PREPARE_JOB_ID>:<ARRAY_JOB_IDS>'" in lines[2]


def _pose_env() -> dict[str, str]:
    from text2sign.pose import env

    found = env.find()
    return {env.ENV_VAR: found.python} if found.ok else {}


def test_runs_the_failed_prepare_job_never_started_say_so(tmp_path, monkeypatch):
    """The collector's settle step: a training job SLURM cancelled (kill-on-invalid-dep) because
    the prepare job failed ends FAILED, cause 'dependency', naming the prepare job."""
    from text2sign.run.rundir import RunDir
    from text2sign.study import settle, slurm_query

    plan_ = {"executor": "slurm", "prepare_job_ids": ["40"],
             "runs_all": [{"variant": "baseline", "seed": 0, "run_dir": "baseline/seed0",
                           "config_hash": "h", "job_id": "41_0"}]}  # fmt: skip
    sacct = {"40_0": "FAILED", "41_0": "CANCELLED"}

    def records(ids):
        return {j: [{"State": s}] for j, s in sacct.items() if j.split("_")[0] in
                {i.split("_")[0] for i in ids}}  # fmt: skip

    monkeypatch.setattr(slurm_query, "available", lambda: True)
    monkeypatch.setattr(slurm_query, "job_records", records)
    monkeypatch.setattr(slurm_query, "summarize", lambda recs: {
        j: {"state": r[-1]["State"], "nodes": []} for j, r in recs.items()})  # fmt: skip
    (tmp_path / "study.json").write_text(json.dumps(plan_))
    assert settle.settle(tmp_path, plan_) == 1
    status = RunDir(tmp_path / "baseline" / "seed0").read_status()
    assert status["state"] == "FAILED" and status["cause"] == "dependency"
    assert status["reason"].startswith("not started: the prepare job 40_0 ended FAILED")
