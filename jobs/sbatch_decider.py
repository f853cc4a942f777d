"""The decider of a plain-sbatch halving study: ``slurm/decide.sbatch STUDY_DIR RUNG`` runs
``python -m jobs.sbatch_decider STUDY_DIR RUNG``.

The same rule, files and records as the submitit door's ``DecideJob`` (:func:`jobs.decider.
run_decider`); only the submission differs: the survivors' next rung is one array of
``slurm/train.sbatch`` per resource group (:func:`jobs.sbatch_study.queue_arrays`, tasks files and
run-dir links under ``STUDY/.sbatch/rung<r>``), then ``slurm/decide.sbatch`` for that rung or,
after the last, ``slurm/collect.sbatch``, each ``--dependency=afterany`` on the rung's arrays.
It runs host side, in the study's code snapshot (``--chdir``), with the Python the study was
submitted with (``T2S_PYTHON``); exit 1 with the reason on stderr when it fails (the study stays
resumable: ``make sbatch-study ... RESUME=1``, as ``--resume-study``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from jobs.decider import read_plan, run_decider
from jobs.sbatch_params import groups, submission_environment
from jobs.sbatch_study import collect_argv, decide_argv, queue_arrays, sbatch
from jobs.spec import PlannedRun
from text2sign.study import slurm_query


def _free(folder: Path) -> Path:
    """``folder``, or ``folder.1``, ``folder.2``…: a rerun decider (a resumed study) never
    overwrites the tasks files of the jobs an earlier one queued."""
    out, k = folder, 0
    while out.exists():
        k += 1
        out = folder.with_name(f"{folder.name}.{k}")
    return out


def submit_rung(study_dir: Path, runs: list[PlannedRun], rung: int, last: bool) -> dict[str, Any]:
    """Rung ``rung``'s arrays for ``runs`` (sets their job ids), then the next decider or the
    collector; what study.json records of them."""
    plan, _ = read_plan(study_dir)
    code, name = Path(plan["code_dir"]), plan["study"]
    note = (plan.get("sbatch") or {}).get("runtime", "")
    sub = _free(study_dir / ".sbatch" / f"rung{rung}")
    # A refused array raises here; run_decider records the runs that have a job id by then.
    array_ids = list(queue_arrays(groups(runs, slurm_query.max_array_size()), sub,
                                  name=f"t2s-{name}-r{rung}", code=code, note=note, after=[]))  # fmt: skip
    s = runs[0].slurm
    if last:
        job = collect_argv(study_dir, name=f"t2s-{name}-collect", slurm=s, after=array_ids,
                           code=code, mail_user=plan.get("mail_user"))  # fmt: skip
        return {"array_job_ids": array_ids, "collector_job_id": sbatch(job)}
    job = decide_argv(study_dir, rung, name=f"t2s-{name}-decide{rung}", slurm=s,
                      after=array_ids, code=code)  # fmt: skip
    return {"array_job_ids": array_ids, "decider_job_id": sbatch(job)}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[1].isdigit():
        print("sbatch_decider: error: usage: python -m jobs.sbatch_decider STUDY_DIR RUNG",
              file=sys.stderr)  # fmt: skip
        return 2
    study_dir, rung = Path(args[0]).resolve(), int(args[1])
    env = submission_environment(dict(os.environ))  # this job's SLURM_* must not shape the next
    os.environ.clear()
    os.environ.update(env)
    try:
        out = run_decider(study_dir, rung, lambda runs, nxt, last: submit_rung(
            study_dir, runs, nxt, last))  # fmt: skip
    except Exception as e:  # run_decider recorded it (halving/rung<r>.json, study.json event)
        print(f"sbatch_decider: error: {e}", file=sys.stderr)
        return 1
    print(f"rung {rung}: kept {', '.join(out['survivors'])}; "
          f"dropped {', '.join(out['dropped']) or 'none'}; next: {out.get('next')}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
