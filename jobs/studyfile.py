"""``results/<study>/study.json``: read and updated under one lock by every writer, either side.

The submitter writes what it submitted (:mod:`jobs.record`); launchers on compute nodes append
events (a crash retried on another node) and read the cancel marker. Both read-modify-write the
file under an exclusive ``flock`` on ``STUDY/.study.lock`` and replace it atomically, so no writer
loses another's update. On a file system without flock (Lustre ``noflock``, NFS without lockd)
the lock is not enforced and says so once (:func:`text2sign.run.runlock.flock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from text2sign import atomic
from text2sign.run.rundir import now_iso
from text2sign.run.runlock import flock

STUDY_FILE = "study.json"
CANCEL_MARKER = "cancel_requested"  # written by `make cancel` before scancel: cancel is final


@contextlib.contextmanager
def locked(study: Path) -> Iterator[None]:
    path = Path(study) / ".study.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flock(fd, fcntl.LOCK_EX, path)
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
