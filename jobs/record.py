"""What a submission writes into ``results/<study>/study.json`` (submit time).

:func:`study_record` is what was submitted, :func:`write_runs` adds the runs and their jobs; the
file is read-modified-written under the study's lock (:mod:`jobs.studyfile`, shared with the
launchers that append events). A run's entry keeps the job ids of every submission of it
(``job_ids``), so the cost of a first, failed submission is never lost.
"""

from __future__ import annotations

import json
import os
import shlex
from datetime import datetime, timezone
from typing import Any

from jobs.spec import REPO, StudyPlan, build_command
from jobs.studyfile import STUDY_FILE, update
from text2sign.run.metadata import git_info


def study_record(p: StudyPlan) -> dict[str, Any]:
    """What the submitter writes about a submission (the runs are added by :func:`write_runs`)."""
    old: dict[str, Any] = {}
    if p.resume and (p.dir / STUDY_FILE).exists():
        old = json.loads((p.dir / STUDY_FILE).read_text())
    return {
        "study": p.name,
        "submission": p.submission,
        "executor": p.executor,
        "profile": p.profile,
        "git": git_info(REPO),
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
        "prepare": [k.label for k in p.prepare],  # the stage before training (real data)
    }


def _strip(old: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in old.items() if k not in ("previous_submissions", "runs_all", "events")}


def write_runs(p: StudyPlan, rec: dict[str, Any]) -> None:
    """study.json := ``rec`` plus the runs (and the events launchers appended meanwhile).

    ``runs_all`` holds the latest entry of every run of every submission; its ``job_ids`` lists
    every job the run had, oldest first (the cost counts them all)."""
    before = {(r["variant"], r["seed"]): r for r in rec.get("runs_all", [])}
    runs = []
    for r in p.runs:
        old = before.get((r.spec.name, r.spec.seed), {})
        ids = [*old.get("job_ids", [old.get("job_id")]), r.job_id]
        runs.append({"variant": r.spec.name, "point": r.spec.name, "base_variant": r.spec.variant,
                     "overrides": r.overrides, "seed": r.spec.seed,
                     "run_dir": os.path.relpath(r.spec.run_dir, p.dir),
                     "config_hash": r.config_hash, "job_id": r.job_id,
                     "job_ids": list(dict.fromkeys(str(j) for j in ids if j)),
                     "submission": p.submission, "command": build_command(r.spec)})  # fmt: skip
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
