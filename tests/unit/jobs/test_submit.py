"""jobs/submit.py without a cluster: the dry-run sbatch text (golden file) and bad input.

Bad input is one line on stderr, exit 2, and nothing submitted (no study dir is created).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "sbatch_tiny_all.txt"


def submit(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO):
    cmd = [sys.executable, str(REPO / "jobs" / "submit.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, **(env or {})})  # fmt: skip


def no_slurm_env() -> dict[str, str]:
    """A PATH without sbatch/sinfo: a machine without SLURM (the real lookup, not a mock); git
    stays (a folder holding only a link to it), as on a login node without SLURM."""
    return {"PATH": os.pathsep.join([str(Path(sys.executable).parent), _git_only()])}


@functools.cache
def _git_only() -> str:
    folder = Path(tempfile.mkdtemp(prefix="t2s_git_only_"))
    (folder / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    return str(folder)


def normalise(text: str, results: Path) -> str:
    """Machine paths and the code snapshot's id (commit + diff hash) → placeholders."""
    text = (text.replace(str(results.resolve()), "<RESULTS>").replace(str(REPO), "<REPO>")
            .replace(sys.executable, "<PYTHON>"))  # fmt: skip
    return re.sub(r"/\.code/[0-9a-f]{12}(-[0-9a-f]{8})?", "/.code/<CODE>", text)


def test_dry_run_prints_the_pinned_sbatch_scripts(tmp_path):
    proc = submit("--variants", "all", "--seeds", "0,1", "--study", "golden", "--results",
                  str(tmp_path), "--dry-run", "--executor", "slurm", "--partition", "gpu",
                  "--account", "proj1", "--time", "90", "--sbatch-extra=--exclusive",
                  "--signal", "USR2@90", "--no-input-check", env=no_slurm_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # rendering the scripts needs no cluster
    text = normalise(proc.stdout, tmp_path)
    if os.environ.get("T2S_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "sbatch text changed: review, then T2S_UPDATE_GOLDEN=1"
    assert not (tmp_path / "golden").exists()  # nothing written, nothing submitted


def test_dry_run_local_executor_without_slurm(tmp_path):
    proc = submit("--variants", "baseline", "--study", "x", "--results", str(tmp_path),
                  "--dry-run", "--executor", "local", "--no-input-check",
                  env=no_slurm_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "#SBATCH --array=0-0%1" in proc.stdout and "executor local" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--variants", "baseline,fancy"],
            "unknown variant 'fancy'; valid: baseline, no_ema, text_finetuned",
        ),
        (["--study", "a;rm -rf x"], "--study 'a;rm -rf x': use only letters"),
        (["--study", "..", "--variants", "baseline"], "--study '..'"),
        (["--results", "res$(id)"], "paths may use only"),
        (["--results", "../elsewhere"], "no '..'"),
        (["--set", "train.lrr=1"], "unknown key 'train.lrr'; did you mean 'train.lr'?"),
        (["--set", "data.root=/tmp/a b"], "data.root '/tmp/a b'"),
        (["--seeds", "0,x"], "--seeds '0,x'"),
        (["--signal", "TERM@60"], "expected USR2@SECONDS"),
        (["--runtime", "apptainer", "--image", "missing.sif"], "container image"),
        (["--sbatch-extra", "exclusive"], "is not of the form --name"),
        (["--nodes", "0"], "key 'slurm.nodes'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_submits_nothing(tmp_path, synth_data, args, message):
    base = ["--results", str(tmp_path), "--executor", "local", "--set", f"data.root={synth_data}"]
    if "--study" not in args:
        base += ["--study", "s1"]
    proc = submit(*base, *args, env=no_slurm_env())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def _pairless(root: Path) -> Path:
    root.mkdir()
    (root / "a.gif").write_bytes(b"not a gif")
    (root / "a.txt").write_text("hello")
    (root / "b.gif").write_bytes(b"GIF89a")  # no caption
    return root


def _rowless(manifest: Path) -> Path:
    (manifest.parent / "zero.mp4").write_bytes(b"")
    manifest.write_text("video,caption,signer\nzero.mp4,hello,s1\nmissing.mp4,hi,s2\n")
    return manifest


@pytest.mark.parametrize(
    ("make_sets", "message"),
    [
        (lambda t: ["data.root=" + str(t / "nowhere")], "does not exist"),
        (lambda t: ["data.root=" + str((t / "empty").mkdir() or t / "empty")], "no valid samples"),
        (
            lambda t: ["data.root=" + str(_pairless(t / "bad"))],
            "no valid samples (NAME.gif/.mp4/.webm or a frame folder NAME/, each with NAME.txt)",
        ),
        (lambda t: ["data.root=" + str(_rowless(t / "m.csv"))], "no usable row in manifest"),
        (lambda t: ["data.root=" + str(t / "gone.jsonl")], "gone.jsonl does not exist"),
        (lambda t: ["text.encoder=" + str(t / "no_model")], "is not a saved model"),
        (lambda t: ["text.encoder=someone/not-cached"], "is not in the HF cache"),
    ],
)
def test_missing_inputs_are_refused_before_submitting(tmp_path, synth_data, make_sets, message):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sets = [f"data.root={synth_data}", *make_sets(inputs)]
    results = tmp_path / "results"
    proc = submit("--results", str(results), "--study", "s", "--executor", "local",
                  *[x for s in sets for x in ("--set", s)],
                  env={**no_slurm_env(), "HF_HOME": str(tmp_path / "hf")})  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "--no-input-check" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and not results.exists()


def test_existing_study_is_refused_unless_resumed(tmp_path):
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "precious").write_text("x")
    proc = submit("--study", "s1", "--results", str(tmp_path), "--executor", "local",
                  env=no_slurm_env())  # fmt: skip
    assert (
        proc.returncode == 2
        and "exists; pick another --study or pass --resume-study" in proc.stderr
    )
    proc = submit("--study", "s1", "--results", str(tmp_path), "--resume-study", env=no_slurm_env())
    assert proc.returncode == 2 and "study.json not found" in proc.stderr
    assert [p.name for p in (tmp_path / "s1").iterdir()] == ["precious"]


def test_executor_slurm_without_slurm_is_a_usage_error(tmp_path):
    proc = submit(
        "--study", "s", "--results", str(tmp_path), "--executor", "slurm", env=no_slurm_env()
    )
    assert proc.returncode == 2 and "no reachable SLURM" in proc.stderr


def test_resume_with_another_world_size_is_refused_before_submitting(tmp_path, synth_data):
    from text2sign import atomic
    from text2sign.config import load_config
    from text2sign.run.rundir import RunDir

    study = tmp_path / "s1"
    sets = [f"data.root={synth_data}"]
    cfg = load_config(profile="tiny", variant="baseline", overrides=[*sets, "train.seed=0"])
    run = RunDir(study / "baseline" / "seed0")
    run.prepare(cfg)
    atomic.write_json(run.checkpoints / "step00000002" / "t2s.json",
                      {"step": 2, "world_size": 2, "config_hash": cfg.hash()})  # fmt: skip
    atomic.write_text(run.checkpoints / "latest", "step00000002\n")
    atomic.write_json(study / "study.json", {"executor": "local", "runs_all": []})
    proc = submit("--study", "s1", "--results", str(tmp_path), "--variants", "baseline",
                  "--executor", "local", "--resume-study", "--set", sets[0],
                  env=no_slurm_env())  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "written by 2 ranks, the resubmission has 1" in proc.stderr
