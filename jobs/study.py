"""Planning and submitting a study: variants × seeds → one job array (+ the collector job).

``plan()`` validates everything first (names, paths, configs, image, executor) so that bad input
submits nothing; ``submit()`` then hands the runs to submitit as a job array and chains the
collector with ``dependency=afterany:<array>``. Nothing the user typed reaches a shell: the
trainer command is an argv list, and submitit quotes every ``#SBATCH`` value.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jobs import container as C
from jobs import record
from jobs.inputs import check_inputs
from jobs.launcher import CollectJob, ContainerSpec, RunSpec, TrainJob, build_command
from text2sign import slurm_query
from text2sign.config import Config, SlurmConfig, available, load_config
from text2sign.errors import UsageError
from text2sign.metadata import git_info
from text2sign.rundir import RunDir, checkpoint_meta

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


@dataclass
class StudyPlan:
    name: str
    dir: Path
    executor: str  # slurm | local
    profile: str
    runs: list[PlannedRun]
    container: dict[str, Any]
    resume: bool
    argv: list[str] = field(default_factory=lambda: list(sys.argv))


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

    runs: list[PlannedRun] = []
    inputs_checked: set[tuple[str, str]] = set()
    checked: dict[str, str] = {}  # image -> sha256
    for variant in names:
        for seed in seed_list:
            cfg = load_config(profile=profile, variant=variant, config_file=config_file,
                              overrides=[*overrides, f"train.seed={seed}"])  # fmt: skip
            check_path("data.root", cfg.data.root)
            _extra_flags(cfg.slurm.extra)  # validated for every executor, before anything runs
            if input_check and (cfg.data.root, cfg.text.encoder) not in inputs_checked:
                check_inputs(cfg, REPO)  # the job runs in REPO: relative paths start there
                inputs_checked.add((cfg.data.root, cfg.text.encoder))
            run_dir = study_dir / variant / f"seed{seed}"
            run = RunDir(run_dir)
            if run.config_hash.exists() and run.config_hash.read_text().strip() != cfg.hash():
                raise UsageError(f"{run_dir}: holds a different config; it would be refused")
            if resume and run.completed:
                continue
            if (variant, seed) in active:
                print(f"submit: {variant}/seed{seed} is still {active[(variant, seed)]} in SLURM: "
                      "left as it is", file=sys.stderr)  # fmt: skip
                continue
            if resume:
                _check_world_size(run, cfg.slurm)
            container = _container(cfg, results_dir, checked)
            spec = RunSpec(
                study=name, variant=variant, seed=seed, profile=profile,
                run_dir=str(run_dir.resolve()), overrides=tuple(overrides),
                config_file=str(Path(config_file).resolve()) if config_file else None,
                container=container, workdir=str(REPO), config_hash=cfg.hash(),
                max_requeues=cfg.slurm.max_requeues, max_retries=cfg.slurm.max_retries,
            )  # fmt: skip
            runs.append(PlannedRun(spec, cfg.hash(), cfg.slurm))
    container = _container_record(runs)
    return StudyPlan(name, study_dir, chosen, profile, runs, container, resume)


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
# submitit parameters and sbatch text
# ----------------------------------------------------------------------------------------------


def _extra_flags(extra: list[str]) -> dict[str, Any]:
    """['--exclusive', '--reservation=x'] → submitit's additional_parameters."""
    out: dict[str, Any] = {}
    for flag in extra:
        m = re.match(r"^--([A-Za-z][A-Za-z0-9-]*)(?:=(.+))?$", flag)
        if not m:
            raise UsageError(f"slurm.extra: {flag!r} is not of the form --name or --name=value")
        out[m.group(1).replace("-", "_")] = m.group(2) if m.group(2) is not None else True
    return out


def slurm_parameters(s: SlurmConfig, *, job_name: str, collector: bool = False) -> dict[str, Any]:
    """submitit SlurmExecutor parameters (native names) for one array group or the collector."""
    setup = [f"export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}",
             f"export T2S_SIGNAL_LEAD_S={s.signal_delay_s}"]  # fmt: skip
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": s.time_min if not collector else 30,
        "nodes": 1 if collector else s.nodes,
        "ntasks_per_node": 1 if collector else s.ranks_per_node(),
        "cpus_per_task": 1 if collector else s.cpus_per_task,
        "signal_delay_s": s.signal_delay_s,
        "array_parallelism": s.array_parallelism,
        "setup": setup,
    }
    for key in ("partition", "account", "qos"):
        if getattr(s, key):
            params[key] = getattr(s, key)
    if not collector:
        if s.gpus_per_node:
            params["gpus_per_node"] = s.gpus_per_node
        if s.mem_gb:
            params["mem"] = (
                f"{int(s.mem_gb)}GB" if s.mem_gb == int(s.mem_gb) else f"{int(s.mem_gb * 1024)}MB"
            )
        if s.constraint:
            params["constraint"] = s.constraint
        if s.extra:
            params["additional_parameters"] = _extra_flags(s.extra)
    return params


