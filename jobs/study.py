"""Planning and submitting a study: variants × sweep points × seeds → job arrays + collector.

``plan()`` validates everything first (names, paths, configs, sweeps, image, executor) so that
bad input submits nothing; ``submit()`` then freezes the code (:mod:`jobs.snapshot`), hands the
runs to submitit as one job array per resource group (:mod:`jobs.sbatch_params`) and chains the
collector with ``dependency=afterany:<arrays>``. Nothing the user typed reaches a shell: the
trainer command is an argv list, and submitit quotes every ``#SBATCH`` value.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jobs import container as C
from jobs import record, snapshot, sweep
from jobs.inputs import check_inputs
from jobs.launcher import CollectJob, ContainerSpec, RunSpec, TrainJob
from jobs.sbatch_params import _extra_flags, check_mail, groups, slurm_parameters
from text2sign.config import Config, SlurmConfig, available, load_config
from text2sign.errors import ConfigError, UsageError
from text2sign.run.rundir import RunDir, checkpoint_meta
from text2sign.study import slurm_query

REPO = Path(__file__).resolve().parents[1]
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


@dataclass
class PlannedRun:
    spec: RunSpec
    config_hash: str
    slurm: SlurmConfig
    job_id: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)  # the point's --sweep values, as typed


@dataclass
class StudyPlan:
    name: str
    dir: Path
    executor: str  # slurm | local
    profile: str
    runs: list[PlannedRun]
    container: dict[str, Any]
    resume: bool
    code: snapshot.Code = snapshot.Code("unknown", False, None, 0)
    reference: tuple[str, str] = ("", "")  # (point, how it was chosen)
    sweep: dict[str, Any] = field(default_factory=lambda: {"mode": None, "keys": []})
    mail_user: str | None = None
    argv: list[str] = field(default_factory=lambda: list(sys.argv))

    @property
    def code_dir(self) -> Path:
        """Where the jobs import from: the study's code snapshot (else the checkout)."""
        return Path(self.code.snapshot or REPO)


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


def _container(cfg: Config, results: Path, checked: dict[str, str]) -> ContainerSpec:
    """The run's container: image validated once per study, binds checked (jobs/container.py)."""
    c, gpus = cfg.container, cfg.slurm.gpus_per_node > 0
    if c.runtime != "apptainer":
        return ContainerSpec(runtime=c.runtime, gpus=gpus)
    if not c.image:
        raise UsageError("--runtime apptainer needs an image: --image IMAGE.sif (container.image)")
    image = str(check_path("container.image", Path(c.image).resolve()))
    if image not in checked:
        checked[image] = C.check_image(image)
    binds = C.binds(results=results, data_root=cfg.data.root, hf_cache=c.hf_cache, extra=c.binds)
    return ContainerSpec("apptainer", image, binds, gpus, sha256=checked[image])


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
    code = snapshot.describe(REPO, study_dir)

    runs: list[PlannedRun] = []
    all_points: list[str] = []
    inputs_checked: set[tuple[str, str]] = set()
    checked: dict[str, str] = {}  # image -> sha256
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
            for seed in seed_list:
                cfg = base.model_copy(deep=True)
                cfg.train.seed = seed
                check_path("data.root", cfg.data.root)
                _extra_flags(cfg.slurm.extra)  # validated for every executor, before anything runs
                if input_check and (cfg.data.root, cfg.text.encoder) not in inputs_checked:
                    check_inputs(cfg, REPO)  # the job runs in REPO: relative paths start there
                    inputs_checked.add((cfg.data.root, cfg.text.encoder))
                run_dir = study_dir / point / f"seed{seed}"
                run = RunDir(run_dir)
                if run.config_hash.exists() and run.config_hash.read_text().strip() != cfg.hash():
                    raise UsageError(f"{run_dir}: holds a different config; it would be refused")
                if resume and run.completed:
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
                    point=point, code=code.snapshot,
                )  # fmt: skip
                runs.append(PlannedRun(spec, cfg.hash(), cfg.slurm, overrides=dict(values)))
    ref = sweep.reference(all_points, reference)
    mode = ("zip" if zipped else "grid") if axes else None
    return StudyPlan(name, study_dir, chosen, profile, runs, _container_record(runs), resume,
                     code=code, reference=ref, sweep={"mode": mode, "keys": [a.key for a in axes]},
                     mail_user=mail_user)  # fmt: skip


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
    runs = record.read(study_dir).get("runs_all") or []
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
# Submission
# ----------------------------------------------------------------------------------------------


