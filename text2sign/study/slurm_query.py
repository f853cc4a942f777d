"""SLURM's own view of a study's jobs: ``sacct`` (accounting) and ``scontrol``, asked sparingly.

Used by the launcher (is this job being cancelled?), the submitter (array size limit, jobs still
queued), ``jobs/status.py`` and the collector (how did a job end that never wrote a status?).
A study asks ``sacct`` once per refresh for all of its jobs, at most every ``MIN_POLL_S`` seconds,
and less often while nothing changes (:class:`SacctPoller`).
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from text2sign import atomic

#: SLURM job states after which a job never runs again (REQUEUED records are followed by others).
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                   "BOOT_FAIL", "DEADLINE", "PREEMPTED"})  # fmt: skip
MIN_POLL_S = 30.0
MAX_POLL_S = 300.0
_FIELDS = ("JobID", "State", "Elapsed", "NodeList", "ExitCode", "Start", "End", "ElapsedRaw",
           "CPUTimeRAW", "AllocTRES")  # fmt: skip


def available() -> bool:
    return shutil.which("sacct") is not None


def _run(cmd: list[str], timeout: float = 30) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def job_records(job_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """Job id → every accounting record of it, oldest first (``-D``: requeued attempts too).

    ``job_ids`` may be array tasks (``123_4``) or whole arrays (``123``: every task is listed).
    """
    ids = sorted({str(j) for j in job_ids if j})
    if not ids or not available():
        return {}
    out = _run(["sacct", "-X", "-D", "-n", "-P", "-o", ",".join(_FIELDS), "-j", ",".join(ids)])
    records: dict[str, list[dict[str, str]]] = {}
    for line in (out or "").splitlines():
        parts = line.split("|")
        if len(parts) != len(_FIELDS):
            continue
        rec = dict(zip(_FIELDS, parts, strict=True))
        rec["State"] = rec["State"].split()[0]  # "CANCELLED by 0" → "CANCELLED"
        for job in expand(rec["JobID"]):
            records.setdefault(job, []).append({**rec, "JobID": job})
    return records


def expand(job_id: str) -> list[str]:
    """``12_[0-2,5%4]`` (array tasks not yet started, as sacct lists them) → 12_0 12_1 12_2 12_5."""
    m = re.fullmatch(r"(\d+)_\[([^\]%]+)(?:%\d+)?\]", job_id)
    if not m:
        return [job_id]
    out = []
    for part in m.group(2).split(","):
        lo, _, hi = part.partition("-")
        out += [f"{m.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def alloc_gpus(tres: str) -> int:
    """GPUs in an ``AllocTRES`` string (``cpu=8,gres/gpu=2,gres/gpu:h100=2`` → 2)."""
    plain = re.search(r"(?:^|,)gres/gpu=(\d+)", tres)
    if plain:
        return int(plain.group(1))
    return sum(int(n) for n in re.findall(r"(?:^|,)gres/gpu:[^=,]+=(\d+)", tres))


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


def summarize(records: dict[str, list[dict[str, str]]]) -> dict[str, dict[str, Any]]:
    """Job id → {state, restarts, elapsed, nodes, attempts}: the latest record, restarts =
    REQUEUED ones; ``attempts``: every record's state, elapsed seconds, CPU seconds
    (``CPUTimeRAW`` = elapsed × allocated CPUs), allocated GPUs, start and end, for the cost."""
    out = {}
    for job, recs in records.items():
        last = recs[-1]
        out[job] = {
            "state": last["State"],
            "restarts": sum(r["State"] == "REQUEUED" for r in recs),
            "elapsed": last["Elapsed"],
            "nodes": [r["NodeList"] for r in recs if r["NodeList"] not in ("", "None assigned")],
            "attempts": [
                {
                    "state": r["State"],
                    "elapsed_s": _int(r.get("ElapsedRaw", "")),
                    "cpu_s": _int(r.get("CPUTimeRAW", "")),
                    "gpus": alloc_gpus(r.get("AllocTRES", "")),
                    "start": r.get("Start", ""),
                    "end": r.get("End", ""),
                }
                for r in recs
            ],  # fmt: skip
        }
    return out


def queued(job_ids: list[str]) -> dict[str, str]:
    """Job id → state for the jobs the controller still holds (pending, running, requeued…).

    Asks ``squeue``, not ``sacct``: a job submitted a moment ago may not have reached the
    accounting database yet, but the controller knows it at once.
    """
    wanted = {str(j) for j in job_ids if j}
    if not wanted or not shutil.which("squeue"):
        return {}
    out = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"], timeout=15)
    states = {}
    for line in (out or "").splitlines():
        job, _, state = line.partition("|")
        for j in expand(job):
            if j in wanted:
                states[j] = state
    return states


def job_state(job_id: str) -> str | None:
    """The controller's current state of a job (``scontrol``; None when it no longer knows it)."""
    out = _run(["scontrol", "show", "job", "-o", str(job_id)], timeout=15)
    m = re.search(r"\bJobState=(\S+)", out or "")
    return m.group(1) if m else None


