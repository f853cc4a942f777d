"""Planning a study: variants × sweep points × seeds → validated runs, and the study's claim.

``plan()`` validates everything first (names, paths, configs, sweeps, image, executor) so that
bad input submits nothing; both doors then submit the plan under :func:`claimed`:
``jobs/submitit_study.py`` (submitit) and ``jobs/sbatch_study.py`` (plain sbatch). Nothing the
user typed reaches a shell: the trainer command is an argv list, and every string of the config
is refused when it holds a control character (a newline would end an ``#SBATCH`` line), SLURM
names when they hold anything but a SLURM name (:mod:`text2sign.config`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from jobs import container as C
from jobs import prepare, snapshot, studyfile, sweep
from jobs.container import ContainerSpec
from jobs.halving_plan import plan_halving, with_rung
from jobs.inputs import check_inputs
from jobs.sbatch_params import check_mail
from jobs.spec import REPO, PlannedRun, PrepareSpec, RunSpec, StudyPlan
from text2sign.config import Config, SlurmConfig, available, load_config
from text2sign.errors import ConfigError, UsageError
from text2sign.run.rundir import RunDir, checkpoint_meta
from text2sign.run.runlock import flock
from text2sign.study import slurm_query

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
PATH_RE = re.compile(r"^[A-Za-z0-9_./@+-]+$")


def check_name(kind: str, value: str) -> str:
    if not NAME_RE.match(value) or ".." in value:
        raise UsageError(f"{kind} {value!r}: use only letters, digits, '_', '.', '-' (no '..')")
    return value


def check_path(kind: str, value: str | Path) -> Path:
    text = str(value)
    if not PATH_RE.match(text) or ".." in Path(text).parts:
        raise UsageError(
            f"{kind} {text!r}: paths may use only letters, digits and _ . / @ + - (no '..', "
            "no spaces or shell metacharacters)"
        )
    return Path(text)


def slurm_reachable() -> bool:
    """True when sbatch exists and the controller answers (sinfo within 15 s)."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return False
    try:
        return (
            subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, timeout=15).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_executor(requested: str, *, dry_run: bool = False) -> str:
    """``local``, or ``slurm`` when it answers; a dry run may render SLURM scripts without it."""
    if requested == "local":
        return "local"
    if requested == "slurm" and dry_run:
        return "slurm"
    if slurm_reachable():
        return "slurm"
    if requested == "slurm":
        raise UsageError(
            "--executor slurm: no reachable SLURM (sbatch/sinfo missing or slurmctld down)"
        )
    return "local"


def _container(cfg: Config, results: Path, checked: dict[str, Any]) -> ContainerSpec:
    """The run's container: image validated once per study, binds worked out once per dataset
    (a full-size manifest is read once, not once per run) and checked (jobs/container.py)."""
    c, gpus = cfg.container, cfg.slurm.gpus_per_node > 0
    if c.runtime != "apptainer":
        return ContainerSpec(runtime=c.runtime, gpus=gpus)
    if not c.image:
        raise UsageError("--runtime apptainer needs an image: --image IMAGE.sif (container.image)")
    image = str(check_path("container.image", Path(c.image).resolve()))
    if image not in checked:
        checked[image] = C.check_image(image)
    key = ("binds", str(results), cfg.data.root, cfg.data.cache_dir, c.hf_cache, tuple(c.binds))
    if key not in checked:
        checked[key] = C.binds(results=results, data_root=cfg.data.root, hf_cache=c.hf_cache,
                               extra=c.binds, cache_dir=cfg.data.cache_dir)  # fmt: skip
    return ContainerSpec("apptainer", image, checked[key], gpus, sha256=checked[image])


