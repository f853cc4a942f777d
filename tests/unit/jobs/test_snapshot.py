"""The frozen code snapshot (jobs/snapshot.py) and how the trainer is pointed at it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from jobs import snapshot
from jobs.spec import RunSpec, trainer_argv, trainer_env


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("VALUE = 1\n")
    (repo / "gone.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("results/\n")
    git(tmp_path, "init", "-q", str(repo))
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return repo


def test_clean_tree_snapshot_is_head(tmp_path):
    repo = make_repo(tmp_path)
    code = snapshot.describe(repo, repo / "results" / "s")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert code.commit == head and not code.dirty and code.diff_sha256 is None
    assert code.untracked_ignored == 0 and code.id == head[:12]
    assert code.snapshot == str((repo / "results" / "s" / ".code" / head[:12]).resolve())
    dest = snapshot.build(code, repo)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        ".gitignore", "CODE.json", "gone.py", "pkg/mod.py"
    ]  # fmt: skip
    assert json.loads((dest / "CODE.json").read_text()) == code.record()


def test_dirty_tree_snapshot_is_head_plus_the_diff_without_untracked(tmp_path):
    repo = make_repo(tmp_path)
    (repo / "pkg" / "mod.py").write_text("VALUE = 2\n")  # modified, not staged
    (repo / "gone.py").unlink()  # deleted in the working tree
    (repo / "new.py").write_text("untracked = True\n")  # never added
    code = snapshot.describe(repo, repo / "results" / "s")
    diff = subprocess.run(["git", "-C", str(repo), "diff", "HEAD", "--binary"],
                          capture_output=True, check=True).stdout  # fmt: skip
    assert code.dirty and code.diff_sha256 == hashlib.sha256(diff).hexdigest()
    assert code.untracked_ignored == 1 and code.id.endswith("-" + code.diff_sha256[:8])
    dest = snapshot.build(code, repo)
    assert (dest / "pkg" / "mod.py").read_text() == "VALUE = 2\n"
    assert not (dest / "gone.py").exists() and not (dest / "new.py").exists()
    (repo / "pkg" / "mod.py").write_text("VALUE = 3\n")  # later edits never reach it
    assert (dest / "pkg" / "mod.py").read_text() == "VALUE = 2\n"
    assert snapshot.describe(repo, repo / "results" / "s").id != code.id  # new code, new folder


def test_the_same_code_reuses_its_folder(tmp_path):
    repo = make_repo(tmp_path)
    code = snapshot.describe(repo, repo / "results" / "s")
    dest = snapshot.build(code, repo)
    marker = dest / "marker"
    marker.write_text("kept")
    assert snapshot.build(snapshot.describe(repo, repo / "results" / "s"), repo) == dest
    assert marker.exists()  # not rebuilt
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temporary left behind


def test_outside_git_there_is_no_snapshot(tmp_path):
    code = snapshot.describe(tmp_path, tmp_path / "s")
    assert code.commit == "unknown" and code.snapshot is None
    assert snapshot.build(code, tmp_path) is None


def test_the_trainer_imports_the_snapshot_not_its_working_directory(tmp_path):
    """``python -P`` leaves the cwd (the checkout) off sys.path; PYTHONPATH names the snapshot."""
    snap, cwd = tmp_path / "snap", tmp_path / "checkout"
    for folder, value in ((snap, "snapshot"), (cwd, "checkout")):
        (folder / "probe").mkdir(parents=True)
        (folder / "probe" / "__main__.py").write_text(f"print({value!r})\n")
    spec = RunSpec(study="s", variant="baseline", seed=0, profile="tiny", run_dir="/r/s/b/seed0",
                   code=str(snap))  # fmt: skip
    python = trainer_argv(spec)[: trainer_argv(spec).index("-m")]
    assert python == [sys.executable, "-P"]
    env = trainer_env(spec, {**os.environ, "PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"] == f"{snap}{os.pathsep}/elsewhere"
    out = subprocess.run([*python, "-m", "probe"], cwd=cwd, env=env, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.strip() == "snapshot"
    plain = RunSpec(study="s", variant="baseline", seed=0, profile="tiny", run_dir="/r/s/b/seed0")
    assert trainer_argv(plain)[1] == "-m" and trainer_env(plain, {}) == {}  # no snapshot: as before


def test_a_run_from_the_snapshot_reports_the_snapshot_commit(tmp_path):
    """text2sign.run.metadata.git_info() inside a snapshot: CODE.json, not the enclosing checkout."""
    from tests.conftest import REPO

    code = snapshot.describe(REPO, tmp_path / "s")
    dest = snapshot.build(code, REPO)
    probe = (
        "from text2sign.run.metadata import git_info; import json; print(json.dumps(git_info()))"
    )
    out = subprocess.run([sys.executable, "-P", "-c", probe], cwd=tmp_path, capture_output=True,
                         env={**os.environ, "PYTHONPATH": str(dest)}, text=True, check=True)  # fmt: skip
    info = json.loads(out.stdout)
    assert info["commit"] == code.commit and info["dirty"] == code.dirty
    assert info["diff_sha256"] == code.diff_sha256 and info["snapshot"] == str(dest)
