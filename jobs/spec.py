"""What submit time and job time share: the data of a study and of its runs, at the bottom of jobs/.

Submit time (``study``, ``sweep``, ``sbatch_params``, ``record``, ``submit``, ``sbatch_study``)
builds these; job time (``launcher``, ``supervisor``, ``ending``, ``sbatch_job``) reads them on the
compute node. Neither side imports the other: both import this module (``tests/unit/jobs/
test_imports.py`` walks the imports). A new stage of a study (an array the training arrays depend
on) adds its fields here and its planning at submit time.

* :class:`RunSpec`: everything a job needs to (re)start one run (pickled by submitit, written to
  the tasks file by the plain-sbatch door);
* :func:`trainer_argv` / :func:`build_command` / :func:`trainer_env`: how the trainer of a run is
  started (an argv list: nothing goes through a shell);
* :class:`JobContext`: where a trainer ran, for the ending;
* :class:`PlannedRun` / :class:`StudyPlan`: what a submission is about to submit;
* :class:`PrepareSpec` / :func:`prepare_argv`: a task of the prepare stage (real data: decoding
  and keypoints, in shards over an array);
* the tasks file of a plain-sbatch array (:func:`write_tasks`, :func:`read_task`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.container import ContainerSpec, container_argv
from jobs.snapshot import Code

if TYPE_CHECKING:
    from text2sign.config import SlurmConfig

REPO = Path(__file__).resolve().parents[1]
TASKS_VERSION = 1


@dataclass(frozen=True)
class RunSpec:
    """Everything a job needs to (re)start one run; pickled by submitit."""

    study: str
    variant: str
    seed: int
    profile: str
    run_dir: str
    overrides: tuple[str, ...] = ()
    config_file: str | None = None
    container: ContainerSpec = field(default_factory=ContainerSpec)
    python: str = sys.executable
    workdir: str = field(default_factory=os.getcwd)
    config_hash: str = ""  # the run dir this job may write into holds this hash (or none yet)
    max_requeues: int = 3  # slurm.max_requeues, per submission
    max_retries: int = 1  # slurm.max_retries, per submission
    point: str = ""  # the study variant (run dir) name; a sweep point's differs from ``variant``
    code: str | None = None  # the study's code snapshot (jobs/snapshot.py): the trainer imports it
    submission: int = 0  # which submission of the study this job belongs to (0, 1, … per resume)
    evaluate: bool = True  # eval.enabled: a COMPLETED run without evaluation metrics is not done

    @property
    def name(self) -> str:
        """The run's name in the study (its folder): the sweep point, else the variant."""
        return self.point or self.variant

    @property
    def study_dir(self) -> Path:
        return Path(self.run_dir).parents[1]  # results/<study>/<point>/seed<k>


def finished(spec: RunSpec) -> bool:
    """Nothing left to do for this run: COMPLETED, and evaluated unless evaluation is off (a run
    whose job hit its time limit during the evaluation is COMPLETED without it)."""
    from text2sign.run.rundir import RunDir

    run = RunDir(spec.run_dir)
    return run.completed and (not spec.evaluate or run.evaluated)


def _python(spec: RunSpec | PrepareSpec) -> list[str]:
    """The interpreter of a job's child: the image's, or the project's without the cwd on the path."""
    if spec.container.runtime == "apptainer":
        return ["python"]  # the image's package (its own PYTHONPATH rules: jobs/container.py)
    # -P (Python ≥ 3.11, the floor): not the cwd's checkout; the snapshot comes first
    return [spec.python, "-P"] if spec.code else [spec.python]


def trainer_argv(spec: RunSpec) -> list[str]:
    """``python -m text2sign train ...`` for this run (a list: nothing goes through a shell)."""
    argv = [*_python(spec), "-m", "text2sign", "train", "--profile", spec.profile,
            "--variant", spec.variant, "--run-dir", spec.run_dir]  # fmt: skip
    if spec.config_file:
        argv += ["--config", spec.config_file]
    for item in (*spec.overrides, f"train.seed={spec.seed}"):
        argv += ["--set", item]
    return argv


def build_command(spec: RunSpec) -> list[str]:
    return container_argv(spec.container, trainer_argv(spec))


def trainer_env(spec: RunSpec, env: dict[str, str]) -> dict[str, str]:
    """The trainer's environment: ``env`` with the code snapshot first on ``PYTHONPATH``."""
    if spec.code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [spec.code, env.get("PYTHONPATH")]))
    return env