def groups(runs: list[PlannedRun], max_array: int = 1001) -> list[list[PlannedRun]]:
    """Runs with identical resources go into one job array; one of more than the cluster's
    ``MaxArraySize`` tasks is split into several (all of them in the collector's afterany)."""
    out: dict[str, list[PlannedRun]] = {}
    for r in runs:
        out.setdefault(r.slurm.model_dump_json(), []).append(r)
    return [g[i : i + max_array] for g in out.values() for i in range(0, len(g), max_array)]


def sbatch_texts(p: StudyPlan) -> list[str]:
    """The sbatch scripts a submission would write (for --dry-run and the golden test)."""
    from submitit.slurm.slurm import _make_sbatch_string

    folder = p.dir.resolve() / "submitit" / "%j"
    command = " ".join([sys.executable, "-u -m submitit.core._submit", shlex.quote(str(folder))])
    texts = []
    for i, group in enumerate(groups(p.runs)):
        params = slurm_parameters(group[0].slurm, job_name=f"t2s-{p.name}-{i}")
        texts.append(
            _make_sbatch_string(command=command, folder=folder, map_count=len(group), **params)
        )
    params = slurm_parameters(p.runs[0].slurm, job_name=f"t2s-{p.name}-collect", collector=True)
    params["additional_parameters"] = {"dependency": "afterany:<ARRAY_JOB_IDS>"}
    texts.append(_make_sbatch_string(command=command, folder=folder, **params))
    return texts


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
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    rec = _study_record(p)
    if p.executor == "slurm":
        array_ids = []
        for i, group in enumerate(groups(p.runs, slurm_query.max_array_size())):
            ex = _executor(p)
            native = slurm_parameters(group[0].slurm, job_name=f"t2s-{p.name}-{i}")
            ex.update_parameters(**{f"slurm_{k}": v for k, v in native.items()})
            ex._executor.max_num_timeout = group[0].slurm.max_requeues
            with ex.batch():
                jobs = [ex.submit(TrainJob(), r.spec) for r in group]
            for r, job in zip(group, jobs, strict=True):
                r.job_id = job.job_id
            array_ids.append(jobs[0].job_id.split("_")[0])
        ex = _executor(p)
        native = slurm_parameters(p.runs[0].slurm, job_name=f"t2s-{p.name}-collect", collector=True)
        native["additional_parameters"] = {"dependency": "afterany:" + ":".join(array_ids)}
        ex.update_parameters(**{f"slurm_{k}": v for k, v in native.items()})
        collector = ex.submit(CollectJob(), str(p.dir.resolve()))
        rec.update(array_job_ids=array_ids, collector_job_id=collector.job_id)
        _write_record(p, rec)
        return rec
    # Local: the very same job functions as subprocesses, a few at a time, then the collector.
    parallel = local_parallel or max(
        1, min(p.runs[0].slurm.array_parallelism, (os.cpu_count() or 1))
    )
    ex = _executor(p)
    ex.update_parameters(timeout_min=p.runs[0].slurm.time_min, tasks_per_node=1, nodes=1)
    pending = list(p.runs)
    _write_record(p, rec)
    while pending:
        wave, pending = pending[:parallel], pending[parallel:]
        jobs = [ex.submit(TrainJob(), r.spec) for r in wave]
        for r, job in zip(wave, jobs, strict=True):
            r.job_id = job.job_id
        _write_record(p, rec)
        for job in jobs:
            job.wait()
    collector = ex.submit(CollectJob(), str(p.dir.resolve()))
    rec["collector_job_id"] = collector.job_id
    _write_record(p, rec)
    collector.wait()
    rec["failed_runs"] = [f"{r.spec.variant}/seed{r.spec.seed}" for r in p.runs
                             if RunDir(r.spec.run_dir).read_status().get("state") != "COMPLETED"]  # fmt: skip
    return rec


def _study_record(p: StudyPlan) -> dict[str, Any]:
    old: dict[str, Any] = {}
    if p.resume and (p.dir / "study.json").exists():
        old = json.loads((p.dir / "study.json").read_text())
    return {
        "study": p.name,
        "executor": p.executor,
        "profile": p.profile,
        "git": git_info(REPO),
        "container": p.container,
        "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": [shlex.quote(a) for a in p.argv],
        "cwd": os.getcwd(),
        "previous_submissions": old.get("previous_submissions", [])
        + ([_strip(old)] if old else []),
        "runs_all": old.get("runs_all") or [],
    }


def _strip(old: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in old.items() if k not in ("previous_submissions", "runs_all", "events")}


def _write_record(p: StudyPlan, rec: dict[str, Any]) -> None:
    """study.json := ``rec`` plus the runs (and the events launchers appended meanwhile)."""
    runs = [{"variant": r.spec.variant, "seed": r.spec.seed, "run_dir": os.path.relpath(r.spec.run_dir, p.dir),
             "config_hash": r.config_hash, "job_id": r.job_id,
             "command": build_command(r.spec)} for r in p.runs]  # fmt: skip
    known = {(r["variant"], r["seed"]) for r in runs}
    rec["runs"] = runs
    rec["runs_all"] = runs + [
        r for r in rec.get("runs_all", []) if (r["variant"], r["seed"]) not in known
    ]

    def change(current: dict[str, Any]) -> None:
        events = current.get("events", [])
        current.clear()
        current.update(rec, events=events)

    record.update(p.dir, change)
