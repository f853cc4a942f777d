"""Study status: job state (sacct on SLURM, status.json locally), restarts, progress, ETA.

python jobs/status.py results/<study> [--follow] [--cancel]
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

from text2sign.errors import EXIT_OK, EXIT_USAGE, UsageError  # noqa: E402

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
            "DEADLINE", "PREEMPTED"}  # fmt: skip
COLUMNS = ("variant", "seed", "job", "state", "restarts", "elapsed", "step", "loss", "samples/s",
           "peak MiB", "ETA")  # fmt: skip


def load_study(study: Path) -> dict[str, Any]:
    try:
        return json.loads((study / "study.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"{study}: no study.json (not a submitted study)") from None
    except ValueError:
        raise UsageError(f"{study}/study.json: corrupt JSON") from None


def sacct(job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Job id → {state, elapsed, restarts} from sacct (with -D, requeued records count restarts)."""
    ids = sorted({j for j in job_ids if j})
    if not ids:
        return {}
    cmd = ["sacct", "-X", "-D", "-n", "-P", "-o", "JobID,State,Elapsed", "-j", ",".join(ids)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    info: dict[str, dict[str, Any]] = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) < 3:
            continue
        job, state, elapsed = parts[0], parts[1].split()[0], parts[2]
        rec = info.setdefault(job, {"restarts": 0})
        if state == "REQUEUED":
            rec["restarts"] += 1
        rec.update(state=state, elapsed=elapsed)
    return info


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


def table(study: Path) -> list[dict[str, Any]]:
    rec = load_study(study)
    runs = rec.get("runs_all") or rec.get("runs", [])
    states = sacct([r.get("job_id") for r in runs]) if rec.get("executor") == "slurm" else {}
    rows = []
    for r in runs:
        run_dir = study / r["run_dir"]
        try:
            status = json.loads((run_dir / "status.json").read_text())
        except (OSError, ValueError):
            status = {}
        job = states.get(str(r.get("job_id")), {})
        last = _last_row(run_dir / "training_metrics.csv")
        # status.json changes on state transitions; progress comes from the last metrics row.
        step = int(last["step"]) if last.get("step") else status.get("step", 0)
        total = status.get("total_steps", 0)
        eta = "-"
        if last.get("_times") and total and status.get("state") == "RUNNING":
            eta = f"{(total - step) * median(last['_times']) / 60:.1f} min"
        rows.append({
            "variant": r["variant"], "seed": r["seed"], "job": r.get("job_id") or "-",
            "state": job.get("state") or status.get("state", "PENDING"),
            "restarts": job.get("restarts", max(0, status.get("attempts", 1) - 1)),
            "elapsed": job.get("elapsed", "-"), "step": f"{step}/{total}",
            "loss": f"{float(last['loss']):.4f}" if last.get("loss") else "-",
            "samples/s": f"{float(last['samples_per_s']):.1f}" if last.get("samples_per_s") else "-",
            "peak MiB": f"{int(last['peak_memory_bytes']) / 2**20:.0f}" if last.get("peak_memory_bytes") else "-",
            "ETA": eta,
        })  # fmt: skip
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def follow(study: Path, interval_s: float = 10.0) -> None:
    """Redraw the table until every run and the collector have ended."""
    rec = load_study(study)
    while True:
        rows = table(study)
        print("\033[2J\033[H" if sys.stdout.isatty() else "", end="")
        print(f"study {study.name}  {time.strftime('%H:%M:%S')}\n{render(rows)}", flush=True)
        collector = sacct([rec.get("collector_job_id")]).get(str(rec.get("collector_job_id")), {})
        if all(r["state"] in TERMINAL for r in rows) and collector.get("state") in TERMINAL:
            print(f"collector {collector.get('state')}: {study}/comparison_table.md")
            return
        time.sleep(interval_s)


def cancel(study: Path) -> list[str]:
    rec = load_study(study)
    ids = [*rec.get("array_job_ids", []), rec.get("collector_job_id")]
    ids = [str(i) for i in ids if i]
    if rec.get("executor") != "slurm" or not ids:
        raise UsageError(f"{study}: not a SLURM study (local runs end with their submit command)")
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
            print(render(table(args.study)))
    except UsageError as e:
        print(f"status: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
