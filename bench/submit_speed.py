"""Wall time to submit a study of 3 variants x 3 seeds (+ collector) to the local SLURM cluster.

Ours: the user's command, ``python jobs/submit.py --variants all --seeds 0,1,2 --executor slurm``,
end to end (Python start-up, config validation of 9 runs, one job array, the collector with its
dependency, study.json), returning without waiting. Peer: the plain-sbatch path doing the same
work, 9 ``sbatch slurm/train.sbatch`` calls plus one ``sbatch slurm/collect.sbatch`` with the
dependency. Every submitted job is cancelled right away; nothing trains.

Sweep: ``--variants baseline --sweep train.lr=1e-4,3e-4,1e-3 --sweep ema.decay=0.99,0.999,0.9999
--seeds 0,1,2,3`` (3 x 3 x 4 = 36 runs + the collector), submitted held (``--hold``) and cancelled
right after: resolving 9 point configs, 36 run specs, the frozen code snapshot
(``results/<study>/.code/``), ceil(36 / MaxArraySize) arrays and the collector.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Goal, Section, median, ours_vs_peer

REPO = Path(__file__).resolve().parents[1]
REPEATS = 3
GOAL_S = 5.0
SWEEP = ["--variants", "baseline", "--sweep", "train.lr=1e-4,3e-4,1e-3",
         "--sweep", "ema.decay=0.99,0.999,0.9999", "--seeds", "0,1,2,3"]  # fmt: skip
SWEEP_RUNS = 36
TITLE = "Submit to SLURM: 3 variants x 3 seeds, and a 3 x 3 x 4 sweep"


def _ours(results: Path, i: int) -> float:
    cmd = [sys.executable, "jobs/submit.py", "--variants", "all", "--seeds", "0,1,2", "--executor",
           "slurm", "--study", f"bench{i}", "--results", str(results), "--set", "train.max_steps=1",
           "--set", f"data.root={results / 'data'}"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    took = time.perf_counter() - t0
    import json

    rec = json.loads((results / f"bench{i}" / "study.json").read_text())
    subprocess.run(["scancel", *rec["array_job_ids"], rec["collector_job_id"]], check=False)
    return took


def _sweep(results: Path, i: int) -> float:
    """The 36-run sweep through jobs/submit.py, held, then cancelled."""
    import json

    study = f"sw-bench-sweep{i}"
    cmd = [sys.executable, "jobs/submit.py", *SWEEP, "--executor", "slurm", "--study", study,
           "--results", str(results), "--set", "train.max_steps=1", "--sbatch-extra=--hold",
           "--set", f"data.root={results / 'data'}"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    took = time.perf_counter() - t0
    rec = json.loads((results / study / "study.json").read_text())
    subprocess.run(["scancel", *rec["array_job_ids"], rec["collector_job_id"]], check=False)
    assert len(rec["runs"]) == SWEEP_RUNS, len(rec["runs"])
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
            title=TITLE, method=__doc__ or "", columns=[], rows=[],
            goals=[Goal(metric="submit wall time", value="not measured: no SLURM (make cluster-up)",
                        goal=f"<= {GOAL_S:.0f} s", met=None)],
            notes=[], seconds=time.perf_counter() - start,
        )  # fmt: skip
    ours, plain, sweep = [], [], []
    with tempfile.TemporaryDirectory(prefix="t2s_bench_submit_") as tmp:
        from text2sign.data.synth import generate

        generate(Path(tmp) / "data", 12, frames=8, size=16, seed=0)  # what the input check reads
        for i in range(REPEATS):  # alternate the paths
            ours.append(_ours(Path(tmp), i))
            plain.append(_plain(Path(tmp), i))
            sweep.append(_sweep(Path(tmp), i))
    section = ours_vs_peer(
        title=TITLE,
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
    m = median(sweep)
    section["rows"].append([f"jobs/submit.py, 3 x 3 x 4 sweep ({SWEEP_RUNS} runs + collector)",
                            f"{m:.2f}", ", ".join(f"{x:.2f}" for x in sweep)])  # fmt: skip
    section["goals"].append(Goal(metric=f"{SWEEP_RUNS}-run sweep submit wall time",
                                 value=f"{m:.2f} s", goal=f"<= {GOAL_S:.0f} s", met=m <= GOAL_S))  # fmt: skip
    section["seconds"] = time.perf_counter() - start
    return section
