"""Submit an ablation study: every variant × seed as one SLURM job array, then the collector.

    python jobs/submit.py --variants all --seeds 0,1,2 --profile full --partition gpu --account me
    python jobs/submit.py --variants baseline,no_ema --executor local --profile tiny   # no SLURM
    python jobs/submit.py --variants all --dry-run                  # print the sbatch scripts
    python jobs/submit.py --variants baseline --sweep train.lr=1e-4,3e-4 --sweep ema.decay=0.99,0.999

Bad input is one line on stderr, exit 2, and nothing is submitted.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python jobs/submit.py` anywhere

if __name__ == "__main__":  # outside the venv: run in it, or say what to do
    from jobs.bootstrap import ensure

    ensure("submit")

from text2sign.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise UsageError(f"submit: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="jobs/submit.py", description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="all", help="'all' or a comma list, e.g. baseline,no_ema")
    p.add_argument("--seeds", default="0", help="comma list of seeds, e.g. 0,1,2")
    p.add_argument("--profile", default="tiny", help="tiny | full")
    p.add_argument("--study", default=None, help="study name (default: date and time)")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--config", default=None, help="base config YAML (default: packaged base)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--executor", choices=["auto", "slurm", "local"], default="auto")
    p.add_argument(
        "--dry-run", action="store_true", help="print the sbatch scripts, submit nothing"
    )
    p.add_argument("--resume-study", action="store_true", help="resubmit the runs not COMPLETED")
    p.add_argument("--follow", action="store_true", help="live status table until the study ends")
    p.add_argument("--local-parallel", type=int, default=None, help="local runs at once")
    p.add_argument(
        "--no-input-check",
        action="store_true",
        help="skip the submit-time check of data.root and text.encoder (for data mounted only on "
        "the compute nodes)",
    )
    w = p.add_argument_group("sweeps (docs/cluster.md: 'Sweeps')")
    w.add_argument("--sweep", dest="sweeps", action="append", default=[], metavar="KEY=V1,V2",
                   help="every value of a config key; repeated: the grid of all flags")  # fmt: skip
    w.add_argument("--zip", action="store_true", help="pair the --sweep values instead of crossing")
    w.add_argument("--reference", default=None, metavar="POINT",
                   help="the point Δ and tests compare with (default: baseline, else the first)")  # fmt: skip
    w.add_argument("--halving", action="store_true",
                   help="run the study in rungs, dropping points shown worse than the best "
                   "(halving.enabled=true; the other halving.* keys by --set; docs/cluster.md)")  # fmt: skip
    w.add_argument("--mail-user", default=None, metavar="ADDRESS",
                   help="one mail when the study ends (the collector's END,FAIL)")  # fmt: skip
    r = p.add_argument_group("resources (override the profile's slurm.* config)")
    r.add_argument("--partition")
    r.add_argument("--account")
    r.add_argument("--qos")
    r.add_argument("--time", type=int, dest="time_min", help="time limit in minutes")
    r.add_argument("--nodes", type=int)
    r.add_argument("--gpus-per-node", type=int)
    r.add_argument("--tasks-per-node", type=int)
    r.add_argument("--cpus-per-task", type=int)
    r.add_argument("--mem", type=float, dest="mem_gb", help="memory per node in GB")
    r.add_argument("--constraint")
    r.add_argument(
        "--sbatch-extra", action="append", default=[], help="e.g. --sbatch-extra=--exclusive"
    )
    r.add_argument("--signal", help="USR2@SECONDS: signal lead time before the time limit")
    r.add_argument("--array-parallelism", type=int)
    c = p.add_argument_group("container")
    c.add_argument("--runtime", choices=["none", "apptainer"], help="container.runtime")
    c.add_argument("--image", help="container.image (an Apptainer .sif)")
    return p


def resource_overrides(args: argparse.Namespace) -> list[str]:
    """CLI resource flags → ``--set slurm.*`` / ``container.*`` overrides (validated like any)."""
    out = []
    for key in ("partition", "account", "qos", "time_min", "nodes", "gpus_per_node", "tasks_per_node",
                "cpus_per_task", "mem_gb", "constraint", "array_parallelism"):  # fmt: skip
        value = getattr(args, key)
        if value is not None:
            out.append(f"slurm.{key}={value}")
    if args.sbatch_extra:
        out.append("slurm.extra=[" + ",".join(f"'{x}'" for x in args.sbatch_extra) + "]")
    if args.signal:
        m = re.fullmatch(r"(?:SIG)?USR2@(\d+)", args.signal)
        if not m:
            raise UsageError(
                f"--signal {args.signal!r}: expected USR2@SECONDS (submitit uses USR2)"
            )
        out.append(f"slurm.signal_delay_s={m.group(1)}")
    if args.runtime:
        out.append(f"container.runtime={args.runtime}")
    if args.image:
        out.append(f"container.image={args.image}")
    return out


def halving_override(args: argparse.Namespace) -> list[str]:
    """``--halving`` is ``--set halving.enabled=true`` (both doors)."""
    return ["halving.enabled=true"] if getattr(args, "halving", False) else []


def run_list(p) -> str:
    """``--resume-study --dry-run``: which runs would be resubmitted, each with its last state."""
    if not p.resume:
        return ""
    lines = [f"#   {r.spec.name}/seed{r.spec.seed}: {r.last_state}" for r in p.runs]
    return "\n".join([f"# --resume-study would resubmit {len(p.runs)} runs:", *lines]) + "\n"


def study_options(args: argparse.Namespace) -> dict:
    """The sweep, reference and mail options of :func:`jobs.study.plan` (both submit doors)."""
    return {"sweeps": args.sweeps, "zipped": args.zip, "reference": args.reference,
            "mail_user": args.mail_user}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from jobs import study as S
    from jobs.submitit_study import submit

    try:
        args = build_parser().parse_args(argv)
        p = S.plan(
            variants=args.variants, seeds=args.seeds, profile=args.profile, study=args.study,
            results=args.results,
            overrides=[*args.overrides, *resource_overrides(args), *halving_override(args)],
            config_file=args.config, executor=args.executor, resume=args.resume_study,
            dry_run=args.dry_run, input_check=not args.no_input_check, **study_options(args),
        )  # fmt: skip
        if args.dry_run:
            print(
                f"# study {p.name}: {len(p.runs)} runs, executor {p.executor} (dry run: nothing submitted)"
            )
            print(run_list(p), end="")
            from jobs.sbatch_params import sbatch_texts

            for text in sbatch_texts(p):
                print(text)
            return EXIT_OK
        record = submit(p, local_parallel=args.local_parallel)
    except UsageError as e:
        print(f"submit: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"study {p.name}: {len(p.runs)} runs submitted ({p.executor}) -> {p.dir}")
    if p.executor == "slurm":
        after = f"collector {record['collector_job_id']}"
        if p.halving:
            rung0 = record["halving"]["rungs"][0]
            after = (f"rung 0 of {p.halving['rungs']} steps, decider {rung0['decider_job_id']} "
                     "(it submits the next rung, the last one the collector)")  # fmt: skip
        print(f"  arrays {', '.join(record['array_job_ids'])}, {after} "
              f"(afterany)\n  follow: python jobs/status.py {p.dir} --follow   "
              f"(make status STUDY={p.name})")  # fmt: skip
        if args.follow:
            from jobs.status import follow

            follow(p.dir)
            table = p.dir / "comparison_table.md"
            print(table.read_text() if table.exists() else f"no table: see {p.dir}/submitit/ logs")
    else:
        table = p.dir / "comparison_table.md"
        print(table.read_text() if table.exists() else f"no table: see {p.dir}/submitit/ logs")
        if record.get("failed_runs"):
            print(f"submit: error: runs not COMPLETED: {', '.join(record['failed_runs'])} "
                  f"(logs: {p.dir}/submitit/)", file=sys.stderr)  # fmt: skip
            return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
