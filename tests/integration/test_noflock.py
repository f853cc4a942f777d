"""A study on a file system without flock (review item 10): the submission, study.json, the run
lock of the trainer and of the launcher all meet ENOSYS from the kernel (tests/tools/noflock.py,
a seccomp filter), and the run still completes, with one line saying the lock is not enforced.
Before, the run lock crashed the trainer and the launcher wrote no ending."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_TEST_SETS, train_env

pytestmark = pytest.mark.integration


def test_a_local_study_completes_where_flock_is_enosys(synth_data, tmp_path):
    sets = [*TINY_TEST_SETS, f"data.root={synth_data}", "train.max_steps=2", "eval.enabled=false",
            "train.num_samples=0"]  # fmt: skip
    cmd = [sys.executable, str(REPO / "tests" / "tools" / "noflock.py"), "ENOSYS",
           sys.executable, "jobs/submit.py", "--executor", "local", "--variants", "baseline",
           "--study", "noflock", "--results", str(tmp_path),
           *[x for s in sets for x in ("--set", s)]]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=train_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    st = json.loads((tmp_path / "noflock" / "baseline" / "seed0" / "status.json").read_text())
    assert st["state"] == "COMPLETED", st
    assert "the file system has no flock (ENOSYS): the lock is not enforced here" in proc.stderr
    assert json.loads((tmp_path / "noflock" / "study.json").read_text())["runs"][0]["job_id"]
