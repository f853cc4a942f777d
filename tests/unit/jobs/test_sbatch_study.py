"""jobs/sbatch_study.py without a cluster: the pinned sbatch command lines (golden file), bad
input refused before sbatch, and the run spec that travels to the job through the tasks file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.container import ContainerSpec
from jobs.sbatch_study import choose_runtime
from jobs.spec import RunSpec, spec_from_dict, spec_to_dict
from tests.conftest import REPO
from tests.unit.jobs.test_submit import no_slurm_env, normalise
from text2sign.errors import UsageError

GOLDEN = REPO / "tests" / "golden" / "sbatch_plain_tiny_all.txt"


def plan_cmd(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "jobs" / "sbatch_study.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, **no_slurm_env()})  # fmt: skip


def test_dry_run_prints_the_pinned_sbatch_command_lines(tmp_path):
    proc = plan_cmd("--variants", "all", "--seeds", "0,1", "--study", "golden", "--results",
                    str(tmp_path), "--dry-run", "--partition", "gpu", "--account", "proj1",
                    "--time", "90", "--gpus-per-node", "2", "--sbatch-extra=--exclusive",
                    "--signal", "USR2@90", "--runtime", "none", "--no-input-check")  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # rendering the command lines needs no cluster
    text = normalise(proc.stdout, tmp_path)
    if os.environ.get("T2S_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "sbatch lines changed: review, then T2S_UPDATE_GOLDEN=1"
    assert "--signal=B:USR2@90" in text and "--requeue" in text and "--open-mode=append" in text
    assert not (tmp_path / "golden").exists()  # nothing written, nothing submitted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variants", "fancy"], "unknown variant 'fancy'"),
        (["--study", "a;b"], "--study 'a;b'"),
        (["--profile", "huge"], "huge"),
        (["--set", "train.lrr=1"], "unknown key 'train.lrr'"),
        (["--runtime", "apptainer", "--image", "missing.sif"], "container image"),
        (["--runtime", "docker"], "RUNTIME 'docker'"),
        ([], "no reachable SLURM"),  # this PATH has no sbatch: refused, not half-submitted
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, synth_data, args, message):
    base = [
        "--results",
        str(tmp_path),
        "--variants",
        "baseline",
        "--set",
        f"data.root={synth_data}",
    ]
    if "--study" not in args:
        base += ["--study", "s1"]
    if args:  # validated as fully by a dry run, which needs no cluster
        base.append("--dry-run")
    proc = plan_cmd(*base, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_collect_of_a_missing_study_is_refused(tmp_path):
    proc = plan_cmd("collect", "--study", "nowhere", "--results", str(tmp_path))
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_the_run_spec_survives_the_tasks_file():
    spec = RunSpec(study="s", variant="no_ema", seed=3, profile="tiny", run_dir="/r/s/no_ema/seed3",
                   overrides=("a=1", "b=2"), container=ContainerSpec("apptainer", "/i.sif",
                                                                     ("/r", "/d"), gpus=True),
                   config_hash="abc", max_requeues=2, max_retries=0)  # fmt: skip
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_runtime_auto_uses_the_image_only_when_it_is_there(tmp_path):
    assert choose_runtime(None, str(tmp_path / "no.sif"), [])[0] == "none"
    assert "no image at" in choose_runtime("auto", str(tmp_path / "no.sif"), [])[1]
    assert choose_runtime("none", None, []) == ("none", "runtime none (RUNTIME=none)")
    assert choose_runtime(None, None, ["container.runtime=apptainer"])[0] == ""  # the --set wins
    with pytest.raises(UsageError):
        choose_runtime("docker", None, [])
