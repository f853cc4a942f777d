"""Submit a study with plain ``sbatch`` only (no submitit on the login node): ``make sbatch-*``.

    python jobs/sbatch_study.py --variants all --seeds 0,1 --study s --profile tiny   # study
    python jobs/sbatch_study.py --variants baseline --seeds 0 --study s                # one run
    python jobs/sbatch_study.py collect --study s                                      # collector

Takes ``jobs/submit.py``'s options and validates them the same way (:func:`jobs.study.plan`:
names, variants, profile, ``--set`` values, data folder, image): bad input is one line, exit 2,
and sbatch is never called. Then, under the same study claim:

* one job array of ``slurm/train.sbatch`` per resource group (split by ``MaxArraySize``, as
  :func:`jobs.sbatch_params.groups`), each task running ``python -m jobs.sbatch_job TASKS_JSON``;
* the collector, ``slurm/collect.sbatch``, with ``--dependency=afterany:<arrays>``;
* ``study.json`` as ``jobs/submit.py`` writes it (executor ``slurm``, job ids ``123_4``), so
  ``make status``, ``make cancel`` and ``make collect`` work unchanged;
* every job (``--chdir``, the batch scripts) in the study's frozen code snapshot
  (:mod:`jobs.snapshot`), and the same ``--sweep``/``--zip``/``--reference``/``--mail-user``.

Each task's log is ``RUN_DIR/slurm-<array>_<task>.out``: sbatch's ``--output`` reaches the run
dir through ``STUDY/.sbatch/<submission>/g<group>/<task>``, a relative link to the run dir (an
array's ``--output`` pattern knows only the task index). The collector's log is
``STUDY/slurm-<jobid>.out``. ``--runtime auto`` (the default): Apptainer when the image exists
and ``apptainer`` is on PATH, else the host venv; the job log says which and why.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python jobs/sbatch_study.py`

if __name__ == "__main__":  # outside the venv: run in it, or say what to do
    from jobs.bootstrap import ensure

    ensure("sbatch_study")

from jobs.sbatch_params import MAIL_TYPE, job_environment  # noqa: E402
from text2sign.errors import EXIT_OK, EXIT_USAGE, UsageError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "slurm" / "train.sbatch"
COLLECT_SCRIPT = REPO / "slurm" / "collect.sbatch"
PREPARE_SCRIPT = REPO / "slurm" / "prepare.sbatch"
DECIDE_SCRIPT = REPO / "slurm" / "decide.sbatch"
COLLECT_TIME_MIN = 30


def choose_runtime(runtime: str | None, image: str | None, overrides: list[str]) -> tuple[str, str]:
    """(runtime, the sentence the job log prints about it)."""
    if any(o.startswith("container.runtime=") for o in overrides) and runtime in (None, "auto"):
        return "", "runtime from --set container.runtime"
    if runtime in ("none", "apptainer"):
        return runtime, f"runtime {runtime} (RUNTIME={runtime})"
    if runtime not in (None, "", "auto"):
        raise UsageError(f"RUNTIME {runtime!r}: expected none, apptainer or auto")
    if image and Path(image).is_file() and shutil.which("apptainer"):
        return "apptainer", f"runtime apptainer: image {image} exists (RUNTIME=auto)"
    why = f"no image at {image}" if image and not Path(image).is_file() else "no apptainer"
    why = "no image given" if not image else why
    return "none", f"runtime none, the host venv: {why} (RUNTIME=auto; RUNTIME=apptainer forces it)"


def sbatch_env() -> dict[str, str]:
    """The submitting environment (sbatch exports it; not its thread variables: a job's threads
    come from its allocation) plus the project's own Python."""
    return {**job_environment(dict(os.environ)), "T2S_PYTHON": sys.executable}


def train_argv(group, *, name: str, output: str, tasks_file: Path, code: Path = REPO) -> list[str]:
    """``sbatch`` for one array of runs with identical resources (``group``: PlannedRuns);
    ``code``: the study's code snapshot, the job's working directory (what it imports)."""
    from jobs.sbatch_params import _extra_flags

    s = group[0].slurm
    argv = ["sbatch", "--parsable", f"--job-name={name}",
            f"--array=0-{len(group) - 1}%{s.array_parallelism}", f"--time={s.time_min}",
            f"--nodes={s.nodes}", f"--ntasks-per-node={s.ranks_per_node()}",
            f"--cpus-per-task={s.cpus_per_task}"]  # fmt: skip
    argv += [f"--{k}={getattr(s, k)}" for k in ("partition", "account", "qos") if getattr(s, k)]
    if s.gpus_per_node:
        argv.append(f"--gpus-per-node={s.gpus_per_node}")
    argv += _resources(s)
    _extra_flags(s.extra)  # validated by plan(); passed through as the user wrote them
    requeue = [] if "--no-requeue" in s.extra else ["--requeue"]  # JobRequeue=0 sites too
    argv += [f"--signal=B:USR2@{s.signal_delay_s}", *requeue, "--open-mode=append",
             f"--output={output}", f"--chdir={code}", "--export=ALL", *s.extra,
             str(code / TRAIN_SCRIPT.relative_to(REPO)), str(tasks_file)]  # fmt: skip
    return argv


