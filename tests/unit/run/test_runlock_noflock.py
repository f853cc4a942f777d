"""flock where the file system has none (NFS without lockd: ENOLCK; Lustre noflock: ENOSYS): the
lock is not enforced and says so once, instead of crashing the trainer (review item 10). The real
kernel answer, end to end: tests/integration/test_noflock.py."""

from __future__ import annotations

import errno
import fcntl

import pytest

from jobs import studyfile
from text2sign.run import runlock
from text2sign.run.runlock import RunLock


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.ENOSYS])
def test_no_flock_is_a_lock_not_enforced_not_a_crash(tmp_path, monkeypatch, capsys, code):
    def refuse(fd, op):
        raise OSError(code, "no locks")

    monkeypatch.setattr(fcntl, "flock", refuse)
    monkeypatch.setattr(runlock, "_warned", set())
    lock = RunLock(tmp_path).acquire(since="now")
    assert not lock.enforced and '"pid"' in (tmp_path / ".lock").read_text()
    lock.release()
    studyfile.update(tmp_path, lambda r: r.update(study="s"))  # study.json's lock, the same way
    err = capsys.readouterr().err
    assert err.count("the lock is not enforced here") == 2  # one line per file, not per call
    assert errno.errorcode[code] in err


def test_a_lock_held_by_another_process_is_still_refused(tmp_path):
    holder = RunLock(tmp_path).acquire()
    try:
        assert not RunLock(tmp_path).try_acquire()
    finally:
        holder.release()
