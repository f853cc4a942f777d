"""CPU threads follow the job's allocation on the real cluster, not the host's core count.

``python jobs/submit.py`` is typed in a shell without OMP_NUM_THREADS (the command users are told
to use); the trainer must still start one intra-op thread per allocated CPU and say so in
metadata.json.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.cluster.conftest import submit, wait_for

pytestmark = pytest.mark.cluster


def test_the_trainer_uses_the_cpus_of_its_allocation(slurm, synth_data, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["HF_HUB_OFFLINE"] = "1"
    studies = {
        cpus: submit(
            tmp_path,
            f"threads{cpus}",
            synth_data,
            "--variants",
            "baseline",
            "--cpus-per-task",
            str(cpus),
            "--set",
            "train.max_steps=2",
            "--set",
            "eval.enabled=false",
            "--set",
            "train.num_samples=0",
            env=env,
        )
        for cpus in (1, 2)
    }  # fmt: skip; both submitted first, so they run side by side
    for cpus, rec in studies.items():
        run = rec["runs"][0]
        assert wait_for(run["job_id"])["state"] == "COMPLETED"
        meta = json.loads(
            (tmp_path / f"threads{cpus}" / run["run_dir"] / "metadata.json").read_text()
        )
        threads = meta["threads"]
        assert threads["omp_env"] is None  # nothing in the job's environment asked for a number
        assert (threads["allocated"], threads["torch"]) == (cpus, cpus)
        assert threads["source"] == f"SLURM_CPUS_PER_TASK={cpus}"
        assert threads["workers"] == 0  # data.num_workers=0 (default) asks for none