def _resources(s) -> list[str]:
    """The runs' memory and node constraint as sbatch flags (training arrays and prepare)."""
    out = []
    if s.mem_gb:
        mem = f"{int(s.mem_gb)}G" if s.mem_gb == int(s.mem_gb) else f"{int(s.mem_gb * 1024)}M"
        out.append(f"--mem={mem}")
    if s.constraint:
        out.append(f"--constraint={s.constraint}")
    return out


def prepare_sbatch_argv(p, *, output: str, tasks_file: Path) -> list[str]:
    """``sbatch`` for the prepare stage (an array: every shard of every dataset decoding, before
    the runs), with the runs' CPUs of a node, time, memory, partition, account, QOS, constraint
    and extra flags."""
    s = p.runs[0].slurm
    argv = ["sbatch", "--parsable", f"--job-name=t2s-{p.name}-prepare",
            f"--array=0-{len(p.prepare) - 1}", f"--time={s.time_min}", "--nodes=1", "--ntasks=1",
            f"--cpus-per-task={s.cpus_per_task * s.ranks_per_node()}"]  # fmt: skip
    argv += [f"--{k}={getattr(s, k)}" for k in ("partition", "account", "qos") if getattr(s, k)]
    argv += _resources(s)
    argv += ["--open-mode=append", f"--output={output}", f"--chdir={p.code_dir}", "--export=ALL",
             *s.extra, str(p.code_dir / PREPARE_SCRIPT.relative_to(REPO)), str(tasks_file)]  # fmt: skip
    return argv


def after_prepare(argv: list[str], kp_ids: list[str]) -> list[str]:
    """A training array's sbatch line waiting for the prepare stage (afterok; a failure
    cancels it instead of leaving it pending forever)."""
    if not kp_ids:
        return argv
    extra = ["--dependency=afterok:" + ":".join(kp_ids), "--kill-on-invalid-dep=yes"]
    return [*argv[:2], *extra, *argv[2:]]


def stage_argv(study_dir: Path, *, name: str, slurm, after: list[str], script: Path,
               args: list[str], code: Path = REPO, mail_user: str | None = None) -> list[str]:  # fmt: skip
    """``sbatch`` for a one-CPU host-side stage of the study (the collector, a halving decider):
    ``script`` (a path in the repo) with ``args``, after ``after`` (afterany), logging to
    ``STUDY/slurm-<jobid>.out``."""
    argv = ["sbatch", "--parsable", f"--job-name={name}", f"--time={COLLECT_TIME_MIN}",
            "--nodes=1", "--ntasks=1", "--cpus-per-task=1"]  # fmt: skip
    if mail_user:
        argv += [f"--mail-type={MAIL_TYPE}", f"--mail-user={mail_user}"]
    if slurm is not None:
        argv += [f"--{k}={getattr(slurm, k)}" for k in ("partition", "account", "qos")
                 if getattr(slurm, k)]  # fmt: skip
    if after:
        argv.append("--dependency=afterany:" + ":".join(after))
    argv += [f"--output={study_dir}/slurm-%j.out", "--open-mode=append", f"--chdir={code}",
             "--export=ALL", str(code / script.relative_to(REPO)), *args]  # fmt: skip
    return argv


def collect_argv(study_dir: Path, *, name: str, slurm, after: list[str], code: Path = REPO,
                 mail_user: str | None = None) -> list[str]:  # fmt: skip
    return stage_argv(study_dir, name=name, slurm=slurm, after=after, script=COLLECT_SCRIPT,
                      args=[str(study_dir)], code=code, mail_user=mail_user)  # fmt: skip


def decide_argv(study_dir: Path, rung: int, *, name: str, slurm, after: list[str],
                code: Path = REPO) -> list[str]:  # fmt: skip
    """The halving decider of rung ``rung`` (slurm/decide.sbatch, jobs/sbatch_decider.py)."""
    return stage_argv(study_dir, name=name, slurm=slurm, after=after, script=DECIDE_SCRIPT,
                      args=[str(study_dir), str(rung)], code=code)  # fmt: skip


