"""What a user meets first, and what reaches a batch script (review items 1, 2, 6 and 7, and the
new user's first commands): the Python floor, ``python jobs/submit.py`` outside the venv, the
embedded dataset, ``--resume-study --dry-run``'s list, newlines in SLURM values, thread variables."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import bootstrap, record
from jobs.inputs import check_data, embedded_data
from jobs.sbatch_params import job_environment
from jobs.spec import RunSpec, finished, trainer_argv
from jobs.study import plan
from tests.unit.jobs.test_submit import no_slurm_env, submit
from text2sign import PYTHON_FLOOR
from text2sign.config import load_config
from text2sign.errors import UsageError
from text2sign.run.rundir import RunDir

REPO = Path(__file__).resolve().parents[3]
PY310 = Path("/root/.pyenv/versions/3.10.13/bin/python")  # this machine kind's pyenv has one


def test_the_python_floor_covers_every_flag_the_jobs_start_python_with():
    """Before: setup.cfg and the README said 3.10+, and every job ran ``python -P`` (3.11+)."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    floor = tuple(int(x) for x in cfg["options"]["python_requires"].removeprefix(">=").split("."))
    assert floor == PYTHON_FLOOR
    argv = trainer_argv(RunSpec("s", "baseline", 0, "tiny", "/r", code="/snap"))
    if "-P" in argv:
        assert floor >= (3, 11), "python -P needs Python 3.11"
    assert f"`python3` ({'.'.join(map(str, floor))}+;" in (REPO / "README.md").read_text()


