"""The frozen code of a study: what its jobs import, however long they wait in the queue.

At submit time the checkout's tracked files, *as they are in the working tree* (HEAD plus the
uncommitted changes of tracked files), are copied into ``results/<study>/.code/<id>/``:

* ``<id>`` is ``<commit[:12]>`` for a clean tree, ``<commit[:12]>-<sha256(diff)[:8]>`` for a
  dirty one, so a resubmission with the same code reuses its folder and new code gets a new one;
* untracked files are *not* included (not even new modules you have not ``git add``-ed); their
  number is recorded (``untracked_ignored``);
* the copy is written under a temporary name and renamed: a folder that exists is complete.

Why not submitit's ``RsyncSnapshot``: it needs ``rsync`` on the login node and changes the
submitting process's working directory (relative ``--results`` paths would move with it); a
copy of ``git ls-files`` is the same selection of files without either.

With a container image the image is the code: the trainer runs the image's package and the
snapshot is only the record of what was submitted (the host-side launcher still runs from it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SNAPSHOT_DIR = ".code"
RECORD_FILE = "CODE.json"  # at the snapshot's root: what text2sign.run.metadata reports as git


@dataclass(frozen=True)
class Code:
    """Which code a study runs: commit, uncommitted diff, and where its snapshot is."""

    commit: str
    dirty: bool
    diff_sha256: str | None
    untracked_ignored: int
    snapshot: str | None = None  # the folder the jobs import from; None: not a git checkout

    @property
    def id(self) -> str:
        return self.commit[:12] + (f"-{self.diff_sha256[:8]}" if self.dirty else "")

    def record(self) -> dict[str, Any]:
        return asdict(self)


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True,
                          timeout=60).stdout  # fmt: skip


def describe(repo: Path, study_dir: Path) -> Code:
    """The code record of ``repo`` now, with the snapshot folder it would get under the study;
    outside a git checkout no snapshot (the jobs import ``repo`` itself, as before)."""
    try:
        commit = _git(repo, "rev-parse", "HEAD").decode().strip()
        diff = _git(repo, "diff", "HEAD", "--binary")
        untracked = _git(repo, "ls-files", "-z", "--others", "--exclude-standard").count(b"\0")
    except (OSError, subprocess.SubprocessError):
        return Code("unknown", False, None, 0, None)
    code = Code(commit, bool(diff), hashlib.sha256(diff).hexdigest() if diff else None, untracked)
    snapshot = (study_dir / SNAPSHOT_DIR / code.id).resolve()
    return Code(**{**code.record(), "snapshot": str(snapshot)})


def build(code: Code, repo: Path) -> Path | None:
    """Copy the tracked files of ``repo`` (working-tree content) into ``code.snapshot``, once."""
    if code.snapshot is None:
        return None
    dest = Path(code.snapshot)
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for rel in _git(repo, "ls-files", "-z", "--cached").decode().split("\0"):
            src = repo / rel
            if not rel or not (src.is_file() or src.is_symlink()):
                continue  # deleted in the working tree, or a submodule
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                out.symlink_to(os.readlink(src))
            else:
                shutil.copy2(src, out)
        from text2sign import atomic

        atomic.write_json(tmp / RECORD_FILE, code.record())
        tmp.chmod(0o755)
        tmp.rename(dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():  # else a concurrent submission of the same code renamed first
            raise
    return dest