def describe(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


@dataclass(frozen=True)
class PrepareSpec:
    """One task of a study's prepare stage: shard ``task`` of ``tasks`` of a dataset at one
    decoding, decoded into the cache and (``keypoints``) through the pose estimator
    (``python -m text2sign data prepare``), before any run trains on it."""

    study: str
    root: str  # data.root, as the runs' configs name it
    profile: str
    variant: str
    overrides: tuple[str, ...]  # the first such run's --set values: the same data.* decoding
    label: str  # "ROOT at 16 x 128 px, uniform": what study.json and the logs say
    config_file: str | None = None
    container: ContainerSpec = field(default_factory=ContainerSpec)
    python: str = sys.executable
    workdir: str = field(default_factory=os.getcwd)
    code: str | None = None  # the study's code snapshot
    task: int = 0  # this shard
    tasks: int = 1  # shards of this decoding (prepare.tasks)
    keypoints: bool = True  # estimate keypoints too (real data, evaluation on)


def prepare_argv(spec: PrepareSpec) -> list[str]:
    """``python -m text2sign data prepare ROOT ...`` (in the image when the runs use one)."""
    argv = [*_python(spec), "-m", "text2sign", "data", "prepare", spec.root, "--profile",
            spec.profile, "--variant", spec.variant, "--task", str(spec.task), "--tasks",
            str(spec.tasks)]  # fmt: skip
    if not spec.keypoints:
        argv.append("--no-keypoints")
    if spec.config_file:
        argv += ["--config", spec.config_file]
    for item in spec.overrides:
        argv += ["--set", item]
    return container_argv(spec.container, argv)


@dataclass(frozen=True)
class JobContext:
    """Where the trainer ran: SLURM job id (None for local jobs), node, log file, stderr tail;
    ``failed``: (task, node, what) of another task whose trainer died first, when one did."""

    job_id: str | None
    node: str
    log: str
    stderr_tail: list[str] = field(default_factory=list)
    failed: tuple[str, str, str] | None = None


@dataclass
class PlannedRun:
    """One run a submission will submit: its spec, config hash and resources."""

    spec: RunSpec
    config_hash: str
    slurm: SlurmConfig
    job_id: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)  # the point's --sweep values, as typed
    last_state: str = ""  # --resume-study: the run's state before this submission ("" if none)


@dataclass
class StudyPlan:
    """A validated submission: the study, its runs and what study.json records about it."""

    name: str
    dir: Path
    executor: str  # slurm | local
    profile: str
    runs: list[PlannedRun]
    container: dict[str, Any]
    resume: bool
    code: Code = Code("unknown", False, None, 0)
    reference: tuple[str, str] = ("", "")  # (point, how it was chosen)
    sweep: dict[str, Any] = field(default_factory=lambda: {"mode": None, "keys": []})
    mail_user: str | None = None
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    submission: int = 0  # 0 for a new study, then one more per --resume-study
    prepare: list[PrepareSpec] = field(default_factory=list)  # the stage before training
    halving: dict[str, Any] | None = None  # the rungs (jobs/halving_plan.py), or None

    @property
    def code_dir(self) -> Path:
        """Where the jobs import from: the study's code snapshot (else the checkout)."""
        return Path(self.code.snapshot or REPO)


# -- the tasks file of a plain-sbatch array (written at submit time, read by each array task) ----


def spec_to_dict(spec: RunSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def spec_from_dict(d: dict[str, Any]) -> RunSpec:
    """The inverse of :func:`spec_to_dict` (tuples back from JSON lists)."""
    c = dict(d.get("container") or {})
    if "binds" in c:
        c["binds"] = tuple(c["binds"])
    fields = {**d, "container": ContainerSpec(**c), "overrides": tuple(d.get("overrides", ()))}
    return RunSpec(**fields)


def prepare_from_dict(d: dict[str, Any]) -> PrepareSpec:
    c = dict(d.get("container") or {})
    if "binds" in c:
        c["binds"] = tuple(c["binds"])
    return PrepareSpec(**{**d, "container": ContainerSpec(**c),
                            "overrides": tuple(d.get("overrides", ()))})  # fmt: skip


def write_prepare_tasks(path: Path, specs: list[PrepareSpec]) -> None:
    from text2sign import atomic

    atomic.write_json(path, {"version": TASKS_VERSION,
                             "tasks": [dataclasses.asdict(s) for s in specs]})  # fmt: skip


def write_tasks(path: Path, specs: list[RunSpec], *, signal_lead_s: int, runtime_note: str):
    from text2sign import atomic

    atomic.write_json(path, {"version": TASKS_VERSION, "signal_lead_s": signal_lead_s,
                             "runtime_note": runtime_note,
                             "tasks": [spec_to_dict(s) for s in specs]})  # fmt: skip


def read_task(path: Path, index: int) -> tuple[RunSpec, dict[str, Any]]:
    """(spec of array task ``index``, the whole tasks file) of a tasks file."""
    plan = json.loads(Path(path).read_text())
    return spec_from_dict(plan["tasks"][index]), plan
