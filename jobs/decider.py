"""The decider of a halving study (issue 24): after rung r, which points go on, and the next rung.

A job (``DecideJob`` through submitit, ``afterany`` on the rung's arrays, run like the collector:
host side, no GPU, no container) that

1. reads the rung's per-seed, per-clip results (:mod:`text2sign.study.rung_results`) of the
   points still in the study, applies the rule (:func:`text2sign.study.halving.decide`) and
   writes ``STUDY/halving/rung<r>.json``: every decision with its evidence;
2. unless the study was cancelled, submits rung r+1 for the survivors × seeds (their runs resume
   from their checkpoints with the next budget) and after it the next decider, or, after the last
   rung, the collector; study.json records the jobs (``halving.rungs``), so ``make status``,
   ``make cancel`` and ``--resume-study`` see them.

A decider that fails writes ``STUDY/halving/rung<r>.json`` with the error and an event in
study.json and submits nothing: the study is resumable (``--resume-study`` replans rung 0, whose
finished runs are no-ops, and decides again).
"""

from __future__ import annotations

import dataclasses
import json
import os
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import submitit

from jobs import studyfile
from jobs.halving_plan import HALVING_DIR, PLAN_FILE, with_rung
from jobs.launcher import CollectJob, TrainJob
from jobs.sbatch_params import groups, slurm_parameters, submission_environment
from jobs.spec import PlannedRun, StudyPlan, spec_from_dict, spec_to_dict
from text2sign import atomic
from text2sign.config import SlurmConfig
from text2sign.run.rundir import now_iso
from text2sign.study import slurm_query
from text2sign.study.halving import Rung, decide, survivors
from text2sign.study.rung_results import rung_values

#: Submits ``runs`` as rung ``rung`` and what follows it; returns what study.json records.
Submitter = Callable[[list[PlannedRun], int, bool], dict[str, Any]]


def write_plan(p: StudyPlan, sbatch: dict[str, Any] | None = None) -> None:
    """Submit time: what the deciders need (every run's spec and resources, the rungs; for the
    plain-sbatch door, ``sbatch``: how its jobs run)."""
    assert p.halving is not None
    runs = [{"spec": spec_to_dict(r.spec), "slurm": r.slurm.model_dump(),
             "config_hash": r.config_hash, "overrides": r.overrides} for r in p.runs]  # fmt: skip
    old = p.dir / HALVING_DIR / PLAN_FILE
    if p.resume and old.exists():  # --resume-study plans only the unfinished runs: keep the rest
        mine = {(r["spec"]["point"], r["spec"]["seed"]) for r in runs}
        runs += [r for r in json.loads(old.read_text())["runs"]
                 if (r["spec"]["point"], r["spec"]["seed"]) not in mine]  # fmt: skip
    atomic.write_json(p.dir / HALVING_DIR / PLAN_FILE, {
        "study": p.name, "halving": p.halving, "code_dir": str(p.code_dir),
        "mail_user": p.mail_user, "runs": runs, **({"sbatch": sbatch} if sbatch else {}),
    })  # fmt: skip


def read_plan(study_dir: Path) -> tuple[dict[str, Any], list[PlannedRun]]:
    d = json.loads((study_dir / HALVING_DIR / PLAN_FILE).read_text())
    runs = [PlannedRun(spec_from_dict(r["spec"]), r["config_hash"], SlurmConfig(**r["slurm"]),
                       overrides=r.get("overrides") or {}) for r in d["runs"]]  # fmt: skip
    return d, runs


def decision_file(study_dir: Path, rung: int) -> Path:
    return study_dir / HALVING_DIR / f"rung{rung}.json"


def alive_before(study_dir: Path, rung: int, points: list[str]) -> list[str]:
    """The points rung ``rung`` trained: all at rung 0, then the previous decider's survivors."""
    if rung == 0:
        return points
    prev = json.loads(decision_file(study_dir, rung - 1).read_text())
    return list(prev["survivors"])


