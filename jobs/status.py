"""Study status: each run's state and reason (status.json), its SLURM job's state (sacct),
restarts, progress, ETA and cost so far (GPU-hours, or core-hours without GPUs; every attempt).

python jobs/status.py results/<study> [--follow] [--cancel]

``state`` is the run's own word (written by the trainer or the launcher; the collector fills it
from sacct for jobs that ended before any of them could). ``slurm`` is the job as SLURM sees it.
sacct is asked once per refresh for the whole study, at most every 30 s (see
:class:`text2sign.study.slurm_query.SacctPoller`); progress comes from the run dirs at every refresh.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if __name__ == "__main__":  # outside the venv: run in it, or say what to do
    from jobs.bootstrap import ensure

    ensure("status")

from jobs import studyfile  # noqa: E402
from text2sign.errors import EXIT_OK, EXIT_USAGE, UsageError  # noqa: E402
from text2sign.run.rundir import TERMINAL as RUN_ENDED  # noqa: E402
from text2sign.study.cost import (  # noqa: E402
    fmt_hours,
    runs_cost,
    status_footer,
    study_job_ids,
)
from text2sign.study.settle import prepare_job_ids  # noqa: E402
from text2sign.study.slurm_query import ENDED, MIN_POLL_S, SacctPoller  # noqa: E402

COLUMNS = ("variant", "seed", "job", "state", "slurm", "restarts", "elapsed", "cost", "step",
           "loss", "samples/s", "peak MiB", "ETA", "reason")  # fmt: skip
REASON_WIDTH = 100  # the table cuts longer reasons; status.json holds them whole


def load_study(study: Path) -> dict[str, Any]:
    try:
        return json.loads((study / "study.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"{study}: no study.json (not a submitted study)") from None
    except ValueError:
        raise UsageError(f"{study}/study.json: corrupt JSON") from None


ETA_WINDOW = 50  # steps whose median step time gives the ETA
_TAIL_BYTES = 32_768  # a metrics row is ~150 bytes: the tail holds ~200 rows, enough for the window


def _tail_rows(path: Path, n: int = ETA_WINDOW) -> list[dict[str, str]]:
    """The last ``n`` complete rows of a metrics CSV, reading only its header and last 32 KiB.

    ``--follow`` refreshes every few seconds while the CSVs grow by a row per step; reading whole
    files would cost O(steps) per refresh and run. A line still being written (no newline yet)
    is left out.
    """
    try:
        with open(path, "rb") as f:
            header = f.readline()
            size = f.seek(0, os.SEEK_END)
            start = max(len(header), size - _TAIL_BYTES)
            f.seek(start)
            tail = f.read()
    except OSError:
        return []
    lines = tail.split(b"\n")
    if start > len(header):
        lines = lines[1:]  # the first line may be cut by the seek
    complete = lines[:-1]  # after the last newline: "" or a row still being written
    text = (header + b"".join(line + b"\n" for line in complete[-n:])).decode("utf-8", "replace")
    return list(csv.DictReader(io.StringIO(text)))


def _last_row(path: Path) -> dict[str, Any]:
    rows = _tail_rows(path)
    return {"_times": [float(r["step_time_s"]) for r in rows], **rows[-1]} if rows else {}


def _job_ids(rec: dict[str, Any]) -> list[str]:
    deciders = [str(r["decider_job_id"]) for r in (rec.get("halving") or {}).get("rungs") or []
                if r.get("decider_job_id")]  # fmt: skip
    return [*study_job_ids(rec), *deciders]  # the cost counts the runs' jobs of every submission


def halving_lines(study: Path, rec: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> list[str]:
    """A halving study's rungs: what each decider kept and dropped, or that it is waiting, or
    why it failed and that the study is resumable."""
    out = []
    for r in (rec.get("halving") or {}).get("rungs") or []:
        n, job = r.get("rung"), str(r.get("decider_job_id") or "")
        if not job:
            continue  # the last rung: its collector follows it
        state = (jobs.get(job) or {}).get("state", "")
        try:
            d = json.loads((study / "halving" / f"rung{n}.json").read_text())
        except (OSError, ValueError):
            d = {}
        head = f"halving rung {n} ({len(r.get('points') or [])} points)"
        if (state and state not in ENDED) or not d:  # waiting, or ended without a word
            out.append(f"{head}: decider {job} {state or 'PENDING'}"
                       + (" without a decision: see its log; the study is resumable "
                          "(--resume-study)" if state in ENDED else ""))  # fmt: skip
        elif "error" in d:
            out.append(f"{head}: decider {job} FAILED: {d['error']}; the study is resumable "
                       "(--resume-study)")  # fmt: skip
        else:
            nxt = d.get("next") if isinstance(d.get("next"), dict) else {}
            out.append(f"{head}: kept {', '.join(d.get('survivors') or [])}; dropped "
                       f"{', '.join(d.get('dropped') or []) or 'none'}"
                       + (f"; {nxt['error']}: the study is resumable (--resume-study)"
                          if nxt.get("error") else ""))  # fmt: skip
    return out


def table(study: Path, jobs: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per run; ``jobs`` (sacct's view) is polled for the study when not given."""
    rec = load_study(study)
    runs = rec.get("runs_all") or rec.get("runs", [])
    if jobs is None:
        slurm = rec.get("executor") == "slurm"
        jobs = SacctPoller(study).get(_job_ids(rec)) if slurm else {}
    rows = []
    for r in runs:
        run_dir = study / r["run_dir"]
        try:
            status = json.loads((run_dir / "status.json").read_text())
        except (OSError, ValueError):
            status = {}
        job = jobs.get(str(r.get("job_id")), {})
        last = _last_row(run_dir / "training_metrics.csv")
        # status.json changes on state transitions; progress comes from the last metrics row.
        step = int(last["step"]) if last.get("step") else status.get("step", 0)
        total = status.get("total_steps", 0)
        state = status.get("state", "PENDING")
        eta = "-"
        if last.get("_times") and total and state == "RUNNING":
            eta = f"{(total - step) * median(last['_times']) / 60:.1f} min"
        reason = str(status.get("reason") or "")
        if state not in RUN_ENDED and job.get("state") in ENDED:  # `make collect` records it
            state = job["state"]
            reason = f"job {state} in SLURM (sacct) before the run wrote its ending"
        rows.append({
            "variant": r["variant"], "seed": r["seed"], "job": r.get("job_id") or "-",
            "state": state, "slurm": job.get("state", "-"),
            "restarts": job.get("restarts", max(0, status.get("attempts", 1) - 1)),
            "elapsed": job.get("elapsed", "-"), "step": f"{step}/{total}",
            "cost": fmt_hours(runs_cost(jobs, rec, study, [(str(r["variant"]), f"seed{r['seed']}")]))
            if job.get("attempts") else "-",
            "loss": f"{float(last['loss']):.4f}" if last.get("loss") else "-",
            "samples/s": f"{float(last['samples_per_s']):.1f}" if last.get("samples_per_s") else "-",
            "peak MiB": f"{int(last['peak_memory_bytes']) / 2**20:.0f}" if last.get("peak_memory_bytes") else "-",
            "ETA": eta,
            "reason": reason if len(reason) <= REASON_WIDTH else reason[: REASON_WIDTH - 1] + "…",
        })  # fmt: skip
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def follow(study: Path, interval_s: float = 10.0) -> None:
    """Redraw the table until every run and the collector have ended.

    The run dirs are re-read every ``interval_s``; sacct is asked through the study's poller
    (at most every 30 s, backing off while nothing changes), once for all jobs.
    """
    rec = load_study(study)
    poller = SacctPoller(study)
    runs_done = False  # every run dir says its run has ended: only the collector is awaited
    while True:
        slurm = rec.get("executor") == "slurm"
        jobs = poller.get(_job_ids(rec), max_age=MIN_POLL_S if runs_done else None) if slurm else {}
        rows = table(study, jobs)
        runs_done = all(r["state"] in RUN_ENDED for r in rows)
        print("\033[2J\033[H" if sys.stdout.isatty() else "", end="")
        print(f"study {study.name}  {time.strftime('%H:%M:%S')}\n{render(rows)}", flush=True)
        if slurm:
            print(status_footer(rec, jobs, study), *halving_lines(study, rec, jobs), sep="\n",
                  flush=True)  # fmt: skip
        collector = jobs.get(str(rec.get("collector_job_id")), {}).get("state")
        runs_over = all(r["slurm"] in ENDED or r["state"] in RUN_ENDED for r in rows)
        if runs_over and collector in ENDED:
            print(f"collector {collector}: {study}/comparison_table.md")
            return
        time.sleep(interval_s)