def plan(
    *,
    variants: str,
    seeds: str,
    profile: str,
    study: str | None,
    results: str,
    overrides: list[str],
    config_file: str | None,
    executor: str,
    resume: bool,
    dry_run: bool = False,
    input_check: bool = True,
    sweeps: list[str] | None = None,
    zipped: bool = False,
    reference: str | None = None,
    mail_user: str | None = None,
) -> StudyPlan:
    """Validate the whole request and resolve every run's config; submits nothing."""
    valid = available("variants")
    names = valid if variants == "all" else [v.strip() for v in variants.split(",") if v.strip()]
    for v in names:
        if v not in valid:
            raise UsageError(f"unknown variant {v!r}; valid: {', '.join(valid)} (or 'all')")
    try:
        seed_list = sorted({int(s) for s in seeds.split(",") if s.strip()})
    except ValueError:
        raise UsageError(
            f"--seeds {seeds!r}: expected comma-separated integers, e.g. 0,1,2"
        ) from None
    if not seed_list or min(seed_list) < 0:
        raise UsageError(f"--seeds {seeds!r}: expected non-negative integers")
    axes = sweep.parse(sweeps or [], overrides)
    if zipped and not axes:
        raise UsageError("--zip needs --sweep flags to pair")
    points = sweep.expand(axes, zipped)
    check_mail(mail_user)
    name = check_name("--study", study or datetime.now().strftime("%Y%m%d-%H%M%S"))
    results_dir = check_path("--results", results)
    if config_file:
        check_path("--config", config_file)
    study_dir = results_dir / name
    if study_dir.exists() and not resume:
        raise UsageError(f"study {study_dir} exists; pick another --study or pass --resume-study")
    if resume and not (study_dir / "study.json").exists():
        raise UsageError(f"--resume-study: {study_dir}/study.json not found")
    chosen = choose_executor(executor, dry_run=dry_run)
    active = _active_runs(study_dir) if resume and chosen == "slurm" else {}
    submission = len(studyfile.read(study_dir).get("previous_submissions", [])) + 1 if resume else 0
    code = snapshot.describe(REPO, study_dir)

    runs: list[PlannedRun] = []
    stage: dict[tuple, list[PrepareSpec]] = {}  # decoding → its prepare tasks (or none)
    all_points: list[str] = []
    point_cfgs: dict[str, Config] = {}  # point → its seed-0 config (the halving plan)
    inputs_checked: set[tuple[str, str]] = set()
    checked: dict[Any, Any] = {}  # image -> sha256, a dataset's bind key -> its binds
    short = sweep.short_keys([a.key for a in axes])
    for variant in names:
        seen: dict[str, tuple[tuple[str, str], ...]] = {}
        for values in points:
            point_sets = [f"{k}={v}" for k, v in values]
            base = _resolve(profile, variant, config_file, overrides, point_sets)
            point = sweep.point_name(variant, [(k, sweep.get(base, k)) for k, _ in values], short)
            if point in seen:
                raise UsageError(f"--sweep: {' '.join(point_sets)} is the same point as "
                                 f"{' '.join(f'{k}={v}' for k, v in seen[point])} ({point})")  # fmt: skip
            seen[point] = values
            all_points.append(point)
            point_cfgs[point] = base
            for seed in seed_list:
                cfg = base.model_copy(deep=True)
                cfg.train.seed = seed
                check_path("data.root", cfg.data.root)
                if input_check and (cfg.data.root, cfg.text.encoder) not in inputs_checked:
                    check_inputs(cfg, REPO, generate=not dry_run)  # relative paths start at REPO
                    inputs_checked.add((cfg.data.root, cfg.text.encoder))
                run_dir = study_dir / point / f"seed{seed}"
                run = RunDir(run_dir)
                if run.config_hash.exists() and run.config_hash.read_text().strip() != cfg.hash():
                    raise UsageError(f"{run_dir}: holds a different config; it would be refused")
                last = _last_state(run, cfg.eval.enabled) if resume else ""
                if resume and last == "COMPLETED":
                    continue
                if (point, seed) in active:
                    print(f"submit: {point}/seed{seed} is still {active[(point, seed)]} in SLURM: "
                          "left as it is", file=sys.stderr)  # fmt: skip
                    continue
                if resume:
                    _check_world_size(run, cfg.slurm)
                container = _container(cfg, results_dir, checked)
                spec = RunSpec(
                    study=name, variant=variant, seed=seed, profile=profile,
                    run_dir=str(run_dir.resolve()), overrides=(*overrides, *point_sets),
                    config_file=str(Path(config_file).resolve()) if config_file else None,
                    container=container, workdir=str(REPO), config_hash=cfg.hash(),
                    max_requeues=cfg.slurm.max_requeues, max_retries=cfg.slurm.max_retries,
                    point=point, code=code.snapshot, submission=submission,
                    evaluate=cfg.eval.enabled,
                )  # fmt: skip
                runs.append(PlannedRun(spec, cfg.hash(), cfg.slurm, overrides=dict(values),
                                       last_state=last))  # fmt: skip
                if prepare.decoding(cfg) not in stage:
                    stage[prepare.decoding(cfg)] = prepare.stage_tasks(
                        cfg, study=name, profile=profile, variant=variant,
                        overrides=spec.overrides, config_file=spec.config_file,
                        container=container, code=code.snapshot, workdir=REPO,
                        input_check=input_check,
                    )  # fmt: skip
    halving = plan_halving(point_cfgs, len(seed_list))
    if halving:  # rung 0: every run stops at its budget (a resubmission restarts the chain there)
        for r in runs:
            r.spec = dataclasses.replace(
                r.spec, overrides=with_rung(r.spec.overrides, halving["rungs"], 0)
            )
    ref = sweep.reference(all_points, reference)
    mode = ("zip" if zipped else "grid") if axes else None
    return StudyPlan(name, study_dir, chosen, profile, runs, _container_record(runs), resume,
                     code=code, reference=ref, sweep={"mode": mode, "keys": [a.key for a in axes]},
                     mail_user=mail_user, submission=submission,
                     prepare=[t for tasks in stage.values() for t in tasks],
                     halving=halving)  # fmt: skip