def _executor(p: StudyPlan):
    """submitit's AutoExecutor for the chosen cluster; job folders under the study."""
    import submitit

    return submitit.AutoExecutor(folder=p.dir / "submitit" / "%j", cluster=p.executor)


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
    fd = os.open(p.dir / ".submit.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"study {p.dir}: another submission of it is in progress") from None
        (p.dir / record.CANCEL_MARKER).unlink(missing_ok=True)  # a new submission runs again
        yield
    except BaseException:
        if created and not (p.dir / record.STUDY_FILE).exists():
            shutil.rmtree(p.dir, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def submit(p: StudyPlan, *, local_parallel: int | None = None) -> dict[str, Any]:
    """Submit the runs (one array per resource group) and the collector; write study.json."""
    with claimed(p):
        return _submit(p, local_parallel=local_parallel)


def _submit(p: StudyPlan, *, local_parallel: int | None) -> dict[str, Any]:
    snapshot.build(p.code, REPO)  # before any job exists: they all import from it
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(p.code_dir), os.environ.get("PYTHONPATH")])
    )
    rec = record.study_record(p)
    if p.executor == "slurm":
        array_ids = []
        for i, group in enumerate(groups(p.runs, slurm_query.max_array_size())):
            ex = _executor(p)
            native = slurm_parameters(group[0].slurm, job_name=f"t2s-{p.name}-{i}", code=p.code_dir)
            ex.update_parameters(**{f"slurm_{k}": v for k, v in native.items()})
            ex._executor.max_num_timeout = group[0].slurm.max_requeues
            with ex.batch():
                jobs = [ex.submit(TrainJob(), r.spec) for r in group]
            for r, job in zip(group, jobs, strict=True):
                r.job_id = job.job_id
            array_ids.append(jobs[0].job_id.split("_")[0])
        ex = _executor(p)
        native = slurm_parameters(p.runs[0].slurm, job_name=f"t2s-{p.name}-collect", collector=True,
                                  code=p.code_dir, mail_user=p.mail_user)  # fmt: skip
        native["additional_parameters"]["dependency"] = "afterany:" + ":".join(array_ids)
        ex.update_parameters(**{f"slurm_{k}": v for k, v in native.items()})
        collector = ex.submit(CollectJob(), str(p.dir.resolve()))
        rec.update(array_job_ids=array_ids, collector_job_id=collector.job_id)
        record.write_runs(p, rec)
        return rec
    # Local: the very same job functions as subprocesses, a few at a time, then the collector.
    parallel = local_parallel or max(
        1, min(p.runs[0].slurm.array_parallelism, (os.cpu_count() or 1))
    )
    ex = _executor(p)
    ex.update_parameters(timeout_min=p.runs[0].slurm.time_min, tasks_per_node=1, nodes=1)
    pending = list(p.runs)
    record.write_runs(p, rec)
    while pending:
        wave, pending = pending[:parallel], pending[parallel:]
        jobs = [ex.submit(TrainJob(), r.spec) for r in wave]
        for r, job in zip(wave, jobs, strict=True):
            r.job_id = job.job_id
        record.write_runs(p, rec)
        for job in jobs:
            job.wait()
    collector = ex.submit(CollectJob(), str(p.dir.resolve()))
    rec["collector_job_id"] = collector.job_id
    record.write_runs(p, rec)
    collector.wait()
    rec["failed_runs"] = [f"{r.spec.name}/seed{r.spec.seed}" for r in p.runs
                             if RunDir(r.spec.run_dir).read_status().get("state") != "COMPLETED"]  # fmt: skip
    return rec