def halving_job_ids(rec: dict[str, Any]) -> list[str]:
    """A halving study's rung arrays and deciders (study.json ``halving.rungs``)."""
    rungs = (rec.get("halving") or {}).get("rungs") or []
    return [str(i) for r in rungs for i in (*r.get("array_job_ids", []), r.get("decider_job_id"),
                                             r.get("collector_job_id")) if i]  # fmt: skip


def cancel(study: Path) -> list[str]:
    """scancel every job of the study, after recording that the cancel is final: launchers
    that see this marker never requeue or retry (a new submission removes it)."""
    rec = load_study(study)
    runs = rec.get("runs_all") or rec.get("runs", [])
    ids = [
        *prepare_job_ids(rec),  # a pending prepare stage too (its tasks, then the arrays)
        *rec.get("array_job_ids", []),
        *(r.get("job_id") for r in runs),
        rec.get("collector_job_id"),
        *halving_job_ids(rec),  # the rungs a decider submitted, and the pending deciders
    ]
    ids = list(dict.fromkeys(str(i) for i in ids if i))
    if rec.get("executor") != "slurm" or not ids:
        raise UsageError(f"{study}: not a SLURM study (local runs end with their submit command)")
    (study / studyfile.CANCEL_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))
    subprocess.run(["scancel", *ids], check=False)
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jobs/status.py", description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path)
    p.add_argument("--follow", action="store_true")
    p.add_argument("--cancel", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.cancel:
            print("cancelled " + " ".join(cancel(args.study)))
        elif args.follow:
            follow(args.study)
        else:
            rec = load_study(args.study)
            slurm = rec.get("executor") == "slurm"
            jobs = SacctPoller(args.study).get(_job_ids(rec)) if slurm else {}
            lines = halving_lines(args.study, rec, jobs) if slurm else []
            print(
                render(table(args.study, jobs))
                + ("\n" + status_footer(rec, jobs, args.study) if slurm else "")
                + "".join(f"\n{line}" for line in lines)
            )
    except UsageError as e:
        print(f"status: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
