"""Wall time to submit a study of 3 variants x 3 seeds (+ collector) to the local SLURM cluster.

Ours: the user's command, ``python jobs/submit.py --variants all --seeds 0,1,2 --executor slurm``,
end to end (Python start-up, config validation of 9 runs, one job array, the collector with its
dependency, study.json), returning without waiting. Peer: the plain-sbatch path doing the same
work, 9 ``sbatch slurm/train.sbatch`` calls plus one ``sbatch slurm/collect.sbatch`` with the
dependency. Every submitted job is cancelled right away; nothing trains.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Goal, Section, ours_vs_peer

REPO = Path(__file__).resolve().parents[1]
REPEATS = 3
GOAL_S = 5.0


def _ours(results: Path, i: int) -> float:
    cmd = [sys.executable, "jobs/submit.py", "--variants", "all", "--seeds", "0,1,2", "--executor",
           "slurm", "--study", f"bench{i}", "--results", str(results), "--set", "train.max_steps=1"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    took = time.perf_counter() - t0
    import json

    rec = json.loads((results / f"bench{i}" / "study.json").read_text())
    subprocess.run(["scancel", *rec["array_job_ids"], rec["collector_job_id"]], check=False)
    return took


def _plain(results: Path, i: int) -> float:
    ids = []
    t0 = time.perf_counter()
    for variant in ("baseline", "text_finetuned", "no_ema"):
        for seed in (0, 1, 2):
            env = {**os.environ, "VARIANT": variant, "SEED": str(seed), "STUDY": f"plain{i}",
                   "RESULTS": str(results)}  # fmt: skip
            out = subprocess.run(["sbatch", "--parsable", "--export=ALL", "slurm/train.sbatch"],
                                 cwd=REPO, env=env, check=True, capture_output=True, text=True)  # fmt: skip
            ids.append(out.stdout.strip().split(";")[0])
    env = {**os.environ, "STUDY": f"plain{i}", "RESULTS": str(results)}
    out = subprocess.run(["sbatch", "--parsable", f"--dependency=afterany:{':'.join(ids)}",
                          "--export=ALL", "slurm/collect.sbatch"], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    took = time.perf_counter() - t0
    subprocess.run(["scancel", *ids, out.stdout.strip()], check=False)
    return took


def run() -> Section:
    start = time.perf_counter()
    from jobs.study import slurm_reachable

    if not slurm_reachable():
        return Section(
            title="Submit 3 variants x 3 seeds to SLURM", method=__doc__ or "", columns=[], rows=[],
            goals=[Goal(metric="submit wall time", value="not measured: no SLURM (make cluster-up)",
                        goal=f"<= {GOAL_S:.0f} s", met=None)],
            notes=[], seconds=time.perf_counter() - start,
        )  # fmt: skip
    ours, plain = [], []
    with tempfile.TemporaryDirectory(prefix="t2s_bench_submit_") as tmp:
        for i in range(REPEATS):  # alternate the two paths
            ours.append(_ours(Path(tmp), i))
            plain.append(_plain(Path(tmp), i))
    return ours_vs_peer(
        title="Submit 3 variants x 3 seeds to SLURM",
        method=(__doc__ or "").strip()
        + f" Median of {REPEATS} alternating repeats, local cluster.",
        ours=("jobs/submit.py (array + collector)", ours),
        peer=("plain sbatch x10", plain),
        goal_metric="jobs/submit.py wall time",
        goal_s=GOAL_S,
        notes=[
            "Our time includes Python start-up and validating 9 resolved configs; sbatch "
            "needs neither."
        ],  # fmt: skip
        seconds=time.perf_counter() - start,
    )
