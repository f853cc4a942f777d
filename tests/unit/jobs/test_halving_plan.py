"""A halving study's plan (jobs/halving_plan.py): rung 0 of every run stops at its budget, and
bad halving input is one line naming the key and value, exit 2, before anything is submitted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from jobs import study as S
from jobs.halving_plan import with_rung
from tests.conftest import REPO
from text2sign.errors import UsageError

from .test_submit import no_slurm_env, submit


def plan(tmp_path, *sets: str, sweeps=("train.lr=1e-3,3e-3",), seeds="0,1"):
    return S.plan(variants="baseline", seeds=seeds, profile="tiny", study="hv",
                  results=str(tmp_path), overrides=["halving.enabled=true", *sets],
                  config_file=None, executor="local", resume=False, input_check=False,
                  sweeps=list(sweeps))  # fmt: skip


def test_rung_0_stops_every_run_at_its_budget(tmp_path):
    p = plan(tmp_path, "train.max_steps=900", "halving.rungs=3")
    assert p.halving["rungs"] == [100, 300, 900] and p.halving["better"] == "lower"
    assert p.halving["points"] == ["baseline__lr1e-3", "baseline__lr3e-3"]
    assert len(p.runs) == 4
    assert all(r.spec.overrides[-1] == "halving.stop_at=100" for r in p.runs)
    hashes = {r.config_hash for r in p.runs if r.spec.seed == 0}
    off = plan(tmp_path, "train.max_steps=900", "halving.enabled=false")
    assert off.halving is None and {r.config_hash for r in off.runs if r.spec.seed == 0} == hashes
    assert (
        with_rung(("a=1", "halving.stop_at=100"), [100, 300, 900], 1)[-1] == "halving.stop_at=300"
    )
    assert with_rung(("a=1", "halving.stop_at=300"), [100, 300, 900], 2) == ("a=1",)


@pytest.mark.parametrize(
    ("sets", "sweeps", "message"),
    [
        (["train.max_steps=900", "halving.metric=temporal_cos"], None, "halving.metric=temporal_cos"),
        (["train.max_steps=900", "halving.rungs=1"], None, "halving.rungs=1"),
        (["train.max_steps=900", "halving.first_steps=600", "halving.rungs=3"], None,
         "halving.first_steps=600"),
        (["train.max_steps=900", "halving.stop_at=5"], None, "halving.stop_at=5"),
        (["train.max_steps=900", "eval.enabled=false"], None, "eval.enabled is false"),
        (["train.max_steps=900"], (), "needs at least 2"),
        (["train.max_steps=900"], ("halving.alpha=0.05,0.1",), "other halving"),
    ],
)  # fmt: skip
def test_bad_halving_input_is_one_line_naming_the_key(tmp_path, sets, sweeps, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        plan(tmp_path, *sets, sweeps=sweeps if sweeps is not None else ("train.lr=1e-3,3e-3",))


@pytest.mark.parametrize("flag", [["--halving"], ["--sets", "halving.enabled=true"]])
def test_the_plain_sbatch_door_plans_rung_0_and_its_decider(tmp_path, flag):
    """A dry run of a halving study by plain sbatch: rung 0's array stops at the first budget
    and the decider (slurm/decide.sbatch STUDY 0) waits for it, not the collector; nothing is
    written."""
    cmd = [sys.executable, str(REPO / "jobs" / "sbatch_study.py"), "--variants", "baseline",
           "--sweep", "train.lr=1e-3,3e-3", "--set", "train.max_steps=90", *flag, "--study", "hv",
           "--results", str(tmp_path), "--runtime", "none", "--no-input-check", "--dry-run"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, **no_slurm_env()})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-2].startswith("sbatch --parsable --job-name=t2s-hv-0 --array=0-1")
    assert lines[-1].startswith("sbatch --parsable --job-name=t2s-hv-decide0 ")
    assert "--dependency=afterany:<ARRAY_JOB_IDS>" in lines[-1]
    assert lines[-1].endswith(f"slurm/decide.sbatch {(tmp_path / 'hv').resolve()} 0")
    assert "collect" not in proc.stdout
    assert not (tmp_path / "hv").exists()


def test_no_final_budget_is_refused_by_the_cli_with_exit_2(tmp_path):
    proc = submit("--variants", "baseline", "--sweep", "train.lr=1e-3,3e-3", "--halving",
                  "--set", "train.max_steps=null", "--study", "hv", "--results", str(tmp_path),
                  "--executor", "local", "--no-input-check", env=no_slurm_env())  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "submit: error: halving.enabled=true needs the final budget as train.max_steps "
        "(--set train.max_steps=N)"
    ]
    assert not (tmp_path / "hv").exists()
