"""A prepare stage that fails is visible: its job FAILED in sacct, the training job cancelled by
SLURM before it started (afterok + kill-on-invalid-dep), and each run FAILED with the prepare
job named in status.json, the table and the report (host runtime, real cluster). Every clip's
estimation fails here (a broken pose install): above prepare.max_failed_share."""

from __future__ import annotations

import json
import stat

import pandas as pd
import pytest

from tests.cluster.conftest import job_env, sacct, slurm, submit, wait_for  # noqa: F401


def broken_pose_python(tmp_path, pose):
    """A pose environment that answers the probe but whose worker dies, as a broken install
    on a compute node would."""
    wrapper = tmp_path / "pose-python"
    wrapper.write_text(f'#!/bin/sh\ncase "$1" in -c) exec {pose.python} "$@";; esac\n'
                       'echo "pose worker: injected failure" >&2\nexit 3\n')  # fmt: skip
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper


@pytest.mark.timeout(900)
def test_a_failed_prepare_stage_fails_the_study_visibly(slurm, pose, tmp_path, person_manifest):  # noqa: F811
    from text2sign.pose import env as pose_env

    env = {**job_env(), pose_env.ENV_VAR: str(broken_pose_python(tmp_path, pose))}
    rec = submit(tmp_path, "kpfail", person_manifest, "--variants", "baseline", "--seeds", "0",
                 "--set", "data.image_size=32", env=env)  # fmt: skip
    (kp_job,) = rec["prepare_job_ids"]
    run = rec["runs"][0]
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    assert sacct(kp_job)["state"] == "FAILED"
    # Never started: no node and no second (Slurm versions differ on a pending job's Start).
    ran = ("NodeList", "ElapsedRaw")
    train = sacct(run["job_id"], ran) or sacct(run["job_id"].split("_")[0], ran)
    assert train["state"] == "CANCELLED" and train["nodelist"] == "None assigned", train
    assert train["elapsedraw"] == "0", train
    status = json.loads((tmp_path / "kpfail" / run["run_dir"] / "status.json").read_text())
    assert status["state"] == "FAILED" and status["cause"] == "dependency", status
    assert status["reason"].startswith(f"not started: the prepare job {kp_job} ended FAILED")
    df = pd.read_csv(tmp_path / "kpfail" / "comparison_table.csv")
    assert f"prepare job {kp_job} ended FAILED" in df.not_completed[0]
    assert f"prepare job {kp_job}" in (tmp_path / "kpfail" / "report.md").read_text()
    logs = [p.read_text(errors="replace") for p in (tmp_path / "kpfail").rglob("*.out")]
    assert any("16 of 16 clips failed (100.0%" in text for text in logs)  # the task says why