def sbatch(argv: list[str]) -> str:
    """Run sbatch; the job id (``--parsable``: ``ID[;cluster]``). A refusal is one line."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=sbatch_env(), timeout=60)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise UsageError(f"sbatch refused the job: {lines[-1]}")
    return proc.stdout.strip().split(";")[0]


def _link(link: Path, run_dir: str) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(run_dir, link.parent), target_is_directory=True)


def queue_arrays(groups, sub: Path, *, name: str, code: Path, note: str,
                 after: list[str]) -> Iterator[str]:  # fmt: skip
    """One array of slurm/train.sbatch per group of runs (``name-<i>``; its tasks file and the
    links to the run dirs under ``sub``), after the prepare jobs ``after``; sets each run's job
    id and yields each array's id as soon as it is queued. The first submission and every
    halving rung (jobs/sbatch_decider.py)."""
    from jobs.spec import write_tasks

    for i, group in enumerate(groups):
        for a, r in enumerate(group):
            _link(sub / f"g{i}" / str(a), r.spec.run_dir)
        tasks = sub / f"g{i}.json"
        write_tasks(tasks, [r.spec for r in group],
                    signal_lead_s=group[0].slurm.signal_delay_s, runtime_note=note)  # fmt: skip
        out = f"{sub}/g{i}/%a/slurm-%A_%a.out"
        array = sbatch(after_prepare(train_argv(group, name=f"{name}-{i}", output=out,
                                                tasks_file=tasks, code=code), after))  # fmt: skip
        for a, r in enumerate(group):
            r.job_id = f"{array}_{a}"
        yield array


def submit(p, *, note: str, dry_run: bool = False) -> dict:
    """Every array, then the collector; study.json. ``dry_run``: print the sbatch lines only."""
    from jobs import record, snapshot
    from jobs import study as S
    from jobs.decider import write_plan
    from jobs.sbatch_params import groups as split
    from jobs.spec import write_prepare_tasks
    from jobs.submit import run_list
    from text2sign.study import slurm_query

    study_dir = p.dir.resolve()
    max_array = slurm_query.max_array_size() if not dry_run else 1001
    groups = split(p.runs, max_array)
    kp_out = f"{study_dir}/slurm-prepare-%A_%a.out"
    if dry_run:
        print(run_list(p), end="")
        kp = ["<PREPARE_JOB_ID>"] if p.prepare else []
        if p.prepare:
            tasks = study_dir / ".sbatch" / "s0" / "prepare.json"
            print(shlex.join(prepare_sbatch_argv(p, output=kp_out, tasks_file=tasks)))
        for i, group in enumerate(groups):
            out = f"{study_dir}/.sbatch/s0/g{i}/%a/slurm-%A_%a.out"
            tasks = study_dir / ".sbatch" / "s0" / f"g{i}.json"
            print(shlex.join(after_prepare(train_argv(group, name=f"t2s-{p.name}-{i}",
                                                        output=out, tasks_file=tasks,
                                                        code=p.code_dir), kp)))  # fmt: skip
        if p.halving:
            print(shlex.join(decide_argv(study_dir, 0, name=f"t2s-{p.name}-decide0",
                                         slurm=p.runs[0].slurm, after=[*kp, "<ARRAY_JOB_IDS>"],
                                         code=p.code_dir)))  # fmt: skip
            return {}
        print(shlex.join(collect_argv(study_dir, name=f"t2s-{p.name}-collect",
                                      slurm=p.runs[0].slurm, after=[*kp, "<ARRAY_JOB_IDS>"],
                                      code=p.code_dir, mail_user=p.mail_user)))  # fmt: skip
        return {}
    with S.claimed(p):
        snapshot.build(p.code, REPO)
        rec = record.study_record(p)
        if p.halving:  # what the deciders read (jobs/decider.py)
            write_plan(p, sbatch={"runtime": note})
            rec["halving"] = {**p.halving, "rungs": []}
        n = len(rec["previous_submissions"])
        while (study_dir / ".sbatch" / f"s{n}").exists():
            n += 1
        sub = study_dir / ".sbatch" / f"s{n}"
        array_ids: list[str] = []
        kp_ids: list[str] = []
        try:
            if p.prepare:  # real data: the prepare stage first (jobs/prepare.py)
                sub.mkdir(parents=True, exist_ok=True)
                write_prepare_tasks(sub / "prepare.json", p.prepare)
                kp_ids.append(sbatch(prepare_sbatch_argv(p, output=kp_out,
                                                         tasks_file=sub / "prepare.json")))  # fmt: skip
                rec.update(prepare_job_ids=[f"{kp_ids[0]}_{i}" for i in range(len(p.prepare))])
            for array in queue_arrays(groups, sub, name=f"t2s-{p.name}", code=p.code_dir,
                                      note=note, after=kp_ids):  # fmt: skip
                array_ids.append(array)  # one by one: a later refusal must not lose it
            after = [*kp_ids, *array_ids]
            if p.halving:  # rung 0's decider instead: the last rung's submits the collector
                decider = sbatch(decide_argv(study_dir, 0, name=f"t2s-{p.name}-decide0",
                                             slurm=p.runs[0].slurm, after=after, code=p.code_dir))  # fmt: skip
                rec["halving"]["rungs"] = [{"rung": 0, "points": sorted({r.spec.name for r in p.runs}),
                                            "array_job_ids": array_ids, "decider_job_id": decider}]  # fmt: skip
                collector = None
            else:
                collector = sbatch(collect_argv(study_dir, name=f"t2s-{p.name}-collect",
                                                slurm=p.runs[0].slurm, after=after,
                                                code=p.code_dir, mail_user=p.mail_user))  # fmt: skip
        except BaseException:
            if not array_ids and not kp_ids:
                shutil.rmtree(sub, ignore_errors=True)
                raise
            p.runs = [r for r in p.runs if r.job_id]  # study.json: what did reach SLURM
            rec.update(array_job_ids=array_ids, collector_job_id=None)
            record.write_runs(p, rec)
            raise
        rec.update(array_job_ids=array_ids, collector_job_id=collector, submitted_with="sbatch",
                   sbatch={"tasks": [str((sub / f"g{i}.json").relative_to(study_dir))
                                     for i in range(len(groups))], "runtime": note})  # fmt: skip
        record.write_runs(p, rec)
        return rec


def collect_main(argv: list[str]) -> int:
    from jobs.study import check_name, check_path

    p = argparse.ArgumentParser(prog="jobs/sbatch_study.py collect")
    p.add_argument("--study", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--dependency", default=None, help="e.g. afterany:123:124")
    args = p.parse_args(argv)
    study_dir = check_path("--results", args.results) / check_name("--study", args.study)
    if not study_dir.is_dir():
        raise UsageError(f"study {study_dir} does not exist")
    argv_ = collect_argv(
        study_dir.resolve(), name=f"t2s-{args.study}-collect", slurm=None, after=[]
    )
    if args.dependency:
        argv_.insert(2, f"--dependency={args.dependency}")
    job = sbatch(argv_)
    print(f"collector {job} -> {study_dir.resolve()}/slurm-{job}.out")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    from jobs.submit import build_parser, halving_override, resource_overrides, study_options

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["collect"]:
            return collect_main(argv[1:])
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument("--runtime", default=None)
        pre.add_argument("--sets", default="", help="'k=v k=v': more --set values")
        known, rest = pre.parse_known_args(argv)
        args = build_parser().parse_args(rest)
        args.image = args.image or None
        overrides = [*args.overrides, *known.sets.split()]
        runtime, note = choose_runtime(known.runtime, args.image, overrides)
        args.runtime = runtime or None
        if runtime == "none":
            args.image = None  # the trainer's command line names no image it does not use
        from jobs import study as S

        p = S.plan(
            variants=args.variants, seeds=args.seeds, profile=args.profile, study=args.study,
            results=args.results,
            overrides=[*overrides, *resource_overrides(args), *halving_override(args)],
            config_file=args.config, executor="slurm", resume=args.resume_study,
            dry_run=args.dry_run, input_check=not args.no_input_check, **study_options(args),
        )  # fmt: skip
        rec = submit(p, note=note, dry_run=args.dry_run)
    except UsageError as e:
        print(f"sbatch_study: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        return EXIT_OK
    then = (f"collector {rec['collector_job_id']}" if not p.halving else
            f"rung 0's decider {rec['halving']['rungs'][0]['decider_job_id']}")  # fmt: skip
    print(f"study {p.name}: {len(p.runs)} runs submitted (plain sbatch; {note}) -> {p.dir}\n"
          f"  arrays {', '.join(rec['array_job_ids'])}, {then} "
          f"(afterany)\n  logs: {p.dir}/<variant>/seed<k>/slurm-<jobid>.out\n"
          f"  make status STUDY={p.name}   make cancel STUDY={p.name}")  # fmt: skip
    if args.follow:
        from jobs.status import follow

        follow(p.dir)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