def _last_state(run: RunDir, evaluate: bool) -> str:
    """A run's state for ``--resume-study``: "COMPLETED" only when nothing is left to do (a
    COMPLETED run whose evaluation never ran is resubmitted to be evaluated, not retrained)."""
    if not run.status_file.exists():
        return "no run yet"
    status = run.read_status()
    state = status.get("state", "?")
    if state == "COMPLETED" and evaluate and not run.evaluated:
        return "COMPLETED, not evaluated"
    return state if state == "COMPLETED" else f"{state}: {status.get('reason') or 'no reason'}"


def _resolve(profile: str, variant: str, config_file: str | None, overrides: list[str],
             point_sets: list[str]) -> Config:  # fmt: skip
    """One point's config (seed 0); a bad --sweep value is named as such, in one line."""

    def load(sets: list[str]) -> Config:
        return load_config(profile=profile, variant=variant, config_file=config_file,
                           overrides=[*overrides, *sets])  # fmt: skip

    try:
        return load([*point_sets, "train.seed=0"])
    except ConfigError:
        load([])  # the error is the user's --set, not the sweep: raise that one
        for item in point_sets:
            try:
                load([item])
            except ConfigError as e:
                msg = str(e).split(": ", 1)[-1] if str(e).startswith("--set ") else str(e)
                raise UsageError(f"--sweep {item}: {msg}") from None
        raise


def _active_runs(study_dir: Path) -> dict[tuple[str, int], str]:
    """(variant, seed) → SLURM state, for the runs whose latest job is still queued or running."""
    runs = studyfile.read(study_dir).get("runs_all") or []
    jobs = slurm_query.queued([r.get("job_id") for r in runs])
    return {(r["variant"], int(r["seed"])): jobs[str(r["job_id"])] for r in runs
            if str(r.get("job_id")) in jobs}  # fmt: skip


def _check_world_size(run: RunDir, s: SlurmConfig) -> None:
    """--resume-study with other ranks than wrote the checkpoint: refused before submitting."""
    tag = run.latest_checkpoint()
    written = checkpoint_meta(run.checkpoints, tag).get("world_size") if tag else None
    ranks = s.nodes * s.ranks_per_node()
    if written is not None and int(written) != ranks:
        raise UsageError(
            f"{run.path}: checkpoint {tag} was written by {written} ranks, the resubmission has "
            f"{ranks} (--nodes x --tasks-per-node/--gpus-per-node); resubmit with {written} ranks"
            " or start a new study"
        )


def _container_record(runs: list[PlannedRun]) -> dict[str, Any]:
    images = {(r.spec.container.image, r.spec.container.sha256) for r in runs
              if r.spec.container.runtime == "apptainer"}  # fmt: skip
    if not images:
        return {"runtime": "none", "image": None, "sha256": None}
    image, sha = sorted(images)[0]
    return {"runtime": "apptainer", "image": image, "sha256": sha}


# ----------------------------------------------------------------------------------------------
# The study's claim (both doors)
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def claimed(p: StudyPlan) -> Iterator[None]:
    """Exactly one submission owns a study at a time: a new study's folder is created with an
    atomic mkdir (a concurrent second submission exits 2), a resubmission holds the study's
    submit lock. A new study whose submission fails leaves no folder behind."""
    if not p.runs:
        raise UsageError(f"{p.dir}: every run is already COMPLETED or still queued; nothing to "
                         "resubmit")  # fmt: skip
    p.dir.parent.mkdir(parents=True, exist_ok=True)
    created = False
    if not p.resume:
        try:
            p.dir.mkdir()
            created = True
        except FileExistsError:
            raise UsageError(f"study {p.dir} exists (another submission claimed it first); pick "
                             "another --study or pass --resume-study") from None  # fmt: skip
    lock = p.dir / ".submit.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, lock)
        except BlockingIOError:
            raise UsageError(f"study {p.dir}: another submission of it is in progress") from None
        (p.dir / studyfile.CANCEL_MARKER).unlink(missing_ok=True)  # a new submission runs again
        yield
    except BaseException:
        # A new study whose first sbatch failed leaves nothing; once a job reached SLURM the
        # door has written study.json (what was queued), and the folder stays.
        if created and not (p.dir / studyfile.STUDY_FILE).exists():
            shutil.rmtree(p.dir, ignore_errors=True)
        raise
    finally:
        os.close(fd)
