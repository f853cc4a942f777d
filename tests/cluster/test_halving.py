"""Successive halving on the real SLURM cluster (issue 24), through both doors (submitit:
jobs/submit.py; plain sbatch: jobs/sbatch_study.py, slurm/decide.sbatch), submitted together so
that their waits on SLURM overlap: 4 points × 2 seeds by submitit, 3 points × 2 seeds by plain
sbatch, 2 rungs (300, then 360 steps), one point made plainly bad (learning rate 0.3). Rung 0's
decider drops it with its evidence (in halving/rung0.json and the report), submits the
survivors' rung 1 (resumed from their checkpoints) and then the collector; a survivor's final
weights equal those of an uninterrupted 360-step run, bit for bit.

Rung 0 needs its 300 steps: at 100 the bad point was not told apart (p 0.21, 2026-12-07). The
final budget is kept small (360) and the plain door has one point fewer: the suite runs on 2
cores. Measured 2026-12-07 (submitit door alone, 450 final steps, otherwise idle): 3 passed in
404 s; the bad point's rung-0 evidence: effect +0.017 DTW-MJE, 12 clusters, p 0.0051, Holm p
0.015 over 3 (the same in both doors).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.cluster.conftest import job_env, submit, submit_cmd, wait_for
from tests.conftest import REPO, train_cmd, train_env
from text2sign.run.weights import fp32_weights

# The whole chain (two rungs, a decider, the collector) waits on SLURM in the module fixture:
# on this 2-core machine, shared, it took longer than pytest-timeout's default 600 s.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]

BAD = "baseline__lr0.3"
LRS = {"submit": ["1e-3", "2e-3", "3e-3", "0.3"], "sbatch": ["1e-3", "2e-3", "0.3"]}
SETS = ["--set", "train.max_steps=360", "--set", "halving.first_steps=300",
        "--set", "halving.eta=1.5", "--set", "halving.eval_clips=16",
        "--set", "train.checkpoint_every=1000", "--set", "train.num_samples=0"]  # fmt: skip


def _collector_id(study: Path, timeout: float = 1500) -> str:
    """The decider submits the collector: wait until study.json names it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = json.loads((study / "study.json").read_text())
        if rec.get("collector_job_id"):
            return str(rec["collector_job_id"])
        failed = study / "halving" / "rung0.json"
        if failed.exists() and "error" in json.loads(failed.read_text()):
            raise AssertionError(failed.read_text())
        time.sleep(5)
    raise AssertionError(f"no collector submitted within {timeout} s: {rec.get('halving')}")


def _submit_plain(results: Path, study: str, data: Path, *args: str) -> dict:
    cmd = [a for a in submit_cmd(results, study, data) if a not in ("--executor", "slurm")]
    cmd[1] = "jobs/sbatch_study.py"
    proc = subprocess.run([*cmd, "--runtime", "none", *args], cwd=REPO, env=job_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads((results / study / "study.json").read_text())


@pytest.fixture(scope="module")
def halving_studies(slurm, synth_data, tmp_path_factory) -> dict[str, Path]:
    """Both doors' studies (and the uninterrupted reference run), ended."""
    results = tmp_path_factory.mktemp("halving")
    args = ["--variants", "baseline", "--seeds", "0,1", "--halving", *SETS]
    recs = {"submit": submit(results, "hv", synth_data, *args,
                             "--sweep", f"train.lr={','.join(LRS['submit'])}"),
            "sbatch": _submit_plain(results, "hv-plain", synth_data, *args,
                                    "--sweep", f"train.lr={','.join(LRS['sbatch'])}")}  # fmt: skip
    assert recs["sbatch"]["submitted_with"] == "sbatch"
    studies = {"submit": results / "hv", "sbatch": results / "hv-plain"}
    for door, rec in recs.items():
        assert rec["halving"]["rungs"][0]["decider_job_id"], door
        assert rec["collector_job_id"] is None, door
    # lr 1e-3, seed 0, 360 steps in one go (compared with both doors' survivor): trained while
    # the studies wait on SLURM.
    ref = results / "uninterrupted"
    reference = subprocess.Popen(
        train_cmd(ref, synth_data, "train.lr=1e-3", "train.max_steps=360", "train.seed=0",
                  "train.checkpoint_every=1000", "train.num_samples=0", "eval.enabled=false"),
        cwd=REPO, env=train_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for study in studies.values():
        wait_for(_collector_id(study), timeout=1500)
    _, err = reference.communicate(timeout=900)
    assert reference.returncode == 0, err[-2000:]
    return {**studies, "uninterrupted": ref}


@pytest.fixture(params=["submit", "sbatch"])
def halving_study(request, halving_studies) -> Path:
    return halving_studies[request.param]


def test_the_bad_point_is_dropped_at_the_first_decision_with_its_evidence(halving_study):
    d = json.loads((halving_study / "halving" / "rung0.json").read_text())
    assert d["dropped"] == [BAD], d["decisions"]
    bad = next(x for x in d["decisions"] if x["point"] == BAD)
    assert bad["metric"] == "dtw_mje" and bad["effect"] > 0 and bad["ci95"][0] > 0
    assert bad["p_holm"] < 0.05 and bad["n_seeds"] == 2 and bad["n_clusters"] >= 4
    assert bad["steps_not_spent"] == 2 * 60
    long = pd.read_csv(halving_study / "comparison_long.csv")
    rows = long[long.point == BAD]  # never compared as if trained to the full budget
    assert len(rows) and set(rows.state) == {"DROPPED"}, rows
    assert rows.reason.str.startswith(
        "run DROPPED: dropped by successive halving after rung 0 (300 of 360 steps), worse than"
    ).all()
    report = (halving_study / "report.md").read_text()
    assert "## Successive halving" in report and f"| {BAD} | 0 (300) | dtw_mje |" in report
    rec = json.loads((halving_study / "study.json").read_text())
    assert [r["rung"] for r in rec["halving"]["rungs"]] == [0, 1]
    assert sorted(rec["halving"]["rungs"][1]["points"]) == sorted(d["survivors"])


def test_survivors_finish_and_the_dropped_point_stops_at_its_rung(halving_study, request):
    door = request.node.callspec.params["halving_study"]
    for lr in LRS[door]:
        for seed in (0, 1):
            path = halving_study / f"baseline__lr{lr}" / f"seed{seed}" / "status.json"
            st = json.loads(path.read_text())
            want = 300 if f"baseline__lr{lr}" == BAD else 360
            assert (st["state"], st["step"], st["total_steps"]) == ("COMPLETED", want, 360), st


def test_a_survivor_equals_an_uninterrupted_run(halving_study, halving_studies):
    uninterrupted = halving_studies["uninterrupted"]
    tag = "step00000360"
    a = fp32_weights(
        halving_study / "baseline__lr1e-3" / "seed0" / "checkpoints", tag, zero_stage=2
    )
    b = fp32_weights(uninterrupted / "checkpoints", tag, zero_stage=2)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
