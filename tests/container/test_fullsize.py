"""PHOENIX-2014T's train split at its real size (7,096 frame folders) on "shared storage" outside
the manifest's folder, through the real cluster inside the CPU image: the study plans in
seconds, every job execs in the image (one bind per frame folder was a ~1 MB --bind argument:
E2BIG on every node), the prepare stage decodes all 7,096 clips, and the run trains and is
evaluated."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.cluster.conftest import sacct, slurm, wait_for  # noqa: F401
from tests.container.test_study import submit

pytestmark = [pytest.mark.container, pytest.mark.timeout(1500)]


def test_full_size_phoenix_outside_its_manifests_folder_runs_in_the_image(slurm, image,  # noqa: F811
                                                                         fullsize_phoenix, tmp_path):  # fmt: skip
    t0 = time.monotonic()
    rec = submit(tmp_path, "phx", fullsize_phoenix, image, "--variants", "baseline",
                 "--set", "train.max_steps=2", "--set", "eval.num_videos=2",
                 "--set", "diffusion.sample_steps=2")  # fmt: skip
    planned_s = time.monotonic() - t0
    assert planned_s < 90, planned_s  # 7,096 folders once took 204 s per run to plan
    (prep,) = rec["prepare_job_ids"]
    run = rec["runs"][0]
    assert wait_for(rec["collector_job_id"])["state"] == "COMPLETED"
    assert sacct(prep)["state"] == "COMPLETED" and sacct(run["job_id"])["state"] == "COMPLETED"
    logs = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "phx").rglob("*.out"))
    (cmd,) = re.findall(r"\[prepare\] .*", logs)
    binds = cmd.split("--bind ")[1].split(" ")[0].split(",")
    assert len(binds) <= 4 and len(cmd.encode()) < 128 * 1024, binds  # results, data, project
    assert "7096 clips" in logs and "0 failed to decode" in logs
    status = json.loads((tmp_path / "phx" / run["run_dir"] / "status.json").read_text())
    assert status["state"] == "COMPLETED", status
    result = json.loads((tmp_path / "phx" / run["run_dir"] / "evaluation_metrics.json").read_text())
    assert result["keypoints_source"] == "estimated" and result["keypoints_warning"]  # 16 px