def nodes_left(job_id: str, exclude: tuple[str, ...]) -> tuple[int, int] | None:
    """(usable nodes of the job's partition outside ``exclude``, nodes the job needs), or None
    when SLURM does not say. Usable: not down, drained, draining or failed."""
    job = _run(["scontrol", "show", "job", "-o", str(job_id)], timeout=15) or ""
    part, need = re.search(r"\bPartition=(\S+)", job), re.search(r"\bNumNodes=(\d+)", job)
    if not part or not need:
        return None
    out = _run(["sinfo", "-h", "-N", "-p", part.group(1), "-o", "%N %t"], timeout=15)
    if out is None:
        return None
    bad = ("down", "drain", "drng", "drained", "fail", "failg", "maint")
    usable = {n for n, t in (line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)
              if t.rstrip("*~#!%$@^-") not in bad}  # fmt: skip
    return len(usable - set(exclude)), int(need.group(1))


def max_array_size(default: int = 1001) -> int:
    """``MaxArraySize`` of the cluster: an array may hold at most this many tasks."""
    out = _run(["scontrol", "show", "config"], timeout=15) or ""
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.M)
    return int(m.group(1)) if m else default


class SacctPoller:
    """``sacct`` for one study, cached in ``STUDY/.sacct.json`` and shared by every reader
    (``make status`` run twice, ``--follow``, the collector): asked at most every 30 s, then
    every 60, 120 … 300 s while the answer stays the same; a change resets the interval."""

    def __init__(self, study: Path) -> None:
        self.cache = Path(study) / ".sacct.json"

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.cache.read_text())
        except (OSError, ValueError):
            return {}

    def get(self, job_ids: list[str], *, max_age: float | None = None) -> dict[str, dict[str, Any]]:
        """sacct's view of ``job_ids``; ``max_age`` (≥ 30 s) caps the back-off, e.g. once the
        run dirs say every run has ended and only the collector is awaited."""
        cached = self._load()
        age = time.time() - cached.get("time", 0.0)
        wanted = sorted({str(j) for j in job_ids if j})
        interval = cached.get("interval", 0.0)
        if max_age is not None:
            interval = min(interval, max(MIN_POLL_S, max_age))
        if cached.get("ids") == wanted and age < interval:
            return cached["jobs"]
        jobs = summarize(job_records(wanted))
        same = jobs == cached.get("jobs")
        interval = min(MAX_POLL_S, 2 * cached.get("interval", MIN_POLL_S)) if same else MIN_POLL_S
        try:
            atomic.write_json(self.cache, {"time": time.time(), "interval": interval,
                                           "ids": wanted, "jobs": jobs})  # fmt: skip
        except OSError:
            pass  # a read-only results tree still gets an answer
        return jobs
