"""A study on real people's clips (.mp4 + manifest) through the real cluster, inside the CPU
image: the prepare stage runs first (MediaPipe in the image's pose environment), training
waits for it (afterok), and each run's evaluation scores DTW-MJE and the audit on estimated
keypoints, reusing the references' keypoints the stage estimated (nothing is estimated twice)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.cluster.conftest import sacct, slurm, wait_for  # noqa: F401
from tests.container.test_study import submit

pytestmark = [pytest.mark.container, pytest.mark.timeout(1500)]


def test_a_study_on_an_mp4_manifest_gets_keypoints_before_training(slurm, image, person_manifest,  # noqa: F811
                                                                   tmp_path, browser):  # fmt: skip
    rec = submit(tmp_path, "real", person_manifest, image, "--variants", "baseline",
                 "--set", "data.image_size=64", "--set", "train.max_steps=4",
                 "--set", "eval.num_videos=2", "--set", "diffusion.sample_steps=2")  # fmt: skip
    assert rec["prepare"] == [f"{person_manifest} at 8 x 64 px, first"]
    (kp_job,) = rec["prepare_job_ids"]
    run = rec["runs"][0]
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    kp, train = sacct(kp_job), sacct(run["job_id"])
    assert kp["state"] == "COMPLETED" and train["state"] == "COMPLETED", (kp, train)
    assert train["start"] >= kp["end"]  # afterok: training started once the keypoints were there
    poses = list((person_manifest.parent / ".t2s_cache" / "keypoints").glob("*.pose"))
    assert len(poses) == 16  # every clip of the dataset, once
    result = json.loads(
        (tmp_path / "real" / run["run_dir"] / "evaluation_metrics.json").read_text()
    )
    assert result["keypoints_source"] == "estimated"
    assert result["metrics"]["reference_pose_found_body"]["value"] == 1.0
    # the references came from the stage's cache: evaluation estimated the 3 passes x 2 samples
    assert result["audit"]["estimated_frames"] == 3 * 2 * 8
    df = pd.read_csv(tmp_path / "real" / "comparison_table.csv")
    assert list(df.keypoints) == ["estimated"] and list(df.state) == ["1 COMPLETED"]
    report = (tmp_path / "real" / "report.md").read_text()
    assert "keypoints estimated by MediaPipe Holistic" in report
    # report.html: the 2 evaluated clips side by side, each with the skeleton MediaPipe found
    index = json.loads(
        (tmp_path / "real" / run["run_dir"] / "eval_videos" / "index.json").read_text()
    )
    assert index["skeleton"] == "estimated" and index["formats"] == ["mp4", "webm"]
    assert index["clips"][0]["detection"]["reference"]["body"] == 1.0
    check = browser.check_page(tmp_path / "real" / "report.html", "container-real-person")
    browser.assert_page_ok(check, tmp_path / "real" / "comparison_table.csv", videos=2 * 3)
    assert "The skeleton is what MediaPipe Holistic found" in check.text
