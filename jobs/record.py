"""``results/<study>/study.json``: read and updated under one lock by every writer.

The submitter writes what it submitted (:func:`study_record`, :func:`write_runs`); launchers on compute nodes append events (a crash retried
on another node). Both read-modify-write the file under an exclusive ``flock`` on
``STUDY/.study.lock`` and replace it atomically, so no writer loses another's update.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from text2sign import atomic
from text2sign.run.metadata import git_info
from text2sign.run.rundir import now_iso

if TYPE_CHECKING:
    from jobs.study import StudyPlan

STUDY_FILE = "study.json"
CANCEL_MARKER = "cancel_requested"  # written by `make cancel` before scancel: cancel is final


@contextlib.contextmanager
def locked(study: Path) -> Iterator[None]:
    fd = os.open(Path(study) / ".study.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read(study: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(study) / STUDY_FILE).read_text())
    except (OSError, ValueError):
        return {}


def update(study: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` to study.json in place, under the study's lock; return the new record."""
    with locked(study):
        record = read(study)
        change(record)
        atomic.write_json(Path(study) / STUDY_FILE, record)
    return record


def add_event(study: Path, **event: Any) -> None:
    """Append one event (``kind``, run, job, node, reason…) to study.json's ``events``."""
    update(study, lambda r: r.setdefault("events", []).append({"time": now_iso(), **event}))


def cancel_requested(study: Path) -> bool:
    return (Path(study) / CANCEL_MARKER).exists()


def study_record(p: StudyPlan) -> dict[str, Any]:
    """What the submitter writes about a submission (the runs are added by :func:`write_runs`)."""
    old: dict[str, Any] = {}
    if p.resume and (p.dir / "study.json").exists():
        old = json.loads((p.dir / "study.json").read_text())
    return {
        "study": p.name,
        "executor": p.executor,
        "profile": p.profile,
        "git": git_info(Path(__file__).resolve().parents[1]),
        "container": p.container,
        "code": p.code.record(),
        "reference": p.reference[0],
        "reference_source": p.reference[1],
        "sweep": p.sweep,
        "mail_user": p.mail_user,
        "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [shlex.quote(a) for a in p.argv],
        "cwd": os.getcwd(),
        "previous_submissions": old.get("previous_submissions", [])
        + ([_strip(old)] if old else []),
        "runs_all": old.get("runs_all") or [],
    }


def _strip(old: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in old.items() if k not in ("previous_submissions", "runs_all", "events")}


def write_runs(p: StudyPlan, rec: dict[str, Any]) -> None:
    """study.json := ``rec`` plus the runs (and the events launchers appended meanwhile)."""
    from jobs.launcher import build_command  # the launcher imports this module

    runs = [{"variant": r.spec.name, "point": r.spec.name, "base_variant": r.spec.variant,
             "overrides": r.overrides, "seed": r.spec.seed,
             "run_dir": os.path.relpath(r.spec.run_dir, p.dir), "config_hash": r.config_hash,
             "job_id": r.job_id, "command": build_command(r.spec)} for r in p.runs]  # fmt: skip
    known = {(r["variant"], r["seed"]) for r in runs}
    rec["runs"] = runs
    rec["runs_all"] = runs + [
        r for r in rec.get("runs_all", []) if (r["variant"], r["seed"]) not in known
    ]

    def change(current: dict[str, Any]) -> None:
        events = current.get("events", [])
        current.clear()
        current.update(rec, events=events)

    update(p.dir, change)