def decide_rung(study_dir: Path, rung: int) -> dict[str, Any]:
    """Apply the rule to rung ``rung``; write and return ``halving/rung<r>.json``."""
    plan, runs = read_plan(study_dir)
    h = plan["halving"]
    budgets = h["rungs"]
    alive = alive_before(study_dir, rung, h["points"])
    mine = [r for r in runs if r.spec.name in alive]
    rel = [(r.spec.name, r.spec.seed, str(Path(r.spec.run_dir).relative_to(study_dir.resolve())))
           for r in mine]  # fmt: skip
    values = rung_values(study_dir, rel, budgets[rung], h["metric"])
    for p in alive:  # a point none of whose runs is known still has its entry
        values.setdefault(p, {})
    values = {p: values[p] for p in alive}
    decisions = decide(values, metric=h["metric"], better=h["better"], alpha=h["alpha"],
                       eta=h["eta"], max_keep=h["max_keep"], margin=h.get("margin", 0.0),
                       rung=Rung(rung, budgets[rung], budgets[-1], h["seeds"]))  # fmt: skip
    tested = sum(d.p_holm is not None for d in decisions)
    out = {
        "rung": rung, "steps": budgets[rung], "next_steps": budgets[rung + 1],
        "final_steps": budgets[-1], "metric": h["metric"], "better": h["better"],
        "alpha": h["alpha"], "margin": h.get("margin", 0.0), "eta": h["eta"], "max_keep": h["max_keep"],
        "test": "one-sided exact sign-flip permutation test of point − best, clustered by seed × "
                "recording (per clip where the evaluation records it, else per seed)",
        "correction": f"Holm over the {tested} points tested",
        "decisions": [d.to_json() for d in decisions],
        "survivors": survivors(decisions),
        "dropped": [d.point for d in decisions if not d.keep],
        "steps_not_spent": sum(d.steps_not_spent for d in decisions),
        "decided_at": now_iso(),
    }  # fmt: skip
    atomic.write_json(decision_file(study_dir, rung), out)
    return out


def next_rung_runs(study_dir: Path, rung: int, keep: list[str]) -> list[PlannedRun]:
    """The survivors' runs for rung ``rung`` (their overrides stop at its budget, or not at all)."""
    plan, runs = read_plan(study_dir)
    budgets = plan["halving"]["rungs"]
    out = []
    for r in runs:
        if r.spec.name in keep:
            spec = dataclasses.replace(r.spec, overrides=with_rung(r.spec.overrides, budgets, rung))
            out.append(dataclasses.replace(r, spec=spec, job_id=None))
    return out


def run_decider(study_dir: Path, rung: int, submit: Submitter) -> dict[str, Any]:
    """Decide rung ``rung``, then submit the next one (and what follows) through ``submit``."""
    study_dir = Path(study_dir)
    try:
        out = decide_rung(study_dir, rung)
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
        atomic.write_json(decision_file(study_dir, rung), {
            "rung": rung, "error": why, "traceback": traceback.format_exc(),
            "resumable": "the study is resumable: jobs/submit.py --study NAME --resume-study",
        })  # fmt: skip
        studyfile.add_event(study_dir, kind="decider_failed", rung=rung, reason=why)
        raise RuntimeError(f"decider of rung {rung} failed ({why}); the study is resumable with "
                           "--resume-study") from None  # fmt: skip
    if studyfile.cancel_requested(study_dir):
        out["next"] = "not submitted: the study was cancelled"
        atomic.write_json(decision_file(study_dir, rung), out)
        return out
    nxt = rung + 1
    last = (
        nxt
        == len(json.loads((study_dir / HALVING_DIR / PLAN_FILE).read_text())["halving"]["rungs"])
        - 1
    )
    runs = next_rung_runs(study_dir, nxt, out["survivors"])
    try:
        jobs = submit(runs, nxt, last)
    except Exception as e:  # sbatch refused: record what did reach SLURM, stay resumable
        why = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        queued = [r for r in runs if r.job_id]
        arrays = sorted({str(r.job_id).split("_")[0] for r in queued})
        out["next"] = {
            "rung": nxt,
            "error": f"sbatch refused rung {nxt}: {why}",
            "array_job_ids": arrays,
        }
        atomic.write_json(decision_file(study_dir, rung), out)
        record_rung(study_dir, nxt, queued, {"array_job_ids": arrays}, decider_job=None)
        studyfile.add_event(
            study_dir, kind="decider_failed", rung=rung, reason=out["next"]["error"]
        )
        raise RuntimeError(f"decider of rung {rung}: sbatch refused rung {nxt} ({why}); queued "
                           f"{len(queued)} of {len(runs)} runs; the study is resumable with "
                           "--resume-study") from None  # fmt: skip
    out["next"] = {"rung": nxt, **jobs}
    atomic.write_json(decision_file(study_dir, rung), out)
    record_rung(study_dir, nxt, runs, jobs, decider_job=None)
    return out


