"""Aggregate training throughput of a 3-run study with and without OMP_NUM_THREADS (issue 9).

``python jobs/submit.py --variants all`` typed in a shell without ``OMP_NUM_THREADS`` used to start
one thread per host core in every trainer (15 on this 2-core machine), so three 1-CPU runs fought
over the cores. The trainer now sizes its threads from the job's allocation
(:mod:`text2sign.runtime.threads`). Measured here: the same 3-run study (tiny profile, 1 CPU per run, all
three running at once on the local cluster) submitted twice, from an environment with
``OMP_NUM_THREADS=1`` (the peer: what ``make submit`` exports) and from one without it; aggregate
steps/s = sum over the runs of steps / training-loop time (summary.json). Goal: equal within noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from bench.common import Goal, Section

REPO = Path(__file__).resolve().parents[1]
STEPS = 60
REPEATS = 2
TOLERANCE = 0.15  # "equal within noise": within 15 % on this shared 2-core machine


def _study(results: Path, name: str, data: Path, omp: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    env["HF_HUB_OFFLINE"] = "1"
    sets = [f"data.root={data}", f"train.max_steps={STEPS}", "train.batch_size=4",
            "eval.enabled=false", "train.num_samples=0", "train.log_every=10"]  # fmt: skip
    cmd = [sys.executable, "jobs/submit.py", "--executor", "slurm", "--profile", "tiny",
           "--variants", "all", "--study", name, "--results", str(results), "--cpus-per-task", "1",
           *[x for s in sets for x in ("--set", s)]]  # fmt: skip
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
    rec = json.loads((results / name / "study.json").read_text())
    runs = [results / name / r["run_dir"] for r in rec["runs"]]
    deadline = time.monotonic() + 900
    while not all((r / "summary.json").exists() for r in runs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: runs did not finish in 15 min")
        time.sleep(2)
    summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
    threads = {json.loads((r / "metadata.json").read_text())["threads"]["torch"] for r in runs}
    return {
        "steps_per_s": sum(s["steps"] / s["train_time_s"] for s in summaries),
        "threads": sorted(threads),
    }


def _summary(studies: list[dict]) -> dict:
    """Median aggregate steps/s of some studies, their thread counts and every value."""
    return {
        "steps_per_s": median(r["steps_per_s"] for r in studies),
        "threads": sorted({t for r in studies for t in r["threads"]}),
        "all": [r["steps_per_s"] for r in studies],
    }


def run() -> Section:
    from text2sign.data.synth import generate

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="t2s-threads-") as tmp:
        data = Path(tmp) / "data"
        generate(data, 48, frames=8, size=16, seed=0)
        runs: dict[str, list[dict]] = {"omp": [], "none": []}
        for i in range(REPEATS):  # alternating, so a change in the machine's load hits both
            runs["omp"].append(_study(Path(tmp), f"omp{i}", data, "1"))
            runs["none"].append(_study(Path(tmp), f"noomp{i}", data, None))
    with_omp, without = _summary(runs["omp"]), _summary(runs["none"])
    ratio = without["steps_per_s"] / with_omp["steps_per_s"]
    return Section(
        title="CPU threads from the allocation: a 3-run study with and without OMP_NUM_THREADS",
        method=(
            f"`python jobs/submit.py --variants all --cpus-per-task 1` on the local SLURM cluster "
            f"(tiny profile, {STEPS} steps, batch 4, no evaluation), the 3 runs at once on this "
            "machine's 2 cores; once from an environment with OMP_NUM_THREADS=1 (peer: what "
            "`make submit` exports), once without. Aggregate steps/s = sum over runs of steps / "
            f"training-loop time; median of {REPEATS} studies each, alternating."
        ),
        columns=["environment", "threads per trainer", "aggregate steps/s"],
        rows=[
            [
                "OMP_NUM_THREADS=1 (peer)",
                str(with_omp["threads"]),
                f"{with_omp['steps_per_s']:.2f}",
            ],
            ["no OMP_NUM_THREADS", str(without["threads"]), f"{without['steps_per_s']:.2f}"],
        ],
        goals=[
            Goal(
                metric="throughput without / with OMP_NUM_THREADS",
                value=f"{ratio:.2f}x",
                goal=f"1.00x ± {TOLERANCE:.0%}",
                met=abs(ratio - 1) <= TOLERANCE,
            )
        ],  # fmt: skip
        notes=[
            f"each study: with {', '.join(f'{x:.2f}' for x in with_omp['all'])}; without "
            f"{', '.join(f'{x:.2f}' for x in without['all'])} steps/s"
        ],  # fmt: skip
        seconds=time.perf_counter() - t0,
    )


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