def test_an_older_python_is_one_line_and_exit_2():
    assert bootstrap.problem((3, 10, 13)) == (
        "Python 3.10.13 is older than 3.11, the oldest the project supports"
    )
    if not PY310.exists():
        pytest.skip(f"no Python 3.10 at {PY310} for the end-to-end half (the check above ran)")
    proc = subprocess.run([str(PY310), "-m", "text2sign", "train"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "Python 3.10.13 is older than 3.11" in proc.stderr


def test_submit_outside_the_venv_runs_in_it_or_says_what_to_do(tmp_path):
    """``python -S`` has no site-packages, as a Python outside the venv. Before: a traceback
    (ModuleNotFoundError: submitit)."""
    env = {**os.environ, **no_slurm_env()}
    env.pop(bootstrap.REEXEC_MARK, None)
    cmd = [sys.executable, "-S", str(REPO / "jobs" / "submit.py"), "--variants", "all",
           "--dry-run", "--executor", "slurm", "--no-input-check", "--results", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("# study "), proc.stderr
    env[bootstrap.REEXEC_MARK] = "1"  # as without a .venv to run in
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert re.fullmatch(r"submit: error: \S+ lacks yaml, pydantic, pandas, submitit: run `make venv` "
                        r"once in \S+ \(then this command runs in its \.venv by itself\)\n",
                        proc.stderr), proc.stderr  # fmt: skip


def test_the_embedded_dataset_is_generated_for_the_default_root(tmp_path, capsys):
    """Before: 'data.root: dataset folder …/data/synth does not exist', nothing said make data."""
    cfg = load_config()
    assert cfg.data.root == "data/synth"
    with pytest.raises(UsageError, match=r"does not exist \(`make data` generates the embedded"):
        check_data(cfg, tmp_path)  # a dry run generates nothing and says how
    embedded_data(cfg, tmp_path)
    assert (tmp_path / "data" / "synth" / ".complete").exists()
    check_data(cfg, tmp_path)  # a valid dataset now
    assert "generating the embedded synthetic dataset" in capsys.readouterr().err


def _study(tmp_path: Path):
    common = dict(variants="baseline", seeds="0,1,2", profile="tiny", study="again",
                  results=str(tmp_path), overrides=[], config_file=None, executor="local",
                  input_check=False)  # fmt: skip
    first = plan(**common, resume=False)
    first.dir.mkdir()
    record.write_runs(first, record.study_record(first))
    cfg = load_config()
    for seed, state in ((0, "COMPLETED"), (1, "COMPLETED"), (2, "FAILED")):
        run = RunDir(first.runs[seed].spec.run_dir)
        run.prepare(load_config(overrides=[f"train.seed={seed}"]))
        run.write_status(state, reason="boom" if state == "FAILED" else "", cause="crash"
                         if state == "FAILED" else "")  # fmt: skip
    (Path(first.runs[0].spec.run_dir) / "evaluation_metrics.json").write_text("{}")
    assert cfg.eval.enabled
    return common, first


def test_a_completed_run_never_evaluated_is_resubmitted_to_be_evaluated(tmp_path):
    """Before: plan() skipped every COMPLETED run and both job entries returned at once, so a
    run whose time limit hit during its evaluation was never evaluated."""
    common, first = _study(tmp_path)
    again = plan(**common, resume=True)
    assert [(r.spec.seed, r.last_state) for r in again.runs] == [
        (1, "COMPLETED, not evaluated"), (2, "FAILED: boom")]  # fmt: skip
    assert again.submission == 1 and all(r.spec.submission == 1 for r in again.runs)
    assert finished(first.runs[0].spec) and not finished(first.runs[1].spec)
    assert finished(RunSpec(**{**first.runs[1].spec.__dict__, "evaluate": False}))


def test_resume_dry_run_lists_each_run_with_its_last_state(tmp_path):
    """Before: '# study again: 2 runs', not which."""
    _study(tmp_path)
    proc = submit("--study", "again", "--results", str(tmp_path), "--variants", "baseline",
                  "--seeds", "0,1,2", "--resume-study", "--dry-run", "--executor", "slurm",
                  "--no-input-check", env=no_slurm_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert ("# --resume-study would resubmit 2 runs:\n#   baseline/seed1: COMPLETED, not "
            "evaluated\n#   baseline/seed2: FAILED: boom\n") in proc.stdout  # fmt: skip


NEWLINE = "gpu\ntouch /tmp/t2s-injected\n#"


@pytest.mark.parametrize("door", ["submit", "sbatch_study"])
@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--partition", NEWLINE], "slurm.partition"),
        (["--set", 'slurm.partition="gpu\\ntouch /tmp/t2s-injected\\n#"'], "slurm.partition"),
        (["--qos", "normal;touch"], "slurm.qos"),
        (["--constraint", "a100 touch"], "slurm.constraint"),
        (["--sweep", "slurm.account=ok,'bad\tname'"], "slurm.account"),
    ],
)
def test_a_value_that_would_reach_a_batch_script_as_shell_is_refused(tmp_path, door, args, where):
    """Before: --partition $'gpu\\ntouch X\\n#' became an executable line of the batch script."""
    cmd = [sys.executable, str(REPO / "jobs" / f"{door}.py"), "--variants", "baseline",
           "--study", "inj", "--results", str(tmp_path), "--dry-run", "--no-input-check", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **no_slurm_env()})  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stdout + proc.stderr
    assert f"key '{where}'" in proc.stderr and "touch /tmp" not in proc.stdout


def test_a_config_file_value_with_a_newline_is_refused(tmp_path):
    """A profile, variant or config file reaches the same validation as --set."""
    from text2sign.errors import ConfigError

    config = tmp_path / "base.yaml"
    config.write_text((REPO / "text2sign" / "configs" / "base.yaml").read_text()
                      + '\nslurm:\n  extra: ["--comment=x\\nrm -rf ~"]\n')  # fmt: skip
    with pytest.raises(ConfigError, match=r"key 'slurm.extra': a newline or other control"):
        load_config(config_file=config)


def test_the_submitting_shells_thread_variables_stay_out_of_the_jobs():
    """Before: make's OMP_NUM_THREADS=1 reached every job through sbatch --export=ALL."""
    env = job_environment({"OMP_NUM_THREADS": "1", "PATH": "/bin", "MKL_NUM_THREADS": "1"})
    assert env == {"PATH": "/bin"}
    assert "export OMP_NUM_THREADS" not in (REPO / "Makefile").read_text()