def record_rung(study_dir: Path, rung: int, runs: list[PlannedRun], jobs: dict[str, Any],
                decider_job: str | None) -> None:  # fmt: skip
    """study.json: the rung's jobs (``halving.rungs``), each survivor's new job id (its
    ``job_ids`` keep the earlier rungs'), and the collector when this rung submitted it."""
    ids = {(r.spec.name, r.spec.seed): r.job_id for r in runs}

    def change(rec: dict[str, Any]) -> None:
        h = rec.setdefault("halving", {})
        rungs = h.setdefault("rungs", [])
        rungs[:] = [x for x in rungs if x.get("rung") != rung]
        rungs.append({"rung": rung, "points": sorted({r.spec.name for r in runs}), **jobs})
        rungs.sort(key=lambda x: x["rung"])
        for entry in rec.get("runs_all") or []:
            new = ids.get((entry["variant"], int(entry["seed"])))
            if new:
                entry["job_id"] = new
                entry["job_ids"] = list(dict.fromkeys([*entry.get("job_ids", []), str(new)]))
        if jobs.get("collector_job_id"):
            rec["collector_job_id"] = jobs["collector_job_id"]
        if decider_job:
            rungs[-1]["decider_job_id"] = decider_job

    studyfile.update(study_dir, change)


class DecideJob:
    """The decider as a submitit job; submits the next rung through submitit."""

    def __call__(self, study_dir: str, rung: int) -> str:
        out = run_decider(Path(study_dir), rung, lambda runs, nxt, last: submit_rung(
            Path(study_dir), runs, nxt, last))  # fmt: skip
        return f"rung {rung}: kept {', '.join(out['survivors'])}; dropped {', '.join(out['dropped']) or 'none'}"


def train_arrays(
    runs: list[PlannedRun],
    executor: Callable[[], Any],
    job_name: str,
    code: Path,
    extra: dict[str, str] | None = None,
) -> Iterator[str]:
    """Submit ``runs`` as submitit job arrays (split at SLURM's MaxArraySize), named
    ``job_name-<i>``, with ``extra`` sbatch parameters (e.g. a dependency); sets each run's job id
    and yields each array's id as soon as it is queued, so that a caller whose later array is
    refused still knows (and records) the earlier ones. Shared by a study's first submission and
    every rung."""
    for i, group in enumerate(groups(runs, slurm_query.max_array_size())):
        ex = executor()
        native = slurm_parameters(group[0].slurm, job_name=f"{job_name}-{i}", code=code)
        native["additional_parameters"].update(extra or {})
        ex.update_parameters(**{f"slurm_{k}": v for k, v in native.items()})
        with ex.batch():
            jobs = [ex.submit(TrainJob(), r.spec) for r in group]
        for r, job in zip(group, jobs, strict=True):
            r.job_id = job.job_id
        yield jobs[0].job_id.split("_")[0]


def submit_rung(study_dir: Path, runs: list[PlannedRun], rung: int, last: bool) -> dict[str, Any]:
    """From a decider job: rung ``rung``'s arrays for ``runs`` (sets their job ids), then the
    next decider or, after the last rung, the collector (``afterany`` on the arrays)."""
    plan, _ = read_plan(study_dir)
    code, name = Path(plan["code_dir"]), plan["study"]
    environ = dict(os.environ)
    os.environ.clear()  # this job's own SLURM_* must not shape the jobs it submits
    os.environ.update(submission_environment(environ))
    try:
        array_ids = list(train_arrays(
            runs,
            lambda: submitit.AutoExecutor(folder=study_dir / "submitit" / "%j", cluster="slurm"),
            f"t2s-{name}-r{rung}",
            code,
        ))  # fmt: skip
        ex = submitit.AutoExecutor(folder=study_dir / "submitit" / "%j", cluster="slurm")
        what = "collect" if last else f"decide{rung}"
        native = slurm_parameters(runs[0].slurm, job_name=f"t2s-{name}-{what}", collector=True,
                                  code=code, mail_user=plan.get("mail_user") if last else None)  # fmt: skip
        native["additional_parameters"]["dependency"] = "afterany:" + ":".join(array_ids)
        ex.update_parameters(**{f"slurm_{k}": v for k, v in native.items()})
        if last:
            after = {"collector_job_id": ex.submit(CollectJob(), str(study_dir)).job_id}
        else:
            after = {"decider_job_id": ex.submit(DecideJob(), str(study_dir), rung).job_id}
    finally:
        os.environ.clear()
        os.environ.update(environ)
    return {"array_job_ids": array_ids, **after}
