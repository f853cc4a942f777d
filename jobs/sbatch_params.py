"""A study's resources as sbatch parameters: submitit's native names, array groups, the scripts.

Moved out of :mod:`jobs.study` (which plans and submits); ``jobs/sbatch_study.py`` renders the
same resources as ``sbatch`` command lines. The jobs start in the study's frozen code snapshot
(:mod:`jobs.snapshot`): ``--chdir`` and ``PYTHONPATH`` name it, so a job that waited in the queue
imports the code of its submission, never the working tree of the moment it starts.

Both doors ask for ``--requeue`` (a site's default may be ``JobRequeue=0``) and start several
tasks with ``srun --kill-on-bad-exit=1 --cpus-per-task=N`` (one dead rank ends the step instead of
leaving the others in a collective; srun of SLURM 22.05–23.02 does not inherit the job's
``--cpus-per-task``). The submitting shell's thread variables are not exported into the jobs.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

from jobs.spec import PlannedRun, StudyPlan
from text2sign.config import SlurmConfig
from text2sign.errors import UsageError

MAIL_TYPE = "END,FAIL"  # --mail-user: one mail per study, from the collector job
#: Not passed from the submitting shell into jobs: a job's threads come from its allocation.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def job_environment(env: dict[str, str]) -> dict[str, str]:
    """The submitting environment as sbatch (``--export=ALL``) should pass it into the jobs."""
    return {k: v for k, v in env.items() if k not in THREAD_VARIABLES}


def submission_environment(env: dict[str, str]) -> dict[str, str]:
    """What a job that submits jobs (a halving decider) submits them with: :func:`job_environment`
    without its own ``SLURM_*`` (they must not shape the jobs it submits), ``SLURM_CONF`` kept."""
    return {k: v for k, v in job_environment(env).items()
            if not k.startswith("SLURM_") or k == "SLURM_CONF"}  # fmt: skip


def srun_args(s: SlurmConfig) -> list[str]:
    """srun's flags for the tasks of one run (see the module docstring)."""
    return ["--kill-on-bad-exit=1", f"--cpus-per-task={s.cpus_per_task}"]


def _extra_flags(extra: list[str]) -> dict[str, Any]:
    """['--exclusive', '--reservation=x'] → submitit's additional_parameters."""
    out: dict[str, Any] = {}
    for flag in extra:
        m = re.fullmatch(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(\S+))?", flag)
        if not m:
            raise UsageError(f"slurm.extra: {flag!r} is not of the form --name or --name=value")
        out[m.group(1).replace("-", "_")] = m.group(2) if m.group(2) is not None else True
    return out


def slurm_parameters(
    s: SlurmConfig, *, job_name: str, code: Path, collector: bool = False,
    mail_user: str | None = None, prepare: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """submitit SlurmExecutor parameters (native names) for one array group, the prepare stage
    or the collector; ``code``: the folder the job imports from (the snapshot, or the checkout
    without one). A prepare task is one process on one node with a run's CPUs of that node
    (``cpus_per_task`` x ranks per node: the decoders and the pose workers), no GPU, and the
    runs' time limit, memory, partition, account, QOS, constraint and extra flags."""
    if prepare:
        params = slurm_parameters(s, job_name=job_name, code=code, collector=True)
        params.update(time=s.time_min, cpus_per_task=s.cpus_per_task * s.ranks_per_node())
        if s.mem_gb:
            params["mem"] = _mem(s.mem_gb)
        if s.constraint:
            params["constraint"] = s.constraint
        params["additional_parameters"].update(_extra_flags(s.extra))
        return params
    setup = [f"export PYTHONPATH={shlex.quote(str(code))}${{PYTHONPATH:+:$PYTHONPATH}}",
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
        # `python -m submitit.core._submit` puts its cwd first on sys.path: the snapshot's.
        "additional_parameters": {"chdir": str(code)},
    }
    if not collector:
        params["srun_args"] = srun_args(s)
        if "no_requeue" not in _extra_flags(s.extra):  # submitit sorts the flags: one of them
            params["additional_parameters"]["requeue"] = True
    for key in ("partition", "account", "qos"):
        if getattr(s, key):
            params[key] = getattr(s, key)
    if collector and mail_user:
        params.update(mail_type=MAIL_TYPE, mail_user=mail_user)
    if not collector:
        if s.gpus_per_node:
            params["gpus_per_node"] = s.gpus_per_node
        if s.mem_gb:
            params["mem"] = _mem(s.mem_gb)
        if s.constraint:
            params["constraint"] = s.constraint
        params["additional_parameters"].update(_extra_flags(s.extra))
    return params


def _mem(gb: float) -> str:
    """``--mem`` of ``gb`` GB in submitit's units (whole GB, else MB)."""
    return f"{int(gb)}GB" if gb == int(gb) else f"{int(gb * 1024)}MB"


def groups(runs: list[PlannedRun], max_array: int = 1001) -> list[list[PlannedRun]]:
    """Runs with identical resources go into one job array; one of more than the cluster's
    ``MaxArraySize`` tasks is split into several (all of them in the collector's afterany)."""
    out: dict[str, list[PlannedRun]] = {}
    for r in runs:
        out.setdefault(r.slurm.model_dump_json(), []).append(r)
    return [g[i : i + max_array] for g in out.values() for i in range(0, len(g), max_array)]


def prepare_dependency(ids: list[str]) -> dict[str, str]:
    """What a training array waits for: every prepare task done (``afterok``), else cancelled
    by SLURM (``kill_on_invalid_dep``) instead of pending forever."""
    return {"dependency": "afterok:" + ":".join(ids), "kill_on_invalid_dep": "yes"} if ids else {}


def sbatch_texts(p: StudyPlan) -> list[str]:
    """The sbatch scripts a submission would write (for --dry-run and the golden test)."""
    from submitit.slurm.slurm import _make_sbatch_string

    folder = p.dir.resolve() / "submitit" / "%j"
    command = " ".join([sys.executable, "-u -m submitit.core._submit", shlex.quote(str(folder))])
    texts = []
    kp = ["<PREPARE_JOB_ID>"] if p.prepare else []
    if p.prepare:
        params = slurm_parameters(p.runs[0].slurm, job_name=f"t2s-{p.name}-prepare",
                                  code=p.code_dir, prepare=True)  # fmt: skip
        texts.append(_make_sbatch_string(command=command, folder=folder,
                                         map_count=len(p.prepare), **params))  # fmt: skip
    for i, group in enumerate(groups(p.runs)):
        params = slurm_parameters(group[0].slurm, job_name=f"t2s-{p.name}-{i}", code=p.code_dir)
        params["additional_parameters"].update(prepare_dependency(kp))
        texts.append(
            _make_sbatch_string(command=command, folder=folder, map_count=len(group), **params)
        )
    params = slurm_parameters(p.runs[0].slurm, job_name=f"t2s-{p.name}-collect", collector=True,
                              code=p.code_dir, mail_user=p.mail_user)  # fmt: skip
    params["additional_parameters"]["dependency"] = "afterany:" + ":".join([*kp, "<ARRAY_JOB_IDS>"])
    texts.append(_make_sbatch_string(command=command, folder=folder, **params))
    return texts


MAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


def check_mail(address: str | None) -> str | None:
    """``--mail-user``: a plausible address (``name@host[.domain]``), or a one-line error."""
    if address is not None and not MAIL_RE.match(address):
        raise UsageError(f"--mail-user {address!r}: not an e-mail address (e.g. me@example.org)")
    return address
